//! Operator commands for a deployment: `mpc keys …` (generate secrets, derive the public keys that
//! other services pin) and `mpc party …` (a server party's identity, master-key rotation, bans).
//! They read the same `MPC_…` variables (and `--config` env file) as `mpc serve`.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use mpc_proto::PartyId;
use mpc_protocol::SealingKey;
use mpc_store::{Db, DbConfig};
use zeroize::Zeroizing;

use crate::vars::Vars;

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
    /// An env file read under the environment.
    #[arg(long, global = true, env = "MPC_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Print a fresh random secret: 32 bytes, base64 (for seeds, master keys, share keys).
    Generate,
    /// The public key that verifies join tokens (`MPC_JOIN_TOKEN_PUBLIC_KEY`), from `MPC_JOIN_TOKEN_SEED`.
    JoinTokenPublicKey,
    /// The public key that verifies access tokens (`MPC_ACCESS_TOKEN_PUBLIC_KEY`), from `MPC_ACCESS_TOKEN_SEED`.
    AccessTokenPublicKey,
    /// The Server Party API's identity public key (pinned as a delegate by the server parties),
    /// from `MPC_PARTY_API_IDENTITY_SEED`.
    PartyApiIdentity,
}

#[derive(Args, Debug)]
pub struct PartyArgs {
    #[command(subcommand)]
    pub command: PartyCommand,
    /// An env file read under the environment (the party's `MPC_PARTY_…` variables).
    #[arg(long, global = true, env = "MPC_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum PartyCommand {
    /// Create the party's identity if needed and print its public key (what the others pin).
    Identity,
    /// Re-seal every share and the identity under a new master key. The new key comes from
    /// `MPC_PARTY_NEW_MASTER_KEY` (base64) or `--new-key-file`; afterwards, configure the party
    /// with the new key and id.
    RotateMasterKey {
        /// The new key's id (must differ from the current `MPC_PARTY_MASTER_KEY_ID`).
        #[arg(long)]
        new_key_id: String,
        /// A file holding the new key (32 bytes, or base64).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Lift the freeze of a key for a party the protocol banned (after investigating why).
    ClearBan {
        /// The key (account) id.
        #[arg(long)]
        key_id: String,
        /// The banned party.
        #[arg(long)]
        party_id: String,
    },
    /// List the bans on a key.
    Bans {
        #[arg(long)]
        key_id: String,
    },
}

fn seed(vars: &Vars, name: &str) -> Result<Zeroizing<[u8; 32]>> {
    let b64 = Zeroizing::new(vars.get(name).ok_or_else(|| anyhow!("set {name}"))?);
    let bytes = Zeroizing::new(
        STANDARD
            .decode(b64.trim())
            .with_context(|| format!("{name} is not base64"))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        bail!("{name} must be 32 bytes, base64");
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

pub fn keys(args: KeysArgs) -> Result<()> {
    let vars = Vars::load(args.config.as_deref())?;
    let out = match args.command {
        KeysCommand::Generate => {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut_slice()).map_err(|e| anyhow!("{e}"))?;
            STANDARD.encode(bytes.as_slice())
        }
        KeysCommand::JoinTokenPublicKey => hex::encode(
            mpc_proto::TokenSigner::from_seed(&*seed(&vars, "MPC_JOIN_TOKEN_SEED")?).public_key(),
        ),
        KeysCommand::AccessTokenPublicKey => hex::encode(
            mpc_proto::access_token::AccessTokenSigner::from_seed(&*seed(
                &vars,
                "MPC_ACCESS_TOKEN_SEED",
            )?)
            .public_key(),
        ),
        KeysCommand::PartyApiIdentity => {
            let s = seed(&vars, "MPC_PARTY_API_IDENTITY_SEED")?;
            mpc_protocol::IdentityKey::from_seed(&s)
                .public_key()
                .to_string()
        }
    };
    println!("{out}");
    Ok(())
}

/// The party's id, master key and database, from the same variables `mpc serve --service party` reads.
async fn party_context(vars: &Vars) -> Result<(PartyId, SealingKey, Db)> {
    let party = PartyId::parse(
        &vars
            .get("MPC_PARTY_ID")
            .ok_or_else(|| anyhow!("set MPC_PARTY_ID"))?,
    )
    .map_err(|e| anyhow!(e.message))?;
    let key_id = vars
        .get("MPC_PARTY_MASTER_KEY_ID")
        .unwrap_or_else(|| "kek-1".into());
    let key = match (
        vars.get("MPC_PARTY_MASTER_KEY"),
        vars.get("MPC_PARTY_MASTER_KEY_FILE"),
    ) {
        (Some(b64), None) => server_party::master_key_from_base64(&key_id, &b64)?,
        (None, Some(path)) => {
            server_party::master_key_from_file(&key_id, std::path::Path::new(&path))?
        }
        _ => bail!("set exactly one of MPC_PARTY_MASTER_KEY and MPC_PARTY_MASTER_KEY_FILE"),
    };
    let url = vars
        .get("MPC_PARTY_DATABASE_URL")
        .or_else(|| vars.get("DATABASE_URL"))
        .ok_or_else(|| anyhow!("set MPC_PARTY_DATABASE_URL or DATABASE_URL"))?;
    let mut config = DbConfig::new(url);
    if let Some(schema) = vars.get("MPC_PARTY_DATABASE_SCHEMA") {
        config = config.with_schema(schema);
    }
    let db = Db::connect(&config)
        .await
        .context("connecting the party database")?;
    Ok((party, key, db))
}

pub fn party(args: PartyArgs) -> Result<()> {
    let vars = Vars::load(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let (party, key, db) = party_context(&vars).await?;
        match args.command {
            PartyCommand::Identity => {
                let public = server_party::provision_identity(&db, &party, &key).await?;
                println!("{public}");
            }
            PartyCommand::RotateMasterKey { new_key_id, new_key_file } => {
                let new = match (vars.get("MPC_PARTY_NEW_MASTER_KEY"), new_key_file) {
                    (Some(b64), None) => server_party::master_key_from_base64(&new_key_id, &b64)?,
                    (None, Some(path)) => server_party::master_key_from_file(&new_key_id, &path)?,
                    _ => bail!("give the new key in exactly one of MPC_PARTY_NEW_MASTER_KEY and --new-key-file"),
                };
                let store = mpc_store::party::open(&db).await?;
                let n = server_party::rotate_master_key(store.as_ref(), &key, &new).await?;
                eprintln!("re-sealed {n} item(s) of {party} under {new_key_id}; now set MPC_PARTY_MASTER_KEY_ID={new_key_id} and the new key");
            }
            PartyCommand::ClearBan { key_id, party_id } => {
                let banned = PartyId::parse(&party_id).map_err(|e| anyhow!(e.message))?;
                let store = mpc_store::party::open(&db).await?;
                if store.clear_ban(&key_id, &banned).await? {
                    eprintln!("cleared the ban of {banned} on key {key_id}");
                } else {
                    bail!("{banned} is not banned on key {key_id}");
                }
            }
            PartyCommand::Bans { key_id } => {
                let store = mpc_store::party::open(&db).await?;
                for ban in store.bans(&key_id).await? {
                    println!("{ban:?}");
                }
            }
        }
        Ok(())
    })
}
