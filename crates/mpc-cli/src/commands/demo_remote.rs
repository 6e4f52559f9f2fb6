//! `mpc demo` against a running system: the integration guide's §5 flow over HTTP.
//!
//! Everything through the Account Service's one base URL, with `mpc-sdk`:
//! 1. `POST /api/v1/mpc/keygen`: a wallet for a user device and server parties; then
//!    `POST /api/v1/keygen/generate-user-share`: the device's part of keygen (relayed to the
//!    Server Party API).
//! 2. `POST /api/v1/mpc/sign` with the device's `share_data` and server parties: the signature
//!    in one call.
//! 3. Check the signature with k256 ecrecover against the wallet's public key.

use std::time::Instant;

use anyhow::{Context, Result};
use mpc_protocol::MessageHash;
use serde_json::json;

use crate::client::{SystemClient, Target};
use crate::local;

pub struct RemoteDemo {
    pub threshold: u16,
    pub parties: u16,
    pub hash: MessageHash,
    pub json: bool,
}

pub async fn run(target: Target, demo: RemoteDemo) -> Result<()> {
    let client = SystemClient::new(target, 3, std::time::Duration::from_secs(600))?;
    let (t, n) = (demo.threshold, demo.parties);
    eprintln!(
        "▶ 1. create a {t}-of-{n} wallet (user device + server parties): {}/api/v1/mpc/keygen",
        client.target().url
    );
    let t0 = Instant::now();
    let (wallet, session) = client.create_wallet(t, n).await?;
    let keygen_ms = t0.elapsed().as_secs_f64() * 1e3;
    let public_key = mpc_protocol::PublicKey::from_sec1(&wallet.public_key)?;
    let address = public_key.eth_address();
    eprintln!(
        "✔ wallet created in {keygen_ms:.0} ms (session {session}, account {})\n  address {address}",
        wallet.account_id
    );
    client.wait_active(&wallet, &session).await?;

    eprintln!(
        "▶ 2. sign {} in one call with the device's share and {} server part(ies)",
        demo.hash.to_hex(),
        t - 1
    );
    let t1 = Instant::now();
    let (signature, signed) = client.sign(&wallet, &demo.hash).await?;
    let der = signed.signature;
    let sign_ms = t1.elapsed().as_secs_f64() * 1e3;
    eprintln!("✔ signed in {sign_ms:.0} ms");

    eprintln!("▶ 3. verify with ecrecover");
    local::verify(&wallet.public_key, &demo.hash, &signature)
        .context("the signature does not verify")?;
    eprintln!(
        "✔ ecrecover(hash, r, s, v) = the wallet's key\n  address   {address}\n  signature {der}"
    );
    if demo.json {
        println!(
            "{}",
            json!({
                "account_id": wallet.account_id,
                "device_party_id": wallet.device,
                "public_key": public_key.to_hex(),
                "address": address,
                "message_hash": demo.hash.to_hex(),
                "r": hex::encode(signature.r),
                "s": hex::encode(signature.s),
                "v": signature.v,
                "signature": der,
                "verified": true,
                "keygen_ms": keygen_ms,
                "sign_ms": sign_ms,
            })
        );
    }
    Ok(())
}
