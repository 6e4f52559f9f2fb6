//! `mpc bench` against a running system: keygen and sign latency through HTTP (Account Service →
//! coordinator → router → parties, with the device's share through the Server Party API, exactly
//! the guide's §5 flow), and sustained signing throughput with concurrent clients. The engine's
//! in-process keygen (one thread per party, same machine) is measured in the same run as the
//! baseline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mpc_protocol::MessageHash;
use serde::Serialize;

use crate::client::{SystemClient, Target, Wallet};
use crate::local;

pub struct ServiceBench {
    pub configs: Vec<(u16, u16)>,
    pub keygen_runs: usize,
    pub sign_runs: usize,
    pub concurrency: usize,
    pub duration: Duration,
    pub json: bool,
}

#[derive(Serialize, Clone, Copy, Default)]
struct Latency {
    p50_ms: f64,
    p95_ms: f64,
    runs: usize,
}

#[derive(Serialize)]
struct ConfigResult {
    threshold: u16,
    parties: u16,
    engine_keygen_ms: f64,
    keygen: Latency,
    keygen_ratio: f64,
    sign: Latency,
}

#[derive(Serialize)]
struct Throughput {
    concurrency: usize,
    seconds: f64,
    signatures: usize,
    errors: usize,
    per_second: f64,
    latency: Latency,
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let pick = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len().max(1)) - 1;
        samples.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
    };
    Latency {
        p50_ms: pick(0.50),
        p95_ms: pick(0.95),
        runs: samples.len(),
    }
}

fn random_hash() -> Result<MessageHash> {
    let mut h = [0u8; 32];
    getrandom::fill(&mut h).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(MessageHash::new(h))
}

async fn sign_verified(client: &SystemClient, wallet: &Wallet) -> Result<Duration> {
    let hash = random_hash()?;
    let t0 = Instant::now();
    let (sig, _) = client.sign(wallet, &hash).await?;
    let took = t0.elapsed();
    local::verify(&wallet.public_key, &hash, &sig).context("signature does not verify")?;
    Ok(took)
}

pub async fn run(target: Target, bench: ServiceBench) -> Result<()> {
    let client = SystemClient::new(target)?;
    let mut results = Vec::new();
    let mut throughput_wallet = None;
    for &(t, n) in &bench.configs {
        eprintln!(
            "▶ {t}-of-{n}: engine baseline, {} keygens and {} signatures through the services",
            bench.keygen_runs, bench.sign_runs
        );
        let mut engine = Vec::new();
        for _ in 0..bench.keygen_runs.clamp(1, 3) {
            engine.push(
                tokio::task::spawn_blocking(move || local::keygen_parallel_wall(t, n)).await??,
            );
        }
        let engine_ms = latency(engine).p50_ms;
        let mut keygens = Vec::new();
        let mut wallet = None;
        for _ in 0..bench.keygen_runs {
            let t0 = Instant::now();
            let (w, _) = client.create_wallet(t, n).await.with_context(|| {
                format!(
                    "{t}-of-{n} keygen (does the system have {} server parties?)",
                    n - 1
                )
            })?;
            keygens.push(t0.elapsed());
            wallet = Some(w);
        }
        let Some(wallet) = wallet else {
            bail!("no keygen ran")
        };
        client.wait_active(&wallet).await?;
        let mut signs = Vec::new();
        for _ in 0..bench.sign_runs {
            signs.push(sign_verified(&client, &wallet).await?);
        }
        let keygen = latency(keygens);
        let r = ConfigResult {
            threshold: t,
            parties: n,
            engine_keygen_ms: engine_ms,
            keygen,
            keygen_ratio: keygen.p50_ms / engine_ms,
            sign: latency(signs),
        };
        eprintln!(
            "  keygen p50 {:.0} ms p95 {:.0} ms (engine in-process {:.0} ms: ×{:.2}); sign p50 {:.1} ms p95 {:.1} ms",
            r.keygen.p50_ms,
            r.keygen.p95_ms,
            r.engine_keygen_ms,
            r.keygen_ratio,
            r.sign.p50_ms,
            r.sign.p95_ms
        );
        if (t, n) == (2, 3) || throughput_wallet.is_none() {
            throughput_wallet = Some(wallet);
        }
        results.push(r);
    }

    let mut throughput = None;
    if let (Some(wallet), true) = (throughput_wallet, bench.concurrency > 0) {
        eprintln!(
            "▶ throughput: {} concurrent clients signing for {:.0} s ({}-of-{})",
            bench.concurrency,
            bench.duration.as_secs_f64(),
            wallet.threshold,
            wallet.servers.len() + 1
        );
        let done = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let deadline = started + bench.duration;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..bench.concurrency {
            let (client, wallet, done, errors) =
                (client.clone(), wallet.clone(), done.clone(), errors.clone());
            workers.spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    match sign_verified(&client, &wallet).await {
                        Ok(d) => {
                            samples.push(d);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("  error: {e:#}");
                            }
                        }
                    }
                }
                samples
            });
        }
        let mut samples = Vec::new();
        while let Some(w) = workers.join_next().await {
            samples.extend(w?);
        }
        let seconds = started.elapsed().as_secs_f64();
        let signatures = done.load(Ordering::Relaxed);
        let t = Throughput {
            concurrency: bench.concurrency,
            seconds,
            signatures,
            errors: errors.load(Ordering::Relaxed),
            per_second: signatures as f64 / seconds,
            latency: latency(samples),
        };
        eprintln!(
            "  {} signatures in {:.1} s: {:.1}/s ({} errors); latency under load p50 {:.0} ms p95 {:.0} ms",
            t.signatures, t.seconds, t.per_second, t.errors, t.latency.p50_ms, t.latency.p95_ms
        );
        throughput = Some(t);
    }

    if bench.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"configs": results, "throughput": throughput})
            )?
        );
    } else {
        println!(
            "| (t,n) | keygen p50 / p95 | engine in-process keygen | ratio | sign p50 / p95 |"
        );
        println!("|---|---|---|---|---|");
        for r in &results {
            println!(
                "| {}-of-{} | {:.0} / {:.0} ms | {:.0} ms | ×{:.2} | {:.1} / {:.1} ms |",
                r.threshold,
                r.parties,
                r.keygen.p50_ms,
                r.keygen.p95_ms,
                r.engine_keygen_ms,
                r.keygen_ratio,
                r.sign.p50_ms,
                r.sign.p95_ms
            );
        }
        if let Some(t) = throughput {
            println!(
                "\nThroughput: {:.1} signatures/s with {} concurrent clients ({} in {:.1} s, {} errors; latency p50 {:.0} ms, p95 {:.0} ms)",
                t.per_second,
                t.concurrency,
                t.signatures,
                t.seconds,
                t.errors,
                t.latency.p50_ms,
                t.latency.p95_ms
            );
        }
    }
    Ok(())
}
