//! A small client for a running system (Account Service + Server Party API), used by `mpc demo`
//! and `mpc bench`: the guide's §5 flow — create a wallet with a user device, sign with it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use mpc_protocol::{MessageHash, Signature};
use reqwest::Client;
use serde_json::{Value, json};

/// Where the running system is and how to authenticate.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub party_api_url: String,
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
    http: Client,
    target: Target,
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str> {
    v[name]
        .as_str()
        .ok_or_else(|| anyhow!("response lacks `{name}`: {v}"))
}

fn hex32(v: &Value, name: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(field(v, name)?, &mut out)
        .with_context(|| format!("`{name}` is not 32 bytes of hex"))?;
    Ok(out)
}

impl SystemClient {
    pub fn new(target: Target) -> Result<Self> {
        let http = Client::builder()
            .timeout(Duration::from_secs(600))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self { http, target })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    async fn read(url: &str, resp: reqwest::Response) -> Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]["message"]
                .as_str()
                .unwrap_or("no error message");
            let code = body["error"]["code"].as_str().unwrap_or("unknown");
            bail!("{url} answered {status}: {msg} ({code})");
        }
        Ok(body)
    }

    async fn post(&self, url: String, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(&url)
            .header("X-API-Key", &self.target.api_key)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        Self::read(&url, resp).await
    }

    async fn get(&self, url: String) -> Result<Value> {
        let resp = self
            .http
            .get(&url)
            .header("X-API-Key", &self.target.api_key)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        Self::read(&url, resp).await
    }

    /// Keygen for a new `t`-of-`n` wallet: a user device (through the Server Party API) and the
    /// server parties `server_party_1..n-1`. Returns once the device has its share; the
    /// `session_id` is returned for reporting.
    pub async fn create_wallet(&self, t: u16, n: u16) -> Result<(Wallet, String)> {
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| anyhow!("{e}"))?;
        let device = format!("user_device_{}", hex::encode(suffix));
        let servers: Vec<String> = (1..n).map(|i| format!("server_party_{i}")).collect();
        let mut participants = vec![
            json!({"party_id": device, "device_type": "android", "device_id": format!("android_{}", hex::encode(suffix))}),
        ];
        participants.extend(
            servers
                .iter()
                .map(|s| json!({"party_id": s, "device_type": "server", "platform": "linux"})),
        );
        let keygen = self
            .post(
                format!("{}/api/v1/mpc/keygen", self.target.url),
                json!({"threshold_n": n, "threshold_t": t, "participants": participants}),
            )
            .await?;
        let session = field(&keygen, "session_id")?.to_owned();
        let account_id = field(&keygen, "account_id")?.to_owned();
        let token = keygen["join_tokens"][&device]
            .as_str()
            .ok_or_else(|| anyhow!("no join token for {device}"))?;
        let share = self
            .post(
                format!(
                    "{}/api/v1/keygen/generate-user-share",
                    self.target.party_api_url
                ),
                json!({"session_id": session, "party_id": device, "join_token": token}),
            )
            .await?;
        let public_key: [u8; 65] = hex::decode(field(&share, "public_key")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow!("public_key is not 65 bytes of hex"))?;
        let wallet = Wallet {
            account_id,
            device,
            servers,
            threshold: t,
            share_data: field(&share, "share_data")?.to_owned(),
            public_key,
        };
        Ok((wallet, session))
    }

    /// Waits until the Account Service has activated the wallet's account.
    pub async fn wait_active(&self, wallet: &Wallet) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let a = self
                .get(format!(
                    "{}/api/v1/accounts/{}",
                    self.target.url, wallet.account_id
                ))
                .await?;
            match a["status"].as_str() {
                Some("active") => return Ok(()),
                Some("failed") => bail!("the account failed: {}", a["failure_reason"]),
                _ if Instant::now() > deadline => {
                    bail!("the account is not active after 60 s: {a}")
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Signs `hash` with the device and the first `t - 1` server parties of the wallet.
    pub async fn sign(&self, wallet: &Wallet, hash: &MessageHash) -> Result<(Signature, String)> {
        let signers: Vec<&str> = std::iter::once(wallet.device.as_str())
            .chain(wallet.servers.iter().map(String::as_str))
            .take(usize::from(wallet.threshold))
            .collect();
        let sign = self
            .post(
                format!("{}/api/v1/mpc/sign", self.target.url),
                json!({
                    "account_id": wallet.account_id,
                    "message_hash": hash.to_hex(),
                    "participants": signers.iter().map(|p| json!({"party_id": p})).collect::<Vec<_>>(),
                }),
            )
            .await?;
        let session = field(&sign, "session_id")?.to_owned();
        let token = sign["join_tokens"][&wallet.device]
            .as_str()
            .ok_or_else(|| anyhow!("no join token for {}", wallet.device))?;
        let sig = self
            .post(
                format!("{}/api/v1/sign/with-user-share", self.target.party_api_url),
                json!({
                    "session_id": session,
                    "party_id": wallet.device,
                    "join_token": token,
                    "share_data": wallet.share_data,
                    "message_hash": hash.to_hex(),
                }),
            )
            .await?;
        let v = sig["v"]
            .as_u64()
            .and_then(|v| u8::try_from(v).ok())
            .ok_or_else(|| anyhow!("`v` missing: {sig}"))?;
        Ok((
            Signature {
                r: hex32(&sig, "r")?,
                s: hex32(&sig, "s")?,
                v,
            },
            field(&sig, "signature")?.to_owned(),
        ))
    }
}

/// The running system's address and key: the flags, else a local `mpc up`'s data directory, else
/// the standard ports.
pub fn resolve_target(
    url: Option<String>,
    party_api_url: Option<String>,
    api_key: Option<String>,
    data_dir: &std::path::Path,
) -> Result<Target> {
    let endpoints: Option<Value> = std::fs::read(data_dir.join("endpoints.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let from_file = |k: &str| {
        endpoints
            .as_ref()
            .and_then(|e| e[k].as_str())
            .map(str::to_owned)
    };
    let url = url
        .or_else(|| from_file("account"))
        .unwrap_or_else(|| "http://127.0.0.1:4000".into());
    let party_api_url = party_api_url
        .or_else(|| from_file("party_api"))
        .unwrap_or_else(|| "http://127.0.0.1:8083".into());
    let api_key = match api_key {
        Some(k) => k,
        None => crate::secrets::stored_api_key(data_dir)?.ok_or_else(|| {
            anyhow!("no API key: pass --api-key or set MPC_API_KEY (the key `mpc up` printed), or run from the directory of `mpc up`")
        })?,
    };
    Ok(Target {
        url: url.trim_end_matches('/').into(),
        party_api_url: party_api_url.trim_end_matches('/').into(),
        api_key,
    })
}
