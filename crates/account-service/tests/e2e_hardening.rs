//! The security defects found by trying the system as an attacker with a valid API key would
//! (issue "Hardening", section 0), and the party registry (section 1), with the real system in
//! this process, on SQLite and on PostgreSQL:
//! - `made_up_server_party`: the attack itself — a keygen naming a server party that does not
//!   exist is refused at once (`unknown_party`) and leaves no account; the Server Party API
//!   refuses to act for a participant declared a server party (even a real one), so the caller
//!   can never collect a server's share; a device participant under a server party's id is
//!   refused;
//! - `device_key_and_hash_checks`: an empty `user_public_key` is a 400 (never an unsealed
//!   share); the all-zero hash and the curve order are refused everywhere; an overflowing
//!   threshold is quoted as sent;
//! - `suspension_cancels_open_signs`: sign sessions created before a suspension fail with it;
//! - `account_keys_at_the_party_api`: a key made with `POST /api/v1/admin/api-keys` works at
//!   the Server Party API, and stops working there once revoked;
//! - `refusals_are_complete`: wrong-key POSTs with bodies on one keep-alive connection each
//!   get a whole 401 and the connection stays usable;
//! - `registry_liveness`: `GET /api/v1/parties`; a party that stops heartbeating is
//!   `party_unavailable` (503, `Retry-After`) within the liveness timeout, and available again
//!   after its restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod full_stack;

use std::time::Duration;

use full_stack::*;
use mpc_testkit::{Backend, Cluster};
use serde_json::{Value, json};
use session_coordinator::registry::RegistryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn keygen_body(participants: &[(&str, &str)]) -> Value {
    json!({
        "threshold_n": participants.len(),
        "threshold_t": 2,
        "participants": participants
            .iter()
            .map(|(p, d)| json!({"party_id": p, "device_type": d}))
            .collect::<Vec<_>>(),
    })
}

async fn account_total(cluster: &Cluster) -> u64 {
    let r = cluster.account_service().get("/api/v1/accounts").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["total"].as_u64().unwrap()
}

async fn made_up_server_party(backend: Backend) {
    let Some(cluster) = cluster(backend, 3).await else {
        return;
    };
    let accounts = cluster.account_service();
    // Exactly the attack: a device, a real server party, and a made-up "server" party.
    let attack = keygen_body(&[
        ("user_device_1", "android"),
        ("server_party_1", "server"),
        ("server_party_9", "server"),
    ]);
    let r = accounts.post("/api/v1/mpc/keygen", &attack).await;
    assert_error(&r, 400, "unknown_party");
    assert!(r.error_message().contains("server_party_9"), "{}", r.body);
    // In any letter case.
    let shouting = keygen_body(&[
        ("user_device_1", "android"),
        ("server_party_1", "server"),
        ("server_party_4", "SERVER"),
    ]);
    assert_error(
        &accounts.post("/api/v1/mpc/keygen", &shouting).await,
        400,
        "unknown_party",
    );
    // A registered server party's id for a device participant.
    let disguised = keygen_body(&[
        ("server_party_2", "android"),
        ("server_party_1", "server"),
        ("server_party_3", "server"),
    ]);
    let r = accounts.post("/api/v1/mpc/keygen", &disguised).await;
    assert_error(&r, 400, "invalid_argument");
    assert!(r.error_message().contains("server_party_2"), "{}", r.body);
    // Nothing was half-created by the refusals.
    assert_eq!(account_total(&cluster).await, 0);

    // The Server Party API acts for devices only: with a real server party's join token in
    // hand (the keygen answer carries every token), asking it to join as that party is refused
    // before it joins.
    let created = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    for server in ["server_party_1", "server_party_2"] {
        let r = cluster
            .party_api()
            .post(PARTY_KEYGEN, &device_body(&created.body, server, json!({})))
            .await;
        assert_error(&r, 403, "permission_denied");
        assert!(
            r.error_message().contains("device participants"),
            "{}",
            r.body
        );
    }
    // The real keygen is unharmed: the device finishes it, the account is active and both
    // server shares are held by the server parties.
    let wallet = finish_keygen(&cluster, &created.body).await;
    let account = accounts
        .get(&format!("/api/v1/accounts/{}", wallet.account_id))
        .await;
    let servers: Vec<_> = share_rows(&account.body)
        .into_iter()
        .filter(|r| r.2 == "server")
        .map(|r| r.0)
        .collect();
    assert_eq!(servers, ["server_party_1", "server_party_2"]);
    sign_with_device(
        &cluster,
        &wallet,
        DEVICE,
        &wallet.device_share,
        &["server_party_1"],
    )
    .await;
    cluster.shutdown().await;
}

