//! The wallet's whole life over HTTP against the real system in this process (coordinator,
//! router, server parties, Server Party API, Account Service; port 0; a fresh database per
//! service), on SQLite and on PostgreSQL, every signature checked with k256 (verify, low-s,
//! ecrecover, DER):
//! - `wallet_flow`: guide §5.1 and §5.2 — keygen (device + server parties 1 and 2) with the
//!   device through `generate-user-share`, the account active with three share-metadata rows,
//!   the session's key and address, a sign with a `0x` hash by the device (with an access token
//!   from the Account Service) and server party 1, and one by the two server parties alone;
//! - `refresh_then_recovery`: refresh (same key, the device's new share signs, its old one fails
//!   with a clear error), then recovery of the lost device for a new device id (same address,
//!   share rows moved, the new share signs, the old device and its shares no longer do);
//! - `idempotent_retries`: keygen and sign retried with `Idempotency-Key` (also concurrently)
//!   get the first answer, and the replayed join tokens are the ones that work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod full_stack;

use full_stack::*;
use mpc_testkit::Backend;
use serde_json::{Value, json};

async fn wallet_flow(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let accounts = cluster.account_service();

    // Step 1: the keygen session.
    let created = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let b = &created.body;
    assert_eq!(b["session_type"], "keygen");
    assert_eq!(
        (b["threshold_n"].as_u64(), b["threshold_t"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(b["status"], "created");
    let mut parties: Vec<&String> = b["join_tokens"].as_object().unwrap().keys().collect();
    parties.sort();
    assert_eq!(parties, ["server_party_1", "server_party_2", DEVICE]);
    let account_id = str_of(b, "account_id").to_owned();
    let pending = accounts
        .get(&format!("/api/v1/accounts/{account_id}"))
        .await;
    assert_eq!(pending.body["status"], "pending", "{}", pending.body);

    // Step 2: the device's share through the Server Party API; the account becomes active.
    let wallet = finish_keygen(&cluster, b).await;
    let account = accounts
        .get(&format!("/api/v1/accounts/{account_id}"))
        .await
        .body;
    assert_eq!(
        account["keygen_session_id"],
        wallet.keygen_session_id.as_str()
    );
    assert_eq!(
        share_rows(&account),
        [
            row(DEVICE, 0, "user_device", "android", "user device (android)"),
            row(
                "server_party_1",
                1,
                "server",
                "server",
                "server_party_1 (encrypted, party database)"
            ),
            row(
                "server_party_2",
                2,
                "server",
                "server",
                "server_party_2 (encrypted, party database)"
            ),
        ]
    );
    // The rows themselves: metadata of this keygen, all active, and nowhere the share.
    let stored = accounts
        .store()
        .await
        .shares(account_id.parse().unwrap(), true)
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    for share in &stored {
        assert!(share.is_active, "{share:?}");
        assert_eq!(
            share.session_id.map(|s| s.to_string()),
            Some(wallet.keygen_session_id.clone())
        );
        let shown = format!("{share:?}");
        assert!(!shown.contains(&wallet.device_share[..64]), "{shown}");
    }
    assert!(!account.to_string().contains(&wallet.device_share[..64]));

    // The keygen session: completed, with the key and its address.
    let keygen = accounts
        .get(&format!(
            "/api/v1/mpc/sessions/{}",
            wallet.keygen_session_id
        ))
        .await
        .body;
    assert_eq!(keygen["status"], "completed", "{keygen}");
    assert_eq!(keygen["public_key"], hex::encode(&wallet.public_key));
    assert_eq!(keygen["ethereum_address"], wallet.address.as_str());
    assert_eq!(keygen["account_id"], account_id.as_str());
    let participants = keygen["participants"].as_array().unwrap();
    assert_eq!(participants.len(), 3);
    assert!(
        participants.iter().all(|p| p["status"] == "completed"),
        "{keygen}"
    );
    accounts
        .wait_for_audit(&format!(
            "operation=session.completed&session_id={}",
            wallet.keygen_session_id
        ))
        .await;

    // §5.2: the hash with its 0x prefix; the device signs with an access token for its account.
    let hash = random_hash();
    let sign = create_sign(
        &cluster,
        &json!({
            "account_id": account_id,
            "message_hash": format!("0x{hash}"),
            "participants": [
                {"party_id": DEVICE, "device_type": "android"},
                {"party_id": "server_party_1", "device_type": "server"}
            ]
        }),
    )
    .await;
    assert_eq!(sign["message_hash"], hash.as_str(), "stripped of 0x");
    assert_eq!(sign["threshold_t"], 2);
    assert_eq!(sign["account_id"], account_id.as_str());
    assert_eq!(sign["join_tokens"].as_object().unwrap().len(), 2);
    let token = accounts
        .post(
            &format!("/api/v1/accounts/{account_id}/access-tokens"),
            &json!({}),
        )
        .await;
    assert_eq!(token.status, 201, "{}", token.body);
    assert_eq!(token.body["scope"], "party-api");
    let bearer = format!("Bearer {}", str_of(&token.body, "access_token"));
    let signed = device_signs(
        &cluster,
        &sign,
        DEVICE,
        &wallet.device_share,
        &format!("0x{hash}"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_ok(&signed);
    assert_eq!(signed.body["party_id"], DEVICE);
    check_signature(&wallet.public_key, &hash, &signed.body);
    let session = accounts
        .wait_for_session_end(str_of(&sign, "session_id"))
        .await;
    assert_completed_sign(&wallet, &hash, &session);
    for field in ["signature", "r", "s", "v"] {
        assert_eq!(session[field], signed.body[field], "{field}");
    }
    let indices: Vec<(&str, u64)> = session["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (str_of(p, "party_id"), p["party_index"].as_u64().unwrap()))
        .collect();
    assert_eq!(indices, [(DEVICE, 0), ("server_party_1", 1)]);

    // The two server parties alone: the session completes without the device.
    let session =
        sign_without_device(&cluster, &wallet, &["server_party_1", "server_party_2"]).await;
    let indices: Vec<u64> = session["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["party_index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [1, 2]);
    accounts
        .wait_for_audit(&format!(
            "operation=session.completed&session_id={}",
            str_of(&session, "session_id")
        ))
        .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_flow_sqlite() {
    wallet_flow(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_flow_postgres() {
    wallet_flow(Backend::Postgres).await;
}

/// A sign by `device` with a share it no longer holds fails at the Server Party API with the
/// protocol's reason, and the session is failed for the Account Service too.
async fn outdated_share_fails(cluster: &mpc_testkit::Cluster, wallet: &Wallet, share: &str) {
    let hash = random_hash();
    let created = create_sign(
        cluster,
        &sign_body(wallet, &hash, &[DEVICE, "server_party_1"]),
    )
    .await;
    let r = device_signs(
        cluster,
        &created,
        DEVICE,
        share,
        &hash,
        &party_api_key(cluster),
    )
    .await;
    assert_error(&r, 422, "protocol_failed");
    let message = r.error_message();
    assert!(
        message.starts_with("sign failed: ") && message.contains("outdated"),
        "{message}"
    );
    let session = cluster
        .account_service()
        .wait_for_session_end(str_of(&created, "session_id"))
        .await;
    assert_eq!(session["status"], "failed", "{session}");
    assert!(
        str_of(&session, "failure_reason").starts_with("sign failed: "),
        "{session}"
    );
    assert_eq!(session["signature"], Value::Null);
}

async fn refresh_then_recovery(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let accounts = cluster.account_service();
    let wallet = create_wallet(&cluster).await;
    let id = &wallet.account_id;

    // Refresh: every party, the device through the API's refresh endpoint.
    let refresh = accounts
        .post(&format!("/api/v1/accounts/{id}/refresh"), &json!({}))
        .await;
    assert_eq!(refresh.status, 201, "{}", refresh.body);
    assert_eq!(refresh.body["session_type"], "refresh");
    assert_eq!(refresh.body["join_tokens"].as_object().unwrap().len(), 3);
    let r = cluster
        .party_api()
        .post(
            PARTY_REFRESH,
            &device_body(
                &refresh.body,
                DEVICE,
                json!({"share_data": wallet.device_share}),
            ),
        )
        .await;
    assert_ok(&r);
    assert_eq!(
        r.body["public_key"],
        hex::encode(&wallet.public_key),
        "same key"
    );
    let refreshed = str_of(&r.body, "share_data").to_owned();
    assert_ne!(refreshed, wallet.device_share);
    let session = accounts
        .wait_for_session_end(str_of(&refresh.body, "session_id"))
        .await;
    assert_eq!(session["status"], "completed", "{session}");
    let account = accounts.get(&format!("/api/v1/accounts/{id}")).await.body;
    assert_eq!(account["public_key"], hex::encode(&wallet.public_key));
    assert_eq!(share_rows(&account).len(), 3);

    sign_with_device(&cluster, &wallet, DEVICE, &refreshed, &["server_party_2"]).await;
    outdated_share_fails(&cluster, &wallet, &wallet.device_share).await;

    // The phone is lost: its share is rebuilt at index 0 for the new phone.
    let new_device = "user_device_67890";
    let recover = accounts
        .post(
            &format!("/api/v1/accounts/{id}/recover"),
            &json!({"lost_party_id": DEVICE, "new_party_id": new_device, "device_type": "ios"}),
        )
        .await;
    assert_eq!(recover.status, 201, "{}", recover.body);
    assert_eq!(recover.body["session_type"], "recovery");
    let mut parties: Vec<&String> = recover.body["join_tokens"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    parties.sort();
    assert_eq!(parties, ["server_party_1", "server_party_2", new_device]);
    let r = cluster
        .party_api()
        .post(
            PARTY_RECOVERY,
            &device_body(&recover.body, new_device, json!({})),
        )
        .await;
    assert_ok(&r);
    assert_eq!(r.body["party_index"], 0, "the lost device's index");
    let public_key = hex::decode(str_of(&r.body, "public_key")).unwrap();
    assert_eq!(
        mpc_protocol::PublicKey::from_sec1(&public_key)
            .unwrap()
            .eth_address(),
        wallet.address,
        "same address"
    );
    let recovered = str_of(&r.body, "share_data").to_owned();
    let recovery_id = str_of(&recover.body, "session_id").to_owned();
    let session = accounts.wait_for_session_end(&recovery_id).await;
    assert_eq!(session["status"], "completed", "{session}");

    let account = accounts
        .wait_for_account(id, "the new device's share row", |a| {
            a["shares"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["party_id"] == new_device))
        })
        .await;
    assert_eq!(account["public_key"], hex::encode(&wallet.public_key));
    assert_eq!(account["ethereum_address"], wallet.address.as_str());
    assert_eq!(
        share_rows(&account),
        [
            row(new_device, 0, "user_device", "ios", "user device (ios)"),
            row(
                "server_party_1",
                1,
                "server",
                "server",
                "server_party_1 (encrypted, party database)"
            ),
            row(
                "server_party_2",
                2,
                "server",
                "server",
                "server_party_2 (encrypted, party database)"
            ),
        ]
    );
    let all = accounts
        .get(&format!("/api/v1/accounts/{id}?include_inactive=true"))
        .await
        .body;
    let lost: Vec<&Value> = all["shares"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["party_id"] == DEVICE)
        .collect();
    assert_eq!(lost.len(), 1, "{all}");
    assert_eq!(lost[0]["is_active"], false);
    assert_eq!(lost[0]["party_index"], 0);
    let stored = accounts
        .store()
        .await
        .shares(id.parse().unwrap(), true)
        .await
        .unwrap();
    let new_row = stored
        .iter()
        .find(|s| s.party_id.as_str() == new_device)
        .unwrap();
    assert_eq!(
        new_row.session_id.map(|s| s.to_string()),
        Some(recovery_id.clone())
    );
    accounts
        .wait_for_audit(&format!(
            "operation=session.completed&session_id={recovery_id}"
        ))
        .await;

    // The new share signs, with either server party.
    sign_with_device(
        &cluster,
        &wallet,
        new_device,
        &recovered,
        &["server_party_1"],
    )
    .await;
    sign_with_device(
        &cluster,
        &wallet,
        new_device,
        &recovered,
        &["server_party_2"],
    )
    .await;
    // The old device is no longer a party of the account…
    let old = accounts
        .post(
            "/api/v1/mpc/sign",
            &sign_body(&wallet, &random_hash(), &[DEVICE, "server_party_1"]),
        )
        .await;
    assert_error(&old.clone(), 400, "invalid_argument");
    assert!(
        old.error_message().contains("is not a party of account"),
        "{}",
        old.body
    );
    // …and its shares are not the new device's.
    for stale in [&wallet.device_share, &refreshed] {
        let hash = random_hash();
        let created = create_sign(
            &cluster,
            &sign_body(&wallet, &hash, &[new_device, "server_party_1"]),
        )
        .await;
        let r = device_signs(
            &cluster,
            &created,
            new_device,
            stale,
            &hash,
            &party_api_key(&cluster),
        )
        .await;
        assert_error(&r, 400, "invalid_argument");
        assert!(
            r.error_message()
                .contains("does not open as the share of party"),
            "{}",
            r.body
        );
    }
    // The server parties still sign together.
    sign_without_device(&cluster, &wallet, &["server_party_1", "server_party_2"]).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_then_recovery_sqlite() {
    refresh_then_recovery(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_then_recovery_postgres() {
    refresh_then_recovery(Backend::Postgres).await;
}

async fn idempotent_retries(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let accounts = cluster.account_service();
    let key = accounts.api_key.clone();
    let keygen = |idempotency: &'static str, body: Value| {
        let key = key.clone();
        async move {
            accounts
                .post_with(
                    "/api/v1/mpc/keygen",
                    &[("x-api-key", &key), ("idempotency-key", idempotency)],
                    &body,
                )
                .await
        }
    };

    // Two at once: one session; the other is told to retry, or gets the same answer.
    let (a, b) = tokio::join!(
        keygen("create-wallet-user-12345", guide_keygen()),
        keygen("create-wallet-user-12345", guide_keygen())
    );
    let mut firsts = Vec::new();
    for r in [&a, &b] {
        match r.status {
            201 => firsts.push(r.body.clone()),
            409 => assert!(
                r.error_message().contains("still in progress"),
                "{}",
                r.body
            ),
            _ => panic!("{} {}", r.status, r.body),
        }
    }
    assert!(!firsts.is_empty(), "one of them made the session");
    let retry = keygen("create-wallet-user-12345", guide_keygen()).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    for first in &firsts {
        assert_eq!(
            &retry.body, first,
            "the first answer: same session, tokens and account"
        );
    }
    let listed = accounts.get("/api/v1/accounts").await;
    assert_eq!(listed.body["total"], 1, "{}", listed.body);

    // The replayed join token is the one that works: the device joins with it.
    let wallet = finish_keygen(&cluster, &retry.body).await;
    let after = keygen("create-wallet-user-12345", guide_keygen()).await;
    assert_eq!(after.status, 201);
    assert_eq!(
        after.body, retry.body,
        "still the first answer once the keygen completed"
    );
    let mut other = guide_keygen();
    other["threshold_t"] = json!(3);
    let conflict = keygen("create-wallet-user-12345", other).await;
    assert_error(&conflict, 409, "failed_precondition");
    assert!(
        conflict.error_message().contains("different request body"),
        "{}",
        conflict.body
    );
    assert_eq!(accounts.get("/api/v1/accounts").await.body["total"], 1);

    // Sign: the retry names the same session; the device signs with the replayed token.
    let hash = random_hash();
    let body = sign_body(&wallet, &hash, &[DEVICE, "server_party_1"]);
    let sign = |body: Value| {
        let key = key.clone();
        async move {
            accounts
                .post_with(
                    "/api/v1/mpc/sign",
                    &[("x-api-key", &key), ("idempotency-key", "tx-0001")],
                    &body,
                )
                .await
        }
    };
    let s1 = sign(body.clone()).await;
    assert_eq!(s1.status, 201, "{}", s1.body);
    let s2 = sign(body.clone()).await;
    assert_eq!(s2.header("idempotent-replayed"), Some("true"));
    assert_eq!(s2.body, s1.body);
    let session_id = str_of(&s1.body, "session_id").to_owned();
    let signed = device_signs(
        &cluster,
        &s2.body,
        DEVICE,
        &wallet.device_share,
        &hash,
        &party_api_key(&cluster),
    )
    .await;
    assert_ok(&signed);
    check_signature(&wallet.public_key, &hash, &signed.body);
    let session = accounts.wait_for_session_end(&session_id).await;
    assert_completed_sign(&wallet, &hash, &session);
    let s3 = sign(body).await;
    assert_eq!(
        s3.body["session_id"],
        session_id.as_str(),
        "no second signature"
    );
    // Every sign request the audit log saw concerned that one session.
    let audited = accounts
        .audit(&format!("operation=sign&account_id={}", wallet.account_id))
        .await;
    assert_eq!(audited.len(), 3, "{audited:?}");
    assert!(
        audited
            .iter()
            .all(|e| e["session_id"] == session_id.as_str()),
        "{audited:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_sqlite() {
    idempotent_retries(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_postgres() {
    idempotent_retries(Backend::Postgres).await;
}
