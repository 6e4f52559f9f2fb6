//! `mpc bench` against a running system: keygen and sign latency through HTTP (Account Service →
//! coordinator → router → parties, the device's part relayed to the Server Party API: the
//! guide's §5 flow through one base URL, with `mpc-sdk`), and sustained signing throughput at
//! one or more concurrency levels. The engine's in-process keygen (one thread per party, same
//! machine) is measured in the same run as the baseline.
//!
//! Each throughput level runs for its duration; then requests still running get a bounded
//! grace, and any still open after it are abandoned and counted as `still_open` (every request
//! has that client-side deadline, so a run never hangs). 429 answers are not retried by the
//! client: they are counted as `throttled` and the worker waits `Retry-After` (bounded by the
//! level's end) before its next request; other errors count as `failed`. Every signature is
//! checked with k256 (verify, low-s, ecrecover) against the wallet's key.

use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context, Result, bail};
use mpc_protocol::MessageHash;
use serde::Serialize;

use crate::client::{SystemClient, Target, Wallet};
use crate::local;

pub struct ServiceBench {
    pub configs: Vec<(u16, u16)>,
    pub keygen_runs: usize,
    pub sign_runs: usize,
    pub concurrency: Vec<usize>,
    pub duration: Duration,
    pub grace: Duration,
    pub json: bool,
}

#[derive(Serialize, Clone, Copy, Default)]
struct Latency {
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
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

/// One concurrency level of the throughput test.
#[derive(Serialize)]
struct Level {
    concurrency: usize,
    /// From the level's start until its last request ended (at most duration + grace).
    seconds: f64,
    /// Verified signatures.
    signatures: usize,
    per_second: f64,
    /// Of the verified signatures.
    latency: Latency,
    /// Answers with an error other than 429, and signatures that do not verify.
    failed: usize,
    /// 429 answers (not retried by the client).
    throttled: usize,
    /// Requests abandoned at the level's deadline (duration + grace).
    still_open: usize,
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
        p99_ms: pick(0.99),
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

/// What one worker saw during a level.
#[derive(Default)]
struct WorkerTally {
    samples: Vec<Duration>,
    failed: usize,
    throttled: usize,
    still_open: usize,
    first_errors: Vec<String>,
}

/// Signs until `end`; each request must end by `deadline` (`end` + grace) or is abandoned.
async fn worker(
    client: SystemClient,
    wallet: Wallet,
    end: Instant,
    deadline: Instant,
) -> WorkerTally {
    let mut tally = WorkerTally::default();
    while Instant::now() < end {
        match tokio::time::timeout_at(deadline, sign_verified(&client, &wallet)).await {
            Err(_) => {
                tally.still_open += 1;
                break;
            }
            Ok(Ok(took)) => tally.samples.push(took),
            Ok(Err(e)) => {
                let throttle = e
                    .downcast_ref::<mpc_sdk::Error>()
                    .filter(|e| e.is_throttled())
                    .map(|e| e.retry_after().unwrap_or(Duration::from_secs(1)));
                match throttle {
                    Some(wait) => {
                        tally.throttled += 1;
                        tokio::time::sleep_until(end.min(Instant::now() + wait)).await;
                    }
                    None => {
                        tally.failed += 1;
                        if tally.first_errors.len() < 2 {
                            tally.first_errors.push(format!("{e:#}"));
                        }
                    }
                }
            }
        }
    }
    tally
}

/// One level: `concurrency` workers for `duration`, then at most `grace` more.
async fn level(
    client: &SystemClient,
    wallet: &Wallet,
    concurrency: usize,
    duration: Duration,
    grace: Duration,
) -> Result<Level> {
    let started = Instant::now();
    let end = started + duration;
    let deadline = end + grace;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        workers.spawn(worker(client.clone(), wallet.clone(), end, deadline));
    }
    let (mut samples, mut failed, mut throttled, mut still_open) = (Vec::new(), 0, 0, 0);
    let mut shown = 0;
    while let Some(w) = workers.join_next().await {
        let w = w?;
        samples.extend(w.samples);
        failed += w.failed;
        throttled += w.throttled;
        still_open += w.still_open;
        for e in w.first_errors {
            if shown < 3 {
                eprintln!("  error: {e}");
                shown += 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let signatures = samples.len();
    Ok(Level {
        concurrency,
        seconds,
        signatures,
        per_second: signatures as f64 / seconds,
        latency: latency(samples),
        failed,
        throttled,
        still_open,
    })
}

pub async fn run(target: Target, bench: ServiceBench) -> Result<()> {
    // The bench counts 429s itself (no retries); the longest request is a keygen.
    let request_deadline = Duration::from_secs(600).max(bench.duration + bench.grace);
    let client = SystemClient::new(target, 0, request_deadline)?;
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
            let (w, session) = client.create_wallet(t, n).await.with_context(|| {
                format!(
                    "{t}-of-{n} keygen (does the system have {} server parties?)",
                    n - 1
                )
            })?;
            keygens.push(t0.elapsed());
            wallet = Some((w, session));
        }
        let Some((wallet, session)) = wallet else {
            bail!("no keygen ran")
        };
        client.wait_active(&wallet, &session).await?;
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

    let mut levels = Vec::new();
    if let Some(wallet) = throughput_wallet {
        for &concurrency in &bench.concurrency {
            eprintln!(
                "▶ throughput: {concurrency} concurrent clients signing for {:.0} s (+ at most {:.0} s grace; {}-of-{})",
                bench.duration.as_secs_f64(),
                bench.grace.as_secs_f64(),
                wallet.threshold,
                wallet.servers.len() + 1
            );
            let l = level(&client, &wallet, concurrency, bench.duration, bench.grace).await?;
            eprintln!(
                "  {} signatures in {:.1} s: {:.1}/s; p50 {:.0} ms p95 {:.0} ms p99 {:.0} ms; failed {}, throttled {}, still open {}",
                l.signatures,
                l.seconds,
                l.per_second,
                l.latency.p50_ms,
                l.latency.p95_ms,
                l.latency.p99_ms,
                l.failed,
                l.throttled,
                l.still_open
            );
            levels.push(l);
        }
    }

    if bench.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"configs": results, "throughput": levels})
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
        if !levels.is_empty() {
            println!(
                "\n| clients | signatures/s | p50 / p95 / p99 | signatures | failed | throttled (429) | still open |"
            );
            println!("|---|---|---|---|---|---|---|");
            for l in &levels {
                println!(
                    "| {} | {:.1} | {:.0} / {:.0} / {:.0} ms | {} | {} | {} | {} |",
                    l.concurrency,
                    l.per_second,
                    l.latency.p50_ms,
                    l.latency.p95_ms,
                    l.latency.p99_ms,
                    l.signatures,
                    l.failed,
                    l.throttled,
                    l.still_open
                );
            }
        }
    }
    Ok(())
}