async fn device_key_and_hash_checks(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let accounts = cluster.account_service();
    let created = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    for empty in ["", "   "] {
        let r = cluster
            .party_api()
            .post(
                PARTY_KEYGEN,
                &device_body(&created.body, DEVICE, json!({"user_public_key": empty})),
            )
            .await;
        assert_error(&r, 400, "invalid_argument");
        assert!(r.error_message().contains("user_public_key"), "{}", r.body);
        assert!(r.body.get("share_data").is_none());
    }
    // Refused before joining: the device can still take part.
    let wallet = finish_keygen(&cluster, &created.body).await;

    let zero = "00".repeat(32);
    let order = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
    for hash in [
        zero.clone(),
        format!("0x{zero}"),
        order.to_owned(),
        order.to_uppercase(),
    ] {
        let r = accounts
            .post(
                "/api/v1/mpc/sign",
                &sign_body(&wallet, &hash, &[DEVICE, "server_party_1"]),
            )
            .await;
        assert_error(&r, 400, "invalid_message_hash");
        assert!(r.error_message().contains("forged"), "{}", r.body);
    }
    // The Server Party API refuses it too (before it looks at the session).
    let hash = random_hash();
    let created = create_sign(
        &cluster,
        &sign_body(&wallet, &hash, &[DEVICE, "server_party_1"]),
    )
    .await;
    let r = device_signs(
        &cluster,
        &created,
        DEVICE,
        &wallet.device_share,
        &zero,
        &party_api_key(&cluster),
    )
    .await;
    assert_error(&r, 400, "invalid_message_hash");
    // The session is still good for the real hash.
    let r = device_signs(
        &cluster,
        &created,
        DEVICE,
        &wallet.device_share,
        &hash,
        &party_api_key(&cluster),
    )
    .await;
    assert_ok(&r);
    check_signature(&wallet.public_key, &hash, &r.body);

    // Overflowing numbers are quoted as sent.
    for (t, n, quoted) in [
        (json!(2), json!(2_147_483_648u64), "2147483648"),
        (json!(4_294_967_297u64), json!(3), "4294967297"),
    ] {
        let mut body = guide_keygen();
        body["threshold_t"] = t;
        body["threshold_n"] = n;
        let r = accounts.post("/api/v1/mpc/keygen", &body).await;
        assert_error(&r, 400, "invalid_threshold");
        assert!(r.error_message().contains(quoted), "{}", r.body);
    }
    cluster.shutdown().await;
}

