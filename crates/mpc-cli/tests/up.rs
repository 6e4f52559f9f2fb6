//! `mpc up` as a user runs it: start, create a wallet and sign through HTTP, stop with SIGTERM,
//! start again on the same data directory, and sign again with the same device share. Every
//! signature is checked with k256 ecrecover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k256::ecdsa::{RecoveryId, VerifyingKey};
use serde_json::{Value, json};

struct Up {
    child: Child,
    account: String,
    party_api: String,
}

impl Up {
    async fn start(dir: &Path) -> Up {
        let _ = std::fs::remove_file(dir.join("endpoints.json"));
        let child = Command::new(env!("CARGO_BIN_EXE_mpc"))
            .args(["up", "--ephemeral-ports", "--data-dir"])
            .arg(dir)
            .env_remove("MPC_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.with_extension("log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        // endpoints.json appears once every listener is bound; then wait for readiness.
        let deadline = Instant::now() + Duration::from_secs(120);
        let endpoints: Value = loop {
            if let Some(v) = std::fs::read(dir.join("endpoints.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "mpc up did not bind its listeners"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let up = Up {
            child,
            account: endpoints["account"].as_str().unwrap().to_owned(),
            party_api: endpoints["party_api"].as_str().unwrap().to_owned(),
        };
        let client = reqwest::Client::new();
        loop {
            let ready = client
                .get(format!("{}/readyz", up.account))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "mpc up did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        up
    }

    /// SIGTERM, then a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "mpc up exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "mpc up did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn post(url: String, key: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
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

async fn get(url: String, key: &str) -> Value {
    reqwest::Client::new()
        .get(&url)
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn check_signature(public_key_hex: &str, hash: &[u8; 32], sig: &Value) {
    let vk = VerifyingKey::from_sec1_bytes(&hex::decode(public_key_hex).unwrap()).unwrap();
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    hex::decode_to_slice(sig["r"].as_str().unwrap(), &mut r).unwrap();
    hex::decode_to_slice(sig["s"].as_str().unwrap(), &mut s).unwrap();
    let k = k256::ecdsa::Signature::from_scalars(r, s).unwrap();
    let v = RecoveryId::from_byte(sig["v"].as_u64().unwrap() as u8).unwrap();
    assert_eq!(
        VerifyingKey::recover_from_prehash(hash, &k, v).unwrap(),
        vk,
        "ecrecover must return the wallet key"
    );
}

async fn sign(
    up: &Up,
    key: &str,
    account: &str,
    device: &str,
    server: &str,
    share: &str,
    hash: [u8; 32],
) -> Value {
    let s = post(
        format!("{}/api/v1/mpc/sign", up.account),
        key,
        json!({"account_id": account, "message_hash": format!("0x{}", hex::encode(hash)),
               "participants": [{"party_id": device}, {"party_id": server}]}),
    )
    .await;
    post(
        format!("{}/api/v1/sign/with-user-share", up.party_api),
        key,
        json!({"session_id": s["session_id"], "party_id": device, "join_token": s["join_tokens"][device],
               "share_data": share, "message_hash": hex::encode(hash)}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_wallet_flow_and_keeps_state_across_restarts() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mpc-data");
    let up = Up::start(&data).await;
    let secrets: Value =
        serde_json::from_slice(&std::fs::read(data.join("secrets.json")).unwrap()).unwrap();
    let key = secrets["api_key"].as_str().unwrap().to_owned();

    // A missing key is a 401 JSON error, not a crash.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/mpc/keygen", up.account))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let device = "user_device_up_test";
    let keygen = post(
        format!("{}/api/v1/mpc/keygen", up.account),
        &key,
        json!({"threshold_n": 3, "threshold_t": 2, "participants": [
            {"party_id": device, "device_type": "android"},
            {"party_id": "server_party_1", "device_type": "server"},
            {"party_id": "server_party_2", "device_type": "server"}]}),
    )
    .await;
    let account = keygen["account_id"].as_str().unwrap().to_owned();
    let share = post(
        format!("{}/api/v1/keygen/generate-user-share", up.party_api),
        &key,
        json!({"session_id": keygen["session_id"], "party_id": device, "join_token": keygen["join_tokens"][device]}),
    )
    .await;
    let share_data = share["share_data"].as_str().unwrap().to_owned();
    let public_key = share["public_key"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(format!("{}/api/v1/accounts/{account}", up.account), &key).await["status"] != "active"
    {
        assert!(Instant::now() < deadline, "account never became active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hash = [0x11u8; 32];
    let sig = sign(
        &up,
        &key,
        &account,
        device,
        "server_party_1",
        &share_data,
        hash,
    )
    .await;
    check_signature(&public_key, &hash, &sig);
    up.stop();

    // Same data directory: the account, the server shares and the key are all still there.
    let up = Up::start(&data).await;
    let acct = get(format!("{}/api/v1/accounts/{account}", up.account), &key).await;
    assert_eq!(acct["status"], "active", "{acct}");
    assert_eq!(
        acct["public_key"].as_str().map(str::to_lowercase),
        Some(public_key.to_lowercase())
    );
    let hash = [0x22u8; 32];
    let sig = sign(
        &up,
        &key,
        &account,
        device,
        "server_party_2",
        &share_data,
        hash,
    )
    .await;
    check_signature(&public_key, &hash, &sig);
    up.stop();

    // The second start's log (a file, not a terminal): no colour codes, no share data, and the
    // API key is not printed again.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("MPC-System is up"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a log file");
    assert!(!log.contains(&share_data), "the device share in the logs");
    assert!(!log.contains(key.as_str()), "the API key printed again");
}
