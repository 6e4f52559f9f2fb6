//! `mpc bench --in-process`: keygen and sign with every party in this process, for the engine and
//! for the bare `dkls23` library measured the same way in the same run, so the engine's overhead
//! (sealing, framing, round bookkeeping, echo checks) is a like-for-like ratio.
//!
//! Timings are per-thread CPU time (robust to other load on the machine), medians over the runs:
//! *total* is all parties' CPU; *critical path* is the sum over phases of the slowest party, i.e.
//! the latency with one core per party and a free network.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use mpc_protocol::{KeyShare, MessageHash};
use serde::Serialize;

use crate::{local, raw};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Measure the engine in this process against the bare library, instead of a running system.
    #[arg(long)]
    pub in_process: bool,
    /// Concurrent clients of the throughput test, one level after the other, comma-separated
    /// (e.g. `16,64,256,1000`; services only; 0 skips it).
    #[arg(long, value_delimiter = ',', default_value = "16")]
    pub concurrency: Vec<usize>,
    /// Seconds of each throughput level (services only).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds a level's requests may still take after its duration; any still open then is
    /// abandoned and counted as still open (every request has this client-side deadline).
    #[arg(long, default_value_t = 10)]
    pub grace: u64,
    /// The Account Service (default: from `<data-dir>/endpoints.json`, else http://127.0.0.1:4000).
    #[arg(long)]
    pub url: Option<String>,
    /// The API key (default: `MPC_API_KEY`, else the one `mpc up` generated in `<data-dir>`).
    #[arg(long, env = "MPC_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The data directory of a local `mpc up`.
    #[arg(long, default_value = "./mpc-data", env = "MPC_DATA_DIR")]
    pub data_dir: std::path::PathBuf,
    /// Threshold configurations as t-n, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2-3,3-5,4-7")]
    pub configs: Vec<String>,
    /// Keygen runs per configuration and implementation.
    #[arg(long, default_value_t = 5)]
    pub keygen_runs: usize,
    /// Signing runs per configuration and implementation (signer sets rotate).
    #[arg(long, default_value_t = 21)]
    pub sign_runs: usize,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Batch mode: signs this many hashes in one 2-of-3 batch session and the same number one
    /// session after another, in this process (in-memory transport), and compares the two.
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
}

#[derive(Serialize, Clone, Copy)]
struct Figures {
    total_ms: f64,
    critical_path_ms: f64,
}

#[derive(Serialize)]
struct ConfigResult {
    threshold: u16,
    parties: u16,
    keygen_raw: Figures,
    keygen_engine: Figures,
    keygen_engine_wall_ms: f64,
    sign_raw: Figures,
    sign_engine: Figures,
    sign_engine_wall_ms: f64,
    keygen_bytes: usize,
    sign_bytes: usize,
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
        * 1e3
}

fn figures(times: &[local::PhaseTimes]) -> Figures {
    Figures {
        total_ms: median(times.iter().map(|t| t.total()).collect()),
        critical_path_ms: median(times.iter().map(|t| t.critical_path()).collect()),
    }
}

fn parse_config(s: &str) -> Result<(u16, u16)> {
    let (t, n) = s
        .split_once('-')
        .with_context(|| format!("configuration {s:?} is not t-n"))?;
    let (t, n) = (t.trim().parse()?, n.trim().parse()?);
    mpc_protocol::Parameters::new(t, n)?;
    Ok((t, n))
}

/// Every `k`-subset of 1..=n (the library's 1-based indices).
fn subsets(n: u16, k: u16) -> Vec<Vec<u8>> {
    (0u32..(1 << n))
        .filter(|m| m.count_ones() == u32::from(k))
        .map(|m| (1..=n as u8).filter(|i| m & (1 << (i - 1)) != 0).collect())
        .collect()
}

