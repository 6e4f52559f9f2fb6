//! `mpc up --tls`: the whole embedded system on TLS with mutual TLS between services. A client
//! trusting `<data-dir>/tls/ca.pem` creates a wallet and signs (checked with k256 ecrecover);
//! plaintext and clients without the CA are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k256::ecdsa::{RecoveryId, VerifyingKey};
use serde_json::{Value, json};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn post(client: &reqwest::Client, url: String, key: &str, body: Value) -> Value {
    let resp = client
        .post(&url)
        .header("X-API-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_tls_serves_keygen_and_sign_over_tls_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mpc-data");
    let key = "tls-test-key-0123456789abcdef0123456789";
    let _up = Kill(
        Command::new(env!("CARGO_BIN_EXE_mpc"))
            .args(["up", "--tls", "--ephemeral-ports", "--data-dir"])
            .arg(&data)
            .env("MPC_API_KEY", key)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("up.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let endpoints: Value = loop {
        if let Some(v) = std::fs::read(data.join("endpoints.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            break v;
        }
        assert!(Instant::now() < deadline, "mpc up did not bind");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let account = endpoints["account"].as_str().unwrap().to_owned();
    let party_api = endpoints["party_api"].as_str().unwrap().to_owned();
    assert!(account.starts_with("https://"), "{account}");

    let ca = std::fs::read(data.join("tls/ca.pem")).unwrap();
    let tls = mpc_service::TlsConfig {
        ca: Some(ca.into()),
        ..Default::default()
    };
    let client = tls
        .reqwest_builder(reqwest::Client::builder())
        .unwrap()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    loop {
        let ready = client
            .get(format!("{account}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "mpc up did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Plaintext HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!(
            "{}/healthz",
            account.replace("https://", "http://")
        ))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plaintext must be refused: {plain:?}");
    // A client that trusts another CA refuses the server.
    let other = tempfile::tempdir().unwrap();
    let other_pki = mpc_service::tls_gen::ensure_local_pki(
        other.path(),
        &[mpc_service::tls_gen::Subject::service(
            "x",
            &["localhost".into()],
        )],
    )
    .unwrap();
    let stranger = mpc_service::TlsConfig {
        ca: Some(std::fs::read(&other_pki.ca).unwrap().into()),
        ..Default::default()
    }
    .reqwest_builder(reqwest::Client::builder())
    .unwrap()
    .build()
    .unwrap();
    assert!(
        stranger
            .get(format!("{account}/healthz"))
            .send()
            .await
            .is_err()
    );

    // The guide's flow over TLS.
    let device = "user_device_tls";
    let keygen = post(
        &client,
        format!("{account}/api/v1/mpc/keygen"),
        key,
        json!({"threshold_n": 3, "threshold_t": 2, "participants": [
            {"party_id": device, "device_type": "android"},
            {"party_id": "server_party_1", "device_type": "server"},
            {"party_id": "server_party_2", "device_type": "server"}]}),
    )
    .await;
    let share = post(
        &client,
        format!("{party_api}/api/v1/keygen/generate-user-share"),
        key,
        json!({"session_id": keygen["session_id"], "party_id": device,
               "join_token": keygen["join_tokens"][device]}),
    )
    .await;
    let account_id = keygen["account_id"].as_str().unwrap().to_owned();
    loop {
        let acct: Value = client
            .get(format!("{account}/api/v1/accounts/{account_id}"))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if acct["status"] == "active" {
            break;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "not active: {acct}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hash = [0x5au8; 32];
    let s = post(
        &client,
        format!("{account}/api/v1/mpc/sign"),
        key,
        json!({"account_id": account_id, "message_hash": format!("0x{}", hex::encode(hash)),
               "participants": [{"party_id": device}, {"party_id": "server_party_2"}]}),
    )
    .await;
    let sig = post(
        &client,
        format!("{party_api}/api/v1/sign/with-user-share"),
        key,
        json!({"session_id": s["session_id"], "party_id": device,
               "join_token": s["join_tokens"][device],
               "share_data": share["share_data"], "message_hash": hex::encode(hash)}),
    )
    .await;

    // Independent check: ecrecover with k256 returns the wallet's key.
    let vk =
        VerifyingKey::from_sec1_bytes(&hex::decode(share["public_key"].as_str().unwrap()).unwrap())
            .unwrap();
    let mut r = [0u8; 32];
    let mut s_ = [0u8; 32];
    hex::decode_to_slice(sig["r"].as_str().unwrap(), &mut r).unwrap();
    hex::decode_to_slice(sig["s"].as_str().unwrap(), &mut s_).unwrap();
    let k = k256::ecdsa::Signature::from_scalars(r, s_).unwrap();
    let v = RecoveryId::from_byte(sig["v"].as_u64().unwrap() as u8).unwrap();
    assert_eq!(
        VerifyingKey::recover_from_prehash(&hash, &k, v).unwrap(),
        vk
    );
}
