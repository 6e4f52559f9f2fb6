//! `mpc bench --batch K`: K hashes signed in one 2-of-3 batch session against K single sign
//! sessions one after another, in the same run. Both run the engine in this process over the
//! in-memory transport (no services, no HTTP), so the figure is the engine's part of the batch
//! saving: the round trips of K-1 sessions. Every signature is checked with `k256`.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use mpc_protocol::{KeyShare, MessageHash};
use serde::Serialize;

use crate::local;

#[derive(Serialize)]
struct BatchResult {
    hashes: usize,
    batch_wall_ms: f64,
    singles_wall_ms: f64,
    batch_share_of_singles: f64,
    batch_bytes: usize,
    singles_bytes: usize,
}

pub fn run(k: usize, json: bool) -> Result<()> {
    if k > mpc_protocol::MAX_BATCH {
        bail!("--batch is at most {}", mpc_protocol::MAX_BATCH);
    }
    eprintln!("▶ 2-of-3 keygen, then {k} hashes: one batch session vs {k} single sessions");
    let keygen = local::keygen(2, 3, &mut |_| {})?;
    let shares: Vec<Arc<KeyShare>> = keygen.outputs.into_iter().map(Arc::new).collect();
    let public = shares[0].public_key().to_uncompressed();
    let signers = [shares[0].clone(), shares[2].clone()];
    let hashes: Vec<MessageHash> = (0..k)
        .map(|_| {
            let mut h = [0u8; 32];
            rand::Rng::fill_bytes(&mut rand::rng(), &mut h);
            MessageHash::new(h)
        })
        .collect();

    let started = Instant::now();
    let batch = local::sign_batch(&signers, &hashes, &mut |_| {})?;
    let batch_wall = started.elapsed();
    for (hash, sig) in hashes.iter().zip(&batch.outputs[0]) {
        local::verify(&public, hash, sig)?;
    }

    let started = Instant::now();
    let mut singles_bytes = 0;
    for hash in &hashes {
        let run = local::sign(&signers, *hash, &mut |_| {})?;
        local::verify(&public, hash, &run.outputs[0])?;
        singles_bytes += run.bytes;
    }
    let singles_wall = started.elapsed();

    let result = BatchResult {
        hashes: k,
        batch_wall_ms: batch_wall.as_secs_f64() * 1e3,
        singles_wall_ms: singles_wall.as_secs_f64() * 1e3,
        batch_share_of_singles: batch_wall.as_secs_f64() / singles_wall.as_secs_f64(),
        batch_bytes: batch.bytes,
        singles_bytes,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "{k} hashes, 2-of-3, in process: batch {:.1} ms, singles {:.1} ms (batch = {:.0}% of singles); traffic {} vs {} bytes",
            result.batch_wall_ms,
            result.singles_wall_ms,
            result.batch_share_of_singles * 100.0,
            result.batch_bytes,
            result.singles_bytes
        );
    }
    Ok(())
}