fn overhead(raw: f64, engine: f64) -> String {
    if raw > 0.0 {
        format!("{:+.1}%", (engine / raw - 1.0) * 100.0)
    } else {
        "n/a".into()
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.batch > 0 {
        return super::bench_batch::run(args.batch, args.json);
    }
    if args.keygen_runs == 0 || args.sign_runs == 0 {
        bail!("--keygen-runs and --sign-runs must be at least 1");
    }
    let configs = args
        .configs
        .iter()
        .map(|c| parse_config(c))
        .collect::<Result<Vec<_>>>()?;
    if !args.in_process {
        let target = crate::client::resolve_target(args.url, args.api_key, &args.data_dir)?;
        let bench = super::bench_http::ServiceBench {
            configs,
            keygen_runs: args.keygen_runs,
            sign_runs: args.sign_runs,
            concurrency: args.concurrency.into_iter().filter(|c| *c > 0).collect(),
            duration: Duration::from_secs(args.duration),
            grace: Duration::from_secs(args.grace),
            json: args.json,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(super::bench_http::run(target, bench));
    }
    let mut results = Vec::new();
    for (t, n) in configs {
        eprintln!(
            "▶ {t}-of-{n}: {} keygens and {} signatures each, raw library and engine",
            args.keygen_runs, args.sign_runs
        );
        let (mut raw_kg, mut eng_kg, mut eng_kg_wall) = (Vec::new(), Vec::new(), Vec::new());
        let mut raw_parties = Vec::new();
        let mut shares: Vec<Arc<KeyShare>> = Vec::new();
        let mut keygen_bytes = 0;
        // Interleave the two so that drift in machine load affects both alike.
        for _ in 0..args.keygen_runs {
            let (parties, times) = raw::dkg(t as u8, n as u8)?;
            raw_kg.push(times);
            raw_parties = parties;
            let run = local::keygen(t, n, &mut |_| {})?;
            eng_kg.push(run.times);
            eng_kg_wall.push(run.wall);
            keygen_bytes = run.bytes;
            shares = run.outputs.into_iter().map(Arc::new).collect();
        }
        let subs = subsets(n, t);
        let (mut raw_sg, mut eng_sg, mut eng_sg_wall) = (Vec::new(), Vec::new(), Vec::new());
        let mut sign_bytes = 0;
        for k in 0..args.sign_runs {
            let set = &subs[k % subs.len()];
            let mut h = [0u8; 32];
            rand::Rng::fill_bytes(&mut rand::rng(), &mut h);
            raw_sg.push(raw::sign(&raw_parties, set, h)?);
            let signers: Vec<Arc<KeyShare>> = set
                .iter()
                .map(|i| shares[(*i - 1) as usize].clone())
                .collect();
            let hash = MessageHash::new(h);
            let run = local::sign(&signers, hash, &mut |_| {})?;
            local::verify(
                &shares[0].public_key().to_uncompressed(),
                &hash,
                &run.outputs[0],
            )?;
            eng_sg.push(run.times);
            eng_sg_wall.push(run.wall);
            sign_bytes = run.bytes;
        }
        let r = ConfigResult {
            threshold: t,
            parties: n,
            keygen_raw: figures(&raw_kg),
            keygen_engine: figures(&eng_kg),
            keygen_engine_wall_ms: median(eng_kg_wall),
            sign_raw: figures(&raw_sg),
            sign_engine: figures(&eng_sg),
            sign_engine_wall_ms: median(eng_sg_wall),
            keygen_bytes,
            sign_bytes,
        };
        eprintln!(
            "  keygen critical path {:.1} ms (raw {:.1}, {}), total CPU {:.1} ms (raw {:.1}, {})",
            r.keygen_engine.critical_path_ms,
            r.keygen_raw.critical_path_ms,
            overhead(
                r.keygen_raw.critical_path_ms,
                r.keygen_engine.critical_path_ms
            ),
            r.keygen_engine.total_ms,
            r.keygen_raw.total_ms,
            overhead(r.keygen_raw.total_ms, r.keygen_engine.total_ms),
        );
        eprintln!(
            "  sign   critical path {:.2} ms (raw {:.2}, {}), total CPU {:.2} ms (raw {:.2}, {})",
            r.sign_engine.critical_path_ms,
            r.sign_raw.critical_path_ms,
            overhead(r.sign_raw.critical_path_ms, r.sign_engine.critical_path_ms),
            r.sign_engine.total_ms,
            r.sign_raw.total_ms,
            overhead(r.sign_raw.total_ms, r.sign_engine.total_ms),
        );
        results.push(r);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "| (t,n) | keygen critical path: raw / engine | keygen CPU total: raw / engine | sign critical path: raw / engine | sign CPU total: raw / engine | traffic keygen / sign |"
        );
        println!("|---|---|---|---|---|---|");
        for r in &results {
            println!(
                "| {}-of-{} | {:.1} / {:.1} ms ({}) | {:.1} / {:.1} ms ({}) | {:.2} / {:.2} ms ({}) | {:.2} / {:.2} ms ({}) | {} KiB / {} KiB |",
                r.threshold,
                r.parties,
                r.keygen_raw.critical_path_ms,
                r.keygen_engine.critical_path_ms,
                overhead(
                    r.keygen_raw.critical_path_ms,
                    r.keygen_engine.critical_path_ms
                ),
                r.keygen_raw.total_ms,
                r.keygen_engine.total_ms,
                overhead(r.keygen_raw.total_ms, r.keygen_engine.total_ms),
                r.sign_raw.critical_path_ms,
                r.sign_engine.critical_path_ms,
                overhead(r.sign_raw.critical_path_ms, r.sign_engine.critical_path_ms),
                r.sign_raw.total_ms,
                r.sign_engine.total_ms,
                overhead(r.sign_raw.total_ms, r.sign_engine.total_ms),
                r.keygen_bytes / 1024,
                r.sign_bytes / 1024,
            );
        }
    }
    Ok(())
}
