//! The Rust SDK (`mpc-sdk`) and the client commands built on it, against a live `mpc up` on
//! ephemeral loopback ports, through the Account Service's one base URL only. Every signature
//! is checked here with k256 (verify, low-s, ecrecover), independently of the binary's checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k256::ecdsa::{RecoveryId, VerifyingKey};
use mpc_sdk::{
    Client, Config, KeygenRequest, Participant, RefreshWithUserShareRequest, SignParticipant,
    SignRequest, SignWithUserShareRequest,
};
use serde_json::Value;

struct Up {
    child: Child,
    url: String,
    key: String,
}

impl Up {
    async fn start(dir: &Path) -> Up {
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
        let deadline = Instant::now() + Duration::from_secs(120);
        let endpoints: Value = loop {
            if let Some(v) = std::fs::read(dir.join("endpoints.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                break v;
            }
            assert!(Instant::now() < deadline, "mpc up did not bind");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let url = endpoints["account"].as_str().unwrap().to_owned();
        let secrets: Value =
            serde_json::from_slice(&std::fs::read(dir.join("secrets.json")).unwrap()).unwrap();
        let key = secrets["api_key"].as_str().unwrap().to_owned();
        let http = reqwest::Client::new();
        while !http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "mpc up did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Up { child, url, key }
    }

    fn client(&self) -> Client {
        Client::new(Config {
            base_url: self.url.clone(),
            api_key: self.key.clone(),
            timeout: Duration::from_secs(120),
            ..Config::default()
        })
        .unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

/// k256, independently: low-s, verifies for the key, ecrecover gives the key, DER matches.
fn check(public_key_hex: &str, hash_hex: &str, r: &str, s: &str, v: u64, der: &str) {
    let vk = VerifyingKey::from_sec1_bytes(&hex::decode(public_key_hex).unwrap()).unwrap();
    let hash = hex::decode(hash_hex.trim_start_matches("0x")).unwrap();
    let mut rb = [0u8; 32];
    let mut sb = [0u8; 32];
    hex::decode_to_slice(r, &mut rb).unwrap();
    hex::decode_to_slice(s, &mut sb).unwrap();
    let sig = k256::ecdsa::Signature::from_scalars(rb, sb).unwrap();
    assert_eq!(sig.normalize_s(), sig, "low-s");
    let rec = RecoveryId::from_byte(u8::try_from(v).unwrap()).unwrap();
    assert_eq!(
        VerifyingKey::recover_from_prehash(&hash, &sig, rec).unwrap(),
        vk
    );
    assert_eq!(
        k256::ecdsa::Signature::from_der(&hex::decode(der).unwrap()).unwrap(),
        sig
    );
}

fn random_hash() -> String {
    let mut h = [0u8; 32];
    getrandom::fill(&mut h).unwrap();
    hex::encode(h)
}

fn mpc(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_mpc"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("MPC_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mpc {args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mpc {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_and_the_client_commands_against_mpc_up() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mpc-data");
    let up = Up::start(&dir).await;
    let client = up.client();

    // The guide's §5.4 flow: keygen, the device's share, sign in one call.
    let keygen = client
        .create_keygen(&KeygenRequest {
            threshold_n: 3,
            threshold_t: 2,
            participants: vec![
                Participant::new("user_device", "ios"),
                Participant::new("server_party_1", "server"),
                Participant::new("server_party_2", "server"),
            ],
            ..KeygenRequest::default()
        })
        .await
        .unwrap();
    let share = client
        .generate_user_share(
            &keygen.session_id,
            "user_device",
            &keygen.join_tokens["user_device"],
            None,
        )
        .await
        .unwrap();
    let done = client
        .wait_for_session(&keygen.session_id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.status, "completed");
    let account = client.get_account(&keygen.account_id).await.unwrap();
    assert_eq!(account.status, "active");
    assert_eq!(
        account.ethereum_address,
        share.address(),
        "the SDK's address"
    );
    let pk = share.public_key.clone();

    let hash = random_hash();
    let sig = client
        .sign_transaction(
            &keygen.account_id,
            &hash,
            vec![
                SignParticipant::with_share("user_device", share.share_data.clone()),
                SignParticipant::server("server_party_1"),
            ],
        )
        .await
        .unwrap();
    check(&pk, &hash, &sig.r, &sig.s, u64::from(sig.v), &sig.signature);

    // Servers only: the session is waited for (long poll).
    let hash = random_hash();
    let sig = client
        .sign_transaction(
            &keygen.account_id,
            &hash,
            vec![
                SignParticipant::server("server_party_1"),
                SignParticipant::server("server_party_2"),
            ],
        )
        .await
        .unwrap();
    check(&pk, &hash, &sig.r, &sig.s, u64::from(sig.v), &sig.signature);

    // A device with an access token only, through the relay.
    let token = client
        .create_access_token(&keygen.account_id)
        .await
        .unwrap();
    let device = Client::new(Config {
        base_url: up.url.clone(),
        access_token: Some(token.access_token.clone()),
        ..Config::default()
    })
    .unwrap();
    let hash = random_hash();
    let created = client
        .create_sign(&SignRequest {
            account_id: keygen.account_id.clone(),
            message_hash: hash.clone(),
            participants: vec![
                // The device joins on its own below (no share in this request).
                SignParticipant {
                    party_id: "user_device".into(),
                    ..SignParticipant::default()
                },
                SignParticipant::server("server_party_2"),
            ],
        })
        .await
        .unwrap();
    assert_eq!(created.status, "created");
    let answer = device
        .sign_with_user_share(&SignWithUserShareRequest {
            session_id: created.session_id.clone(),
            party_id: "user_device".into(),
            join_token: created.join_tokens["user_device"].clone(),
            share_data: share.share_data.clone(),
            message_hash: hash.clone(),
        })
        .await
        .unwrap();
    check(
        &pk,
        &hash,
        &answer.r,
        &answer.s,
        u64::from(answer.v),
        &answer.signature,
    );
    let e = device.list_accounts(None, 10, 0).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(401), Some("invalid_api_key")));

    // Refresh: the device's new share signs.
    let refresh = client.refresh_account(&keygen.account_id).await.unwrap();
    let renewed = client
        .refresh_with_user_share(&RefreshWithUserShareRequest {
            session_id: refresh.session_id.clone(),
            party_id: "user_device".into(),
            join_token: refresh.join_tokens["user_device"].clone(),
            share_data: share.share_data.clone(),
            user_public_key: None,
        })
        .await
        .unwrap();
    assert_eq!(renewed.public_key, pk);
    client
        .wait_for_session(&refresh.session_id, Duration::from_secs(60))
        .await
        .unwrap();
    let hash = random_hash();
    let sig = client
        .sign_transaction(
            &keygen.account_id,
            &hash,
            vec![
                SignParticipant::with_share("user_device", renewed.share_data.clone()),
                SignParticipant::server("server_party_2"),
            ],
        )
        .await
        .unwrap();
    check(&pk, &hash, &sig.r, &sig.s, u64::from(sig.v), &sig.signature);

    // Suspension and typed errors.
    assert_eq!(
        client
            .suspend_account(&keygen.account_id)
            .await
            .unwrap()
            .status,
        "suspended"
    );
    let e = client
        .sign_transaction(
            &keygen.account_id,
            &random_hash(),
            vec![
                SignParticipant::server("server_party_1"),
                SignParticipant::server("server_party_2"),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(403), Some("account_suspended"))
    );
    client.activate_account(&keygen.account_id).await.unwrap();
    let e = client
        .get_session("5f1c0a52-95cc-4a8d-9f86-0d5d2b6c1e70")
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(404), Some("session_not_found"))
    );
    let e = client.get_session("not-a-uuid").await.unwrap_err();
    assert_eq!(e.status(), Some(400));
    let e = client
        .create_sign(&SignRequest {
            account_id: keygen.account_id.clone(),
            message_hash: "abc".into(),
            participants: vec![],
        })
        .await
        .unwrap_err();
    assert!(matches!(e, mpc_sdk::Error::InvalidArgument(_)), "{e}");
    let listed = client.list_accounts(Some("active"), 100, 0).await.unwrap();
    assert!(
        listed
            .accounts
            .iter()
            .any(|a| a.account_id == keygen.account_id)
    );

    // The client commands.
    let share_file = tmp.path().join("device.share");
    let k = mpc(
        &dir,
        &[
            "keygen",
            "-t",
            "2",
            "-n",
            "3",
            "--device",
            "cli_device_2",
            "--share-file",
            share_file.to_str().unwrap(),
        ],
    );
    assert!(k.get("share_data").is_none(), "the share went to the file");
    let account_id = k["account_id"].as_str().unwrap();
    let pk = k["public_key"].as_str().unwrap();
    let s = mpc(
        &dir,
        &[
            "sign",
            "--account",
            account_id,
            "--device",
            "cli_device_2",
            "--share-file",
            share_file.to_str().unwrap(),
            "--message",
            "hello",
        ],
    );
    check(
        pk,
        s["message_hash"].as_str().unwrap(),
        s["r"].as_str().unwrap(),
        s["s"].as_str().unwrap(),
        s["v"].as_u64().unwrap(),
        s["signature"].as_str().unwrap(),
    );
    let session = mpc(
        &dir,
        &[
            "session",
            "get",
            s["session_id"].as_str().unwrap(),
            "--wait",
            "5",
        ],
    );
    assert_eq!(session["status"], "completed");
    assert_eq!(session["r"], s["r"]);
    let listed = mpc(&dir, &["accounts", "list", "--json"]);
    assert!(
        listed["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["account_id"] == account_id),
        "{listed}"
    );

    // `mpc demo` and a short `mpc bench` sweep through the same base URL.
    let demo = mpc(&dir, &["demo", "--json"]);
    check(
        demo["public_key"].as_str().unwrap(),
        demo["message_hash"].as_str().unwrap(),
        demo["r"].as_str().unwrap(),
        demo["s"].as_str().unwrap(),
        demo["v"].as_u64().unwrap(),
        demo["signature"].as_str().unwrap(),
    );
    let bench = mpc(
        &dir,
        &[
            "bench",
            "--configs",
            "2-3",
            "--keygen-runs",
            "1",
            "--sign-runs",
            "2",
            "--concurrency",
            "1,4",
            "--duration",
            "2",
            "--grace",
            "20",
            "--json",
        ],
    );
    let levels = bench["throughput"].as_array().unwrap();
    assert_eq!(levels.len(), 2, "{bench}");
    for (level, clients) in levels.iter().zip([1, 4]) {
        assert_eq!(level["concurrency"], clients);
        assert!(level["signatures"].as_u64().unwrap() > 0, "{level}");
        assert_eq!(level["failed"], 0, "{level}");
        assert_eq!(level["still_open"], 0, "{level}");
        for field in ["per_second", "throttled", "seconds"] {
            assert!(!level[field].is_null(), "{field}: {level}");
        }
        for q in ["p50_ms", "p95_ms", "p99_ms"] {
            assert!(level["latency"][q].as_f64().unwrap() > 0.0, "{q}: {level}");
        }
    }
}
