//! `mpc demo` against a running system: the integration guide's §5 flow over HTTP.
//!
//! 1. `POST /api/v1/mpc/keygen` (Account Service): a wallet for a user device and server parties.
//! 2. `POST /api/v1/keygen/generate-user-share` (Server Party API): the device's part of keygen.
//! 3. `POST /api/v1/mpc/sign` with the device and a server party, then
//!    `POST /api/v1/sign/with-user-share` with the device's share.
//! 4. Check the signature with k256 ecrecover against the wallet's public key.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use mpc_protocol::MessageHash;
use reqwest::Client;
use serde_json::{Value, json};

use crate::local;

/// Where the running system is and how to authenticate.
pub struct Target {
    pub url: String,
    pub party_api_url: String,
    pub api_key: String,
}

pub struct RemoteDemo {
    pub threshold: u16,
    pub parties: u16,
    pub hash: MessageHash,
    pub json: bool,
}

async fn post(client: &Client, url: &str, key: &str, body: Value) -> Result<Value> {
    let resp = client
        .post(url)
        .header("X-API-Key", key)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    read(url, resp).await
}

async fn get(client: &Client, url: &str, key: &str) -> Result<Value> {
    let resp = client
        .get(url)
        .header("X-API-Key", key)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    read(url, resp).await
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

pub async fn run(target: Target, demo: RemoteDemo) -> Result<()> {
    let client = Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let (t, n) = (demo.threshold, demo.parties);
    let mut suffix = [0u8; 4];
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

    eprintln!(
        "▶ 1. create a {t}-of-{n} wallet: POST {}/api/v1/mpc/keygen",
        target.url
    );
    let t0 = Instant::now();
    let keygen = post(
        &client,
        &format!("{}/api/v1/mpc/keygen", target.url),
        &target.api_key,
        json!({"threshold_n": n, "threshold_t": t, "participants": participants}),
    )
    .await?;
    let session = field(&keygen, "session_id")?.to_owned();
    let account = field(&keygen, "account_id")?.to_owned();
    let token = keygen["join_tokens"][&device]
        .as_str()
        .ok_or_else(|| anyhow!("no join token for {device}"))?;
    eprintln!("  session {session}, account {account}");

    eprintln!(
        "▶ 2. the device's share: POST {}/api/v1/keygen/generate-user-share",
        target.party_api_url
    );
    let share = post(
        &client,
        &format!("{}/api/v1/keygen/generate-user-share", target.party_api_url),
        &target.api_key,
        json!({"session_id": session, "party_id": device, "join_token": token}),
    )
    .await?;
    let keygen_ms = t0.elapsed().as_secs_f64() * 1e3;
    let share_data = field(&share, "share_data")?.to_owned();
    let public_key_hex = field(&share, "public_key")?.to_owned();
    let public_key: [u8; 65] = hex::decode(&public_key_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow!("public_key is not 65 bytes of hex"))?;
    let address = mpc_protocol::PublicKey::from_sec1(&public_key)?.eth_address();
    eprintln!("✔ wallet created in {keygen_ms:.0} ms: address {address}");

    // The account becomes active when the Account Service sees the session complete.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = get(
            &client,
            &format!("{}/api/v1/accounts/{account}", target.url),
            &target.api_key,
        )
        .await?;
        match a["status"].as_str() {
            Some("active") => break,
            Some("failed") => bail!("the account failed: {}", a["failure_reason"]),
            _ if Instant::now() > deadline => bail!("the account is not active after 30 s: {a}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    let signers: Vec<&str> = std::iter::once(device.as_str())
        .chain(servers.iter().map(String::as_str))
        .take(t as usize)
        .collect();
    eprintln!(
        "▶ 3. sign {} with {signers:?}: POST {}/api/v1/mpc/sign",
        demo.hash.to_hex(),
        target.url
    );
    let t1 = Instant::now();
    let sign = post(
        &client,
        &format!("{}/api/v1/mpc/sign", target.url),
        &target.api_key,
        json!({
            "account_id": account,
            "message_hash": demo.hash.to_hex(),
            "participants": signers.iter().map(|p| json!({"party_id": p})).collect::<Vec<_>>(),
        }),
    )
    .await?;
    let sign_session = field(&sign, "session_id")?.to_owned();
    let sign_token = sign["join_tokens"][&device]
        .as_str()
        .ok_or_else(|| anyhow!("no join token for {device}"))?;
    let sig = post(
        &client,
        &format!("{}/api/v1/sign/with-user-share", target.party_api_url),
        &target.api_key,
        json!({
            "session_id": sign_session,
            "party_id": device,
            "join_token": sign_token,
            "share_data": share_data,
            "message_hash": demo.hash.to_hex(),
        }),
    )
    .await?;
    let sign_ms = t1.elapsed().as_secs_f64() * 1e3;
    let v = sig["v"]
        .as_u64()
        .and_then(|v| u8::try_from(v).ok())
        .ok_or_else(|| anyhow!("`v` missing: {sig}"))?;
    let signature = mpc_protocol::Signature {
        r: hex32(&sig, "r")?,
        s: hex32(&sig, "s")?,
        v,
    };
    eprintln!("✔ signed in {sign_ms:.0} ms");

    eprintln!("▶ 4. verify with ecrecover");
    local::verify(&public_key, &demo.hash, &signature).context("the signature does not verify")?;
    eprintln!(
        "✔ ecrecover(hash, r, s, v) = the wallet's key\n  address   {address}\n  signature {}",
        field(&sig, "signature")?
    );
    if demo.json {
        println!(
            "{}",
            json!({
                "account_id": account,
                "device_party_id": device,
                "public_key": public_key_hex,
                "address": address,
                "message_hash": demo.hash.to_hex(),
                "r": hex::encode(signature.r),
                "s": hex::encode(signature.s),
                "v": signature.v,
                "signature": field(&sig, "signature")?,
                "verified": true,
                "keygen_ms": keygen_ms,
                "sign_ms": sign_ms,
            })
        );
    }
    Ok(())
}
