//! The CLI's view of a running system, over `mpc-sdk` (the workspace's one HTTP client of the
//! API): where it is, and the guide's §5 flow — a wallet with a user device, signatures with
//! its share — as `mpc demo`, `mpc bench` and the client commands use it. Everything goes
//! through the Account Service's one base URL.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use mpc_protocol::{MessageHash, Signature};
use mpc_sdk::{Client, Config, KeygenRequest, Participant, SignParticipant};
use serde_json::Value;

/// Where the running system is and how to authenticate.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub api_key: String,
}

/// A wallet created through the system; the device's share is held here, as a back end would.
#[derive(Clone)]
pub struct Wallet {
    pub account_id: String,
    pub device: String,
    pub servers: Vec<String>,
    pub threshold: u16,
    pub share_data: String,
    pub public_key: [u8; 65],
}

#[derive(Clone)]
pub struct SystemClient {
    pub sdk: Client,
    target: Target,
}

pub fn hex32(value: &str, name: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(value, &mut out)
        .with_context(|| format!("`{name}` is not 32 bytes of hex"))?;
    Ok(out)
}

pub fn public_key_bytes(hex_key: &str) -> Result<[u8; 65]> {
    hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("public_key is not 65 bytes of hex"))
}

/// The SDK's signature as the engine's type, for k256 verification.
pub fn engine_signature(sig: &mpc_sdk::Signature) -> Result<Signature> {
    Ok(Signature {
        r: hex32(&sig.r, "r")?,
        s: hex32(&sig.s, "s")?,
        v: sig.v,
    })
}

/// `user_device_<12 hex>`: a fresh device id.
pub fn random_device_id() -> Result<String> {
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|e| anyhow!("{e}"))?;
    Ok(format!("user_device_{}", hex::encode(suffix)))
}

impl SystemClient {
    /// `max_retries`: retries after 429/503 (0 to see every throttled answer, as the bench
    /// does); `timeout`: the deadline of each request.
    pub fn new(target: Target, max_retries: u32, timeout: Duration) -> Result<Self> {
        let sdk = Client::new(Config {
            base_url: target.url.clone(),
            api_key: target.api_key.clone(),
            access_token: None,
            timeout,
            max_retries,
        })?;
        Ok(Self { sdk, target })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Keygen for a new `t`-of-`n` wallet: a user device (its share through the Account
    /// Service's relay) and the server parties `server_party_1..n-1`. Returns once the device
    /// has its share, with the keygen's session id.
    pub async fn create_wallet(&self, t: u16, n: u16) -> Result<(Wallet, String)> {
        let device = random_device_id()?;
        let servers: Vec<String> = (1..n).map(|i| format!("server_party_{i}")).collect();
        let mut participants = vec![Participant::new(&device, "android")];
        participants.extend(servers.iter().map(|s| Participant::new(s, "server")));
        let keygen = self
            .sdk
            .create_keygen(&KeygenRequest {
                threshold_n: n,
                threshold_t: t,
                participants,
                ..KeygenRequest::default()
            })
            .await?;
        let token = keygen
            .join_tokens
            .get(&device)
            .ok_or_else(|| anyhow!("no join token for {device}"))?;
        let share = self
            .sdk
            .generate_user_share(&keygen.session_id, &device, token, None)
            .await?;
        let wallet = Wallet {
            account_id: keygen.account_id,
            device,
            servers,
            threshold: t,
            public_key: public_key_bytes(&share.public_key)?,
            share_data: share.share_data,
        };
        Ok((wallet, keygen.session_id))
    }

    /// Waits until the Account Service shows the wallet's account active (reading the keygen
    /// session applies its outcome if the event has not arrived yet).
    pub async fn wait_active(&self, wallet: &Wallet, keygen_session: &str) -> Result<()> {
        let session = self
            .sdk
            .wait_for_session(keygen_session, Duration::from_secs(60))
            .await?;
        if session.status != "completed" {
            bail!(
                "the keygen is {}: {}",
                session.status,
                session.failure_reason.unwrap_or_default()
            );
        }
        let account = self.sdk.get_account(&wallet.account_id).await?;
        if account.status != "active" {
            bail!(
                "the account is {} after its keygen completed",
                account.status
            );
        }
        Ok(())
    }

    /// Signs `hash` in one call with the device's share and the first `t - 1` server parties.
    pub async fn sign(
        &self,
        wallet: &Wallet,
        hash: &MessageHash,
    ) -> Result<(Signature, mpc_sdk::Signature)> {
        let mut participants = vec![SignParticipant::with_share(
            &wallet.device,
            wallet.share_data.clone(),
        )];
        participants.extend(
            wallet
                .servers
                .iter()
                .take(usize::from(wallet.threshold).saturating_sub(1))
                .map(SignParticipant::server),
        );
        let sig = self
            .sdk
            .sign_transaction(&wallet.account_id, &hash.to_hex(), participants)
            .await?;
        Ok((engine_signature(&sig)?, sig))
    }
}

/// The running system's address and key: the flags, else a local `mpc up`'s data directory, else
/// the standard port.
pub fn resolve_target(
    url: Option<String>,
    api_key: Option<String>,
    data_dir: &Path,
) -> Result<Target> {
    let endpoints: Option<Value> = std::fs::read(data_dir.join("endpoints.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let url = url
        .or_else(|| {
            endpoints
                .as_ref()
                .and_then(|e| e["account"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "http://127.0.0.1:4000".into());
    let api_key = match api_key {
        Some(k) => k,
        None => crate::secrets::stored_api_key(data_dir)?.ok_or_else(|| {
            anyhow!("no API key: pass --api-key or set MPC_API_KEY (the key `mpc up` printed), or run from the directory of `mpc up`")
        })?,
    };
    Ok(Target {
        url: url.trim_end_matches('/').into(),
        api_key,
    })
}

/// Where a running system is: the flags shared by every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The Account Service (default: from `<data-dir>/endpoints.json`, else http://127.0.0.1:4000).
    #[arg(long)]
    pub url: Option<String>,
    /// The API key (default: `MPC_API_KEY`, else the one `mpc up` generated in `<data-dir>`).
    #[arg(long, env = "MPC_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The data directory of a local `mpc up`, to find its endpoints and API key.
    #[arg(long, default_value = "./mpc-data", env = "MPC_DATA_DIR")]
    pub data_dir: std::path::PathBuf,
}

impl RemoteArgs {
    pub fn target(&self) -> Result<Target> {
        resolve_target(self.url.clone(), self.api_key.clone(), &self.data_dir)
    }
}
