//! Client commands against a running system, on `mpc-sdk` through the Account Service's one
//! base URL, with progress on stderr and the result as JSON on stdout:
//! `mpc keygen`, `mpc sign`, `mpc session get`, `mpc accounts list`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mpc_protocol::MessageHash;
use mpc_sdk::{KeygenRequest, Participant, SignParticipant};
use serde_json::json;
use sha3::{Digest, Keccak256};

use crate::client::{
    RemoteArgs, SystemClient, engine_signature, public_key_bytes, random_device_id,
};
use crate::local;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn client(remote: &RemoteArgs) -> Result<SystemClient> {
    SystemClient::new(remote.target()?, 3, Duration::from_secs(600))
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Signing threshold t.
    #[arg(long, short = 't', default_value_t = 2)]
    pub threshold: u16,
    /// Number of parties n: the device (unless --no-device) and server parties.
    #[arg(long, short = 'n', default_value_t = 3)]
    pub parties: u16,
    /// The device's party id (default: `user_device_<random>`).
    #[arg(long)]
    pub device: Option<String>,
    /// The device's type.
    #[arg(long, default_value = "android")]
    pub device_type: String,
    /// Server parties only (`server_party_1..n`).
    #[arg(long, conflicts_with_all = ["device", "share_file"])]
    pub no_device: bool,
    /// Write the device's share here (mode 0600) instead of printing it in the JSON.
    #[arg(long)]
    pub share_file: Option<PathBuf>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn keygen(args: KeygenArgs) -> Result<()> {
    mpc_protocol::Parameters::new(args.threshold, args.parties)
        .context("invalid --threshold/--parties")?;
    let client = client(&args.remote)?;
    runtime()?.block_on(async move {
        let (t, n) = (args.threshold, args.parties);
        let device = match (&args.device, args.no_device) {
            (_, true) => None,
            (Some(d), false) => Some(d.clone()),
            (None, false) => Some(random_device_id()?),
        };
        let servers = n - u16::from(device.is_some());
        let mut participants: Vec<Participant> = device
            .iter()
            .map(|d| Participant::new(d, &args.device_type))
            .collect();
        participants
            .extend((1..=servers).map(|i| Participant::new(format!("server_party_{i}"), "server")));
        let started = Instant::now();
        let created = client
            .sdk
            .create_keygen(&KeygenRequest {
                threshold_n: n,
                threshold_t: t,
                participants,
                ..KeygenRequest::default()
            })
            .await?;
        eprintln!(
            "▶ keygen {t}-of-{n}: session {} for account {}",
            created.session_id, created.account_id
        );
        let mut share = None;
        if let Some(device) = &device {
            eprintln!(
                "  {device}: joining through {}/api/v1/keygen/generate-user-share …",
                client.target().url
            );
            let token = created
                .join_tokens
                .get(device)
                .context("no join token for the device")?;
            share = Some(
                client
                    .sdk
                    .generate_user_share(&created.session_id, device, token, None)
                    .await?,
            );
        }
        eprintln!("  waiting for the session to complete …");
        let session = client
            .sdk
            .wait_for_session(&created.session_id, Duration::from_secs(600))
            .await?;
        if session.status != "completed" {
            bail!(
                "keygen {}: {}",
                session.status,
                session.failure_reason.unwrap_or_default()
            );
        }
        let public_key = session.public_key.clone().context("no public key")?;
        let address = session.ethereum_address.clone().unwrap_or_default();
        eprintln!(
            "✔ key created in {:.1} s\n  public key {public_key}\n  address    {address}",
            started.elapsed().as_secs_f64()
        );
        let mut out = json!({
            "account_id": created.account_id,
            "session_id": created.session_id,
            "threshold_t": t,
            "threshold_n": n,
            "public_key": public_key,
            "address": address,
        });
        if let (Some(share), Some(device)) = (share, device) {
            out["device"] = json!(device);
            out["party_index"] = json!(share.party_index);
            match &args.share_file {
                Some(path) => {
                    write_secret(path, &share.share_data)?;
                    eprintln!("  the device's share is in {}", path.display());
                    out["share_file"] = json!(path.display().to_string());
                }
                None => out["share_data"] = json!(share.share_data),
            }
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(())
    })
}

fn write_secret(path: &std::path::Path, data: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(data.as_bytes())?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The account whose key signs.
    #[arg(long)]
    pub account: String,
    /// The 32-byte hash to sign, 64 hex characters (with or without 0x).
    #[arg(long, conflicts_with = "message")]
    pub hash: Option<String>,
    /// Text whose Keccak-256 hash is signed.
    #[arg(long)]
    pub message: Option<String>,
    /// The device that signs with its share (its party id).
    #[arg(long, requires = "share_file")]
    pub device: Option<String>,
    /// The device's share, as `mpc keygen --share-file` wrote it.
    #[arg(long, requires = "device")]
    pub share_file: Option<PathBuf>,
    /// The server parties that sign, comma-separated (default: as many of the account's as
    /// needed).
    #[arg(long, value_delimiter = ',')]
    pub servers: Option<Vec<String>>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn sign(args: SignArgs) -> Result<()> {
    let hash = match (&args.hash, &args.message) {
        (Some(h), _) => MessageHash::from_hex(h).context("invalid --hash")?,
        (None, Some(m)) => MessageHash::new(Keccak256::digest(m.as_bytes()).into()),
        (None, None) => bail!("give --hash or --message"),
    };
    let client = client(&args.remote)?;
    runtime()?.block_on(async move {
        let account = client.sdk.get_account(&args.account).await?;
        let public_key = public_key_bytes(
            account
                .public_key
                .as_deref()
                .context("the account has no key yet")?,
        )?;
        let mut participants = Vec::new();
        if let (Some(device), Some(path)) = (&args.device, &args.share_file) {
            let share = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            participants.push(SignParticipant::with_share(device, share.trim()));
        }
        let needed = usize::from(account.threshold_t).saturating_sub(participants.len());
        let servers: Vec<String> = match &args.servers {
            Some(s) => s.clone(),
            None => account
                .shares
                .iter()
                .flatten()
                .filter(|s| s.share_type == "server")
                .map(|s| s.party_id.clone())
                .take(needed)
                .collect(),
        };
        participants.extend(servers.iter().map(SignParticipant::server));
        let names: Vec<&str> = participants.iter().map(|p| p.party_id.as_str()).collect();
        eprintln!("▶ sign {} with {names:?}", hash.to_hex());
        if args.device.is_some() {
            eprintln!("  one call: the device's share goes with the request");
        } else {
            eprintln!("  server parties only: waiting for the session …");
        }
        let started = Instant::now();
        let sig = client
            .sdk
            .sign_transaction(&args.account, &hash.to_hex(), participants)
            .await?;
        local::verify(&public_key, &hash, &engine_signature(&sig)?)
            .context("the signature does not verify")?;
        eprintln!(
            "✔ signed in {:.0} ms (session {}); verified with ecrecover",
            started.elapsed().as_secs_f64() * 1e3,
            sig.session_id
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "account_id": args.account,
                "session_id": sig.session_id,
                "message_hash": hash.to_hex(),
                "signature": sig.signature,
                "r": sig.r,
                "s": sig.s,
                "v": sig.v,
                "address": account.ethereum_address,
                "verified": true,
            }))?
        );
        Ok(())
    })
}

