//! `mpc demo`: a keygen and one signature, verified the way a wallet would (k256 ecrecover), with
//! progress on stderr and optionally one JSON object on stdout. Against a running system by
//! default (`mpc up`: the guide's §5 flow over HTTP), or with every party in this process
//! (`--in-process`).

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use mpc_protocol::{KeyShare, MessageHash};
use serde::Serialize;
use sha3::{Digest, Keccak256};

use crate::local;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Signing threshold t: any t parties sign.
    #[arg(long, short = 't', default_value_t = 2)]
    pub threshold: u16,
    /// Number of parties n.
    #[arg(long, short = 'n', default_value_t = 3)]
    pub parties: u16,
    /// The t signers' indices, comma-separated (default: 0..t).
    #[arg(long, value_delimiter = ',')]
    pub signers: Option<Vec<u16>>,
    /// Text to sign; its Keccak-256 hash is what gets signed.
    #[arg(long, default_value = "hello from mpc-system", conflicts_with = "hash")]
    pub message: String,
    /// A 32-byte hash to sign instead, as 64 hex characters (with or without 0x).
    #[arg(long)]
    pub hash: Option<String>,
    /// Print one JSON object with the results on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Run every party in this process instead of using a running system.
    #[arg(long)]
    pub in_process: bool,
    /// The Account Service (default: from `<data-dir>/endpoints.json`, else http://127.0.0.1:4000).
    #[arg(long, conflicts_with = "in_process")]
    pub url: Option<String>,
    /// The API key (default: `MPC_API_KEY`, else the one `mpc up` generated in `<data-dir>`).
    #[arg(
        long,
        env = "MPC_API_KEY",
        hide_env_values = true,
        conflicts_with = "in_process"
    )]
    pub api_key: Option<String>,
    /// The data directory of a local `mpc up`, to find its endpoints and API key.
    #[arg(long, default_value = "./mpc-data", env = "MPC_DATA_DIR")]
    pub data_dir: std::path::PathBuf,
}

#[derive(Serialize)]
struct DemoOutput {
    threshold: u16,
    parties: u16,
    signers: Vec<u16>,
    public_key: String,
    address: String,
    message_hash: String,
    r: String,
    s: String,
    v: u8,
    signature: String,
    verified: bool,
    keygen_ms: f64,
    keygen_critical_path_ms: f64,
    sign_ms: f64,
    sign_critical_path_ms: f64,
}

pub fn run(args: DemoArgs) -> Result<()> {
    let (t, n) = (args.threshold, args.parties);
    mpc_protocol::Parameters::new(t, n).context("invalid --threshold/--parties")?;
    let signers = args.signers.clone().unwrap_or_else(|| (0..t).collect());
    let mut unique = signers.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != signers.len()
        || signers.len() != usize::from(t)
        || signers.iter().any(|i| *i >= n)
    {
        bail!("--signers must list exactly {t} distinct indices below {n}, got {signers:?}");
    }
    let hash = match &args.hash {
        Some(h) => MessageHash::from_hex(h).context("invalid --hash")?,
        None => MessageHash::new(Keccak256::digest(args.message.as_bytes()).into()),
    };
    if !args.in_process {
        if args.signers.is_some() {
            bail!(
                "--signers applies to --in-process; against a running system the device and the first server parties sign"
            );
        }
        let target =
            crate::client::resolve_target(args.url.clone(), args.api_key.clone(), &args.data_dir)?;
        let demo = super::demo_remote::RemoteDemo {
            threshold: t,
            parties: n,
            hash,
            json: args.json,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(super::demo_remote::run(target, demo));
    }
    let mut err = std::io::stderr();

    writeln!(
        err,
        "▶ keygen: {t}-of-{n}, {n} parties in this process (DKLs23, secp256k1)"
    )?;
    let keygen_rounds = 4;
    let run = local::keygen(t, n, &mut |phase| {
        if phase > 0 && phase <= keygen_rounds {
            let what = if phase == keygen_rounds {
                "echo check"
            } else {
                "messages"
            };
            let _ = writeln!(
                std::io::stderr(),
                "  round {phase}/{keygen_rounds}: {what} delivered"
            );
        }
    })?;
    let shares: Vec<Arc<KeyShare>> = run.outputs.into_iter().map(Arc::new).collect();
    let public_key = shares[0].public_key();
    if shares.iter().any(|s| s.public_key() != public_key) {
        bail!("parties disagree on the public key");
    }
    let keygen_ms = run.wall.as_secs_f64() * 1e3;
    let keygen_crit = run.times.critical_path().as_secs_f64() * 1e3;
    writeln!(
        err,
        "✔ keygen done in {keygen_ms:.0} ms ({keygen_crit:.0} ms critical path; {} messages, {} KiB sealed)",
        run.messages,
        run.bytes / 1024
    )?;
    writeln!(err, "  public key {}", public_key.to_hex())?;
    writeln!(err, "  address    {}", public_key.eth_address())?;

    let signing: Vec<Arc<KeyShare>> = signers
        .iter()
        .map(|i| shares[*i as usize].clone())
        .collect();
    writeln!(
        err,
        "▶ sign: hash {} with parties {signers:?}",
        hash.to_hex()
    )?;
    let run = local::sign(&signing, hash, &mut |_| {})?;
    let sig = run.outputs[0];
    if run.outputs.iter().any(|s| *s != sig) {
        bail!("signers disagree on the signature");
    }
    let sign_ms = run.wall.as_secs_f64() * 1e3;
    let sign_crit = run.times.critical_path().as_secs_f64() * 1e3;
    local::verify(&public_key.to_uncompressed(), &hash, &sig)
        .context("signature verification failed")?;
    let der = sig.to_der()?;
    writeln!(
        err,
        "✔ signed in {sign_ms:.1} ms ({sign_crit:.1} ms critical path); verified with ecrecover"
    )?;
    writeln!(
        err,
        "  r = {}\n  s = {}\n  v = {}",
        hex::encode(sig.r),
        hex::encode(sig.s),
        sig.v
    )?;

    if args.json {
        let out = DemoOutput {
            threshold: t,
            parties: n,
            signers,
            public_key: public_key.to_hex(),
            address: public_key.eth_address(),
            message_hash: hash.to_hex(),
            r: hex::encode(sig.r),
            s: hex::encode(sig.s),
            v: sig.v,
            signature: hex::encode(der),
            verified: true,
            keygen_ms,
            keygen_critical_path_ms: keygen_crit,
            sign_ms,
            sign_critical_path_ms: sign_crit,
        };
        println!("{}", serde_json::to_string(&out)?);
    }
    Ok(())
}