async fn suspension_cancels_open_signs(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let accounts = cluster.account_service();
    let wallet = create_wallet(&cluster).await;
    let hash = random_hash();
    let with_device = create_sign(
        &cluster,
        &sign_body(&wallet, &hash, &[DEVICE, "server_party_1"]),
    )
    .await;
    let suspended = accounts
        .post(
            &format!("/api/v1/accounts/{}/suspend", wallet.account_id),
            &json!({}),
        )
        .await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    // The session made before the suspension can no longer be signed.
    let r = device_signs(
        &cluster,
        &with_device,
        DEVICE,
        &wallet.device_share,
        &hash,
        &party_api_key(&cluster),
    )
    .await;
    assert_error(&r, 409, "failed_precondition");
    assert!(
        r.error_message().contains("account suspended"),
        "{}",
        r.body
    );
    let session = accounts
        .wait_for_session_end(str_of(&with_device, "session_id"))
        .await;
    assert_eq!(session["status"], "failed", "{session}");
    assert_eq!(
        session["failure_reason"], "sign failed: cancelled: account suspended",
        "{session}"
    );
    assert!(
        session.get("signature").is_none_or(Value::is_null),
        "{session}"
    );
    // Suspending again is harmless; after activation the account signs again.
    let again = accounts
        .post(
            &format!("/api/v1/accounts/{}/suspend", wallet.account_id),
            &json!({}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let activated = accounts
        .post(
            &format!("/api/v1/accounts/{}/activate", wallet.account_id),
            &json!({}),
        )
        .await;
    assert_eq!(activated.status, 200, "{}", activated.body);
    sign_without_device(&cluster, &wallet, &["server_party_1", "server_party_2"]).await;
    cluster.shutdown().await;
}

async fn account_keys_at_the_party_api(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let accounts = cluster.account_service();
    let wallet = create_wallet(&cluster).await;
    let made = accounts
        .post(
            "/api/v1/admin/api-keys",
            &json!({"name": "wallet-backend", "scope": "operator"}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let key = str_of(&made.body, "api_key").to_owned();
    let key_id = str_of(&made.body["key"], "id").to_owned();
    let sign = |hash: String| {
        let cluster = &cluster;
        let wallet = &wallet;
        let key = key.clone();
        async move {
            let created = create_sign(
                cluster,
                &sign_body(wallet, &hash, &[DEVICE, "server_party_1"]),
            )
            .await;
            device_signs(
                cluster,
                &created,
                DEVICE,
                &wallet.device_share,
                &hash,
                &[("x-api-key", &key)],
            )
            .await
        }
    };
    let hash = random_hash();
    let r = sign(hash.clone()).await;
    assert_ok(&r);
    check_signature(&wallet.public_key, &hash, &r.body);
    // A key nobody made.
    let r = device_signs(
        &cluster,
        &create_sign(
            &cluster,
            &sign_body(&wallet, &random_hash(), &[DEVICE, "server_party_1"]),
        )
        .await,
        DEVICE,
        &wallet.device_share,
        &random_hash(),
        &[("x-api-key", "mpc_made-up-key")],
    )
    .await;
    assert_error(&r, 401, "invalid_api_key");
    // Revoked: refused within the API's memory of good keys (0.5 s here).
    let revoked = accounts
        .request(
            "DELETE",
            &format!("/api/v1/admin/api-keys/{key_id}"),
            &[("x-api-key", &accounts.api_key)],
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = sign(random_hash()).await;
    assert_error(&r, 401, "invalid_api_key");
    assert_eq!(r.error_message(), "API key revoked", "{}", r.body);
    cluster.shutdown().await;
}

/// Reads one HTTP/1.1 response (status line, headers, a Content-Length body) from `stream`.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> (u16, String) {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                buf.drain(..end + 4 + length);
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, body);
            }
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "the connection was closed without a (whole) response"
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn refusals_are_complete(backend: Backend) {
    // 300 wrong keys from one address: without the credential-failure throttle (tested in
    // e2e_abuse), which would answer them 429 after the first 20.
    let Some(cluster) = Cluster::builder()
        .backend(backend)
        .server_parties(2)
        .account_config(|c| c.auth_throttle.max_failures = 0)
        .party_api_config(|c| c.auth_throttle.max_failures = 0)
        .build()
        .await
    else {
        return;
    };
    let addr = cluster.party_api().http;
    let body = json!({
        "session_id": "00000000-0000-0000-0000-000000000000",
        "party_id": DEVICE,
        "join_token": "x",
        "share_data": "ab".repeat(20_000),
        "message_hash": random_hash(),
    })
    .to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..300 {
        let request = format!(
            "POST {PARTY_SIGN} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             x-api-key: wrong-key-{i}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let (status, text) = read_response(&mut stream, &mut buf).await;
        assert_eq!(status, 401, "request {i}: {text}");
        assert!(text.contains("invalid_api_key"), "request {i}: {text}");
    }
    cluster.shutdown().await;
}

async fn registry_liveness(backend: Backend) {
    let Some(mut cluster) = Cluster::builder()
        .backend(backend)
        .server_parties(3)
        .party_api(true)
        .account_service(true)
        .registry(RegistryConfig {
            heartbeat_interval: Duration::from_millis(200),
            liveness_timeout: Duration::from_millis(1000),
            ..RegistryConfig::default()
        })
        .build()
        .await
    else {
        return;
    };
    let parties = cluster.account_service().get("/api/v1/parties").await;
    assert_eq!(parties.status, 200, "{}", parties.body);
    let listed: Vec<(String, String, bool)> = parties.body["parties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["identity_public_key"].as_str().unwrap().len(), 64, "{p}");
            (
                str_of(p, "party_id").to_owned(),
                str_of(p, "kind").to_owned(),
                p["live"].as_bool().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("server-party-api", "party_api"),
        ("server_party_1", "server"),
        ("server_party_2", "server"),
        ("server_party_3", "server"),
    ];
    assert_eq!(listed.len(), expected.len(), "{listed:?}");
    for ((id, kind, live), (want_id, want_kind)) in listed.iter().zip(expected) {
        assert_eq!(
            (id.as_str(), kind.as_str(), *live),
            (want_id, want_kind, true)
        );
    }
    let three = keygen_body(&[
        ("user_device_1", "ios"),
        ("server_party_1", "server"),
        ("server_party_3", "server"),
    ]);
    cluster.stop_party(2).await;
    // Within the liveness timeout (plus the registry snapshot's second), it is unavailable.
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let r = cluster
                .account_service()
                .post("/api/v1/mpc/keygen", &three)
                .await;
            if r.status == 503 {
                return r;
            }
            assert_eq!(r.status, 201, "{}", r.body);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the stopped party became unavailable");
    assert_error(&refused, 503, "party_unavailable");
    assert!(
        refused.error_message().contains("server_party_3"),
        "{}",
        refused.body
    );
    assert!(
        refused.headers.get("retry-after").is_some(),
        "{:?}",
        refused.headers
    );
    let parties = cluster.account_service().get("/api/v1/parties").await;
    let third = parties.body["parties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["party_id"] == "server_party_3")
        .cloned()
        .unwrap();
    assert_eq!(third["live"], false, "{third}");
    // Back after a restart (the testkit waits until it announced itself).
    cluster.start_party(2).await.unwrap();
    let r = cluster
        .account_service()
        .post("/api/v1/mpc/keygen", &three)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    cluster.shutdown().await;
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(Backend::Postgres).await;
                }
            )*
        }
    };
}

both_backends!(
    made_up_server_party,
    device_key_and_hash_checks,
    suspension_cancels_open_signs,
    account_keys_at_the_party_api,
    refusals_are_complete,
    registry_liveness,
);