#[derive(Args, Debug)]
pub struct SessionArgs {
    #[command(subcommand)]
    pub command: SessionCommand,
}

#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// A session's state (with --wait: as soon as it is final, at most that many seconds).
    Get {
        session_id: String,
        /// Seconds to wait for the session to be final (long polls of at most 60 s).
        #[arg(long, default_value_t = 0)]
        wait: u64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

pub fn session(args: SessionArgs) -> Result<()> {
    let SessionCommand::Get {
        session_id,
        wait,
        remote,
    } = args.command;
    let client = client(&remote)?;
    runtime()?.block_on(async move {
        let session = if wait == 0 {
            client.sdk.get_session(&session_id).await?
        } else {
            eprintln!("▶ waiting up to {wait} s for session {session_id} to be final …");
            match client
                .sdk
                .wait_for_session(&session_id, Duration::from_secs(wait))
                .await
            {
                Ok(s) => s,
                Err(mpc_sdk::Error::Timeout(_)) => client.sdk.get_session(&session_id).await?,
                Err(e) => return Err(e.into()),
            }
        };
        eprintln!(
            "✔ {} session {}: {}",
            session.session_type, session.session_id, session.status
        );
        println!("{}", serde_json::to_string_pretty(&session)?);
        Ok(())
    })
}

#[derive(Args, Debug)]
pub struct AccountsArgs {
    #[command(subcommand)]
    pub command: AccountsCommand,
}

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Accounts, oldest first.
    List {
        /// `pending`, `active`, `suspended` or `failed`.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

pub fn accounts(args: AccountsArgs) -> Result<()> {
    let AccountsCommand::List {
        status,
        limit,
        offset,
        json,
        remote,
    } = args.command;
    let client = client(&remote)?;
    runtime()?.block_on(async move {
        let page = client
            .sdk
            .list_accounts(status.as_deref(), limit, offset)
            .await?;
        eprintln!(
            "✔ {} of {} account(s) from {}",
            page.accounts.len(),
            page.total,
            page.offset
        );
        if json {
            println!("{}", serde_json::to_string_pretty(&page)?);
            return Ok(());
        }
        println!("{:<36}  {:<9}  {:>5}  address", "account", "status", "t/n");
        for a in &page.accounts {
            println!(
                "{:<36}  {:<9}  {:>5}  {}",
                a.account_id,
                a.status,
                format!("{}/{}", a.threshold_t, a.threshold_n),
                a.ethereum_address.as_deref().unwrap_or("-")
            );
        }
        Ok(())
    })
}
