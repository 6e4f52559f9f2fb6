//! Whole flows over real HTTP against a real coordinator, on SQLite and PostgreSQL: the guide's
//! wallet (keygen, then sign, checked by ecrecover), failures, suspension, recovery, refresh and
//! idempotent retries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use mpc_store::testing::TestDb;
use serde_json::{Value, json};

/// Guide §5.1 and §5.2 end to end: the account becomes active with one share row per party,
/// and the signature of a sign session recovers to the account's public key.
async fn wallet_flow(t: TestDb) {
    let c = Cluster::start(t).await;
    let created = c.admin_post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let b = &created.body;
    assert_eq!(b["session_type"], "keygen");
    assert_eq!(
        (b["threshold_n"].as_u64(), b["threshold_t"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(b["status"], "created");
    let tokens = b["join_tokens"].as_object().unwrap();
    let mut parties: Vec<&String> = tokens.keys().collect();
    parties.sort();
    assert_eq!(
        parties,
        ["server_party_1", "server_party_2", "user_device_12345"]
    );
    let account_id = b["account_id"].as_str().unwrap().to_owned();
    let session_id = b["session_id"].as_str().unwrap().to_owned();

    let pending = c.admin_get(&format!("/api/v1/accounts/{account_id}")).await;
    assert_eq!(pending.body["status"], "pending");
    assert_eq!(pending.body["public_key"], Value::Null);
    assert_eq!(pending.body["keygen_session_id"], session_id.as_str());

    let key = test_key();
    complete_with_key(&c, b, &key).await;
    // The bus event activates the account: the audit row of the outcome is written only by
    // the outcome handler, and the periodic reconciliation is off in these tests.
    let outcome = c
        .wait_for_audit(&format!(
            "operation=session.completed&session_id={session_id}"
        ))
        .await;
    assert_eq!(outcome[0]["response_status"], 200);
    assert_eq!(outcome[0]["account_id"], account_id.as_str());

    let account = c
        .wait_for_account(&account_id, |a| a["status"] == "active")
        .await;
    let public_key = hex::encode(public_key_bytes(&key));
    assert_eq!(account["public_key"], public_key.as_str());
    let address = mpc_protocol::PublicKey::from_sec1(&public_key_bytes(&key))
        .unwrap()
        .eth_address();
    assert_eq!(account["ethereum_address"], address.as_str());
    let shares = account["shares"].as_array().unwrap();
    let summary: Vec<(String, u64, String, String)> = shares
        .iter()
        .map(|s| {
            (
                s["party_id"].as_str().unwrap().to_owned(),
                s["party_index"].as_u64().unwrap(),
                s["share_type"].as_str().unwrap().to_owned(),
                s["storage_location"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "user_device_12345".into(),
                0,
                "user_device".into(),
                "user device (android)".into()
            ),
            (
                "server_party_1".into(),
                1,
                "server".into(),
                "server_party_1 (encrypted, party database)".into()
            ),
            (
                "server_party_2".into(),
                2,
                "server".into(),
                "server_party_2 (encrypted, party database)".into()
            ),
        ]
    );
    assert!(shares.iter().all(|s| s.get("share_data").is_none()));

    let session = c
        .admin_get(&format!("/api/v1/mpc/sessions/{session_id}"))
        .await;
    assert_eq!(session.body["status"], "completed");
    assert_eq!(session.body["ethereum_address"], address.as_str());
    assert_eq!(session.body["participants"].as_array().unwrap().len(), 3);
    assert!(
        session.body["participants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "completed")
    );

    // Guide §5.2: the hash with its 0x prefix is accepted and stripped.
    let hash = random_hash();
    let sign = c
        .admin_post(
            "/api/v1/mpc/sign",
            &json!({
                "account_id": account_id,
                "message_hash": format!("0x{}", hex::encode(hash)),
                "participants": [
                    {"party_id": "user_device_12345", "device_type": "android"},
                    {"party_id": "server_party_1", "device_type": "server"}
                ]
            }),
        )
        .await;
    assert_eq!(sign.status, 201, "{:?}", sign.body);
    assert_eq!(sign.body["session_type"], "sign");
    assert_eq!(sign.body["message_hash"], hex::encode(hash).as_str());
    assert_eq!(sign.body["threshold_t"], 2);
    assert_eq!(sign.body["account_id"], account_id.as_str());
    assert_eq!(sign.body["join_tokens"].as_object().unwrap().len(), 2);
    let sign_id = sign.body["session_id"].as_str().unwrap().to_owned();
    // The signers carry the indices of their shares.
    let info = c
        .admin_get(&format!("/api/v1/mpc/sessions/{sign_id}"))
        .await;
    let indices: Vec<(String, u64)> = info.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["party_id"].as_str().unwrap().to_owned(),
                p["party_index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        indices,
        [
            ("user_device_12345".into(), 0),
            ("server_party_1".into(), 1)
        ]
    );

    complete_sign(&c, &sign.body, &key, &hash).await;
    let done = c.wait_for_session_end(&sign_id).await;
    assert_eq!(done["status"], "completed", "{done:?}");
    let r = hex::decode(done["r"].as_str().unwrap()).unwrap();
    let s = hex::decode(done["s"].as_str().unwrap()).unwrap();
    let v = u8::try_from(done["v"].as_u64().unwrap()).unwrap();
    assert!(done["signature"].as_str().unwrap().starts_with("30"), "DER");
    let mut rs = r.clone();
    rs.extend_from_slice(&s);
    let signature = Signature::from_slice(&rs).unwrap();
    let recovered =
        VerifyingKey::recover_from_prehash(&hash, &signature, RecoveryId::from_byte(v).unwrap())
            .unwrap();
    assert_eq!(
        hex::encode(recovered.to_sec1_point(false).as_bytes()),
        public_key,
        "ecrecover(hash, r, s, v) is the account's key"
    );
    c.wait_for_audit(&format!("operation=session.completed&session_id={sign_id}"))
        .await;

    let metrics = c.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap().to_owned();
    assert!(
        text.contains("mpc_accounts_total{service=\"account-service\",status=\"active\"} 1")
            || text.contains("mpc_accounts_total{status=\"active\",service=\"account-service\"} 1"),
        "{text}"
    );
    c.stop().await;
}
mpc_store::backend_tests!(wallet_flow, wallet_flow);

/// A failed keygen leaves the account `failed` with the reason, and audits the outcome.
async fn keygen_failure_is_recorded(t: TestDb) {
    let c = Cluster::start(t).await;
    let created = c.admin_post("/api/v1/mpc/keygen", &guide_keygen()).await;
    let account_id = created.body["account_id"].as_str().unwrap().to_owned();
    let session_id = created.body["session_id"].as_str().unwrap().to_owned();
    fail_session(
        &c,
        &created.body,
        "party server_party_2 sent an invalid message",
        "server_party_2",
    )
    .await;
    let account = c
        .wait_for_account(&account_id, |a| a["status"] == "failed")
        .await;
    assert_eq!(
        account["failure_reason"],
        "keygen failed: party server_party_2 sent an invalid message"
    );
    assert_eq!(account["shares"].as_array().unwrap().len(), 0);
    let session = c
        .admin_get(&format!("/api/v1/mpc/sessions/{session_id}"))
        .await;
    assert_eq!(session.body["status"], "failed");
    assert_eq!(session.body["blamed_party_id"], "server_party_2");
    let audit = c
        .wait_for_audit(&format!("operation=session.failed&session_id={session_id}"))
        .await;
    assert_eq!(audit[0]["response_status"], 422);
    assert_eq!(
        audit[0]["request_body"]["blamed_party_id"],
        "server_party_2"
    );
    // A failed account cannot sign.
    let sign = c
        .admin_post(
            "/api/v1/mpc/sign",
            &json!({"account_id": account_id, "message_hash": hex::encode(random_hash()),
                    "participants": [{"party_id": "server_party_1"}, {"party_id": "server_party_2"}]}),
        )
        .await;
    sign.expect_error(409, "failed_precondition");
    c.stop().await;
}
mpc_store::backend_tests!(keygen_failure_is_recorded, keygen_failure_is_recorded);

fn sign_body(account_id: &str, parties: &[&str]) -> Value {
    json!({
        "account_id": account_id,
        "message_hash": hex::encode(random_hash()),
        "participants": parties.iter().map(|p| json!({"party_id": p})).collect::<Vec<_>>(),
    })
}

/// A suspended account cannot sign, with a clear error; activated again, it can.
async fn suspended_account_cannot_sign(t: TestDb) {
    let c = Cluster::start(t).await;
    let (account_id, _) = active_account(&c).await;
    let suspended = c
        .admin_post(
            &format!("/api/v1/accounts/{account_id}/suspend"),
            &json!({}),
        )
        .await;
    assert_eq!(suspended.status, 200, "{:?}", suspended.body);
    assert_eq!(suspended.body["status"], "suspended");
    let refused = c
        .admin_post(
            "/api/v1/mpc/sign",
            &sign_body(&account_id, &["server_party_1", "server_party_2"]),
        )
        .await;
    refused.expect_error(403, "account_suspended");
    assert!(
        refused.message().starts_with("account is suspended"),
        "{}",
        refused.message()
    );
    // Suspending twice is fine; activating an active account is not.
    let again = c
        .admin_post(
            &format!("/api/v1/accounts/{account_id}/suspend"),
            &json!({}),
        )
        .await;
    assert_eq!(again.status, 200);
    let activated = c
        .admin_post(
            &format!("/api/v1/accounts/{account_id}/activate"),
            &json!({}),
        )
        .await;
    assert_eq!(activated.body["status"], "active");
    let sign = c
        .admin_post(
            "/api/v1/mpc/sign",
            &sign_body(&account_id, &["server_party_1", "server_party_2"]),
        )
        .await;
    assert_eq!(sign.status, 201, "{:?}", sign.body);
    let unknown = c
        .admin_post(
            &format!("/api/v1/accounts/{}/suspend", uuid::Uuid::new_v4()),
            &json!({}),
        )
        .await;
    unknown.expect_error(404, "account_not_found");
    c.stop().await;
}
mpc_store::backend_tests!(suspended_account_cannot_sign, suspended_account_cannot_sign);

/// Recovery rebuilds the lost share for a new party at the same index (same public key);
/// refresh involves every party.
async fn recovery_and_refresh(t: TestDb) {
    let c = Cluster::start(t).await;
    let (account_id, key) = active_account(&c).await;
    let before = c
        .admin_get(&format!("/api/v1/accounts/{account_id}"))
        .await
        .body;

    let recover = c
        .admin_post(
            &format!("/api/v1/accounts/{account_id}/recover"),
            &json!({"lost_party_id": "user_device_12345", "new_party_id": "user_device_67890", "device_type": "ios"}),
        )
        .await;
    assert_eq!(recover.status, 201, "{:?}", recover.body);
    assert_eq!(recover.body["session_type"], "recovery");
    let mut parties: Vec<&String> = recover.body["join_tokens"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    parties.sort();
    assert_eq!(
        parties,
        ["server_party_1", "server_party_2", "user_device_67890"]
    );
    let session_id = recover.body["session_id"].as_str().unwrap().to_owned();
    let info = c
        .admin_get(&format!("/api/v1/mpc/sessions/{session_id}"))
        .await
        .body;
    let new_party = info["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["party_id"] == "user_device_67890")
        .cloned()
        .unwrap();
    assert_eq!(new_party["party_index"], 0, "the lost party's index");

    complete_with_key(&c, &recover.body, &key).await;
    let after = c
        .wait_for_account(&account_id, |a| {
            a["shares"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["party_id"] == "user_device_67890")
        })
        .await;
    assert_eq!(after["public_key"], before["public_key"]);
    assert_eq!(after["ethereum_address"], before["ethereum_address"]);
    let active: Vec<(String, u64, String)> = after["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["party_id"].as_str().unwrap().to_owned(),
                s["party_index"].as_u64().unwrap(),
                s["device_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        active,
        [
            ("user_device_67890".into(), 0, "ios".into()),
            ("server_party_1".into(), 1, "server".into()),
            ("server_party_2".into(), 2, "server".into()),
        ]
    );
    let all = c
        .admin_get(&format!(
            "/api/v1/accounts/{account_id}?include_inactive=true"
        ))
        .await
        .body;
    let lost = all["shares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["party_id"] == "user_device_12345")
        .cloned()
        .unwrap();
    assert_eq!(lost["is_active"], false);

    // The old device can no longer be named as a signer.
    let old = c
        .admin_post(
            "/api/v1/mpc/sign",
            &sign_body(&account_id, &["user_device_12345", "server_party_1"]),
        )
        .await;
    old.expect_error(400, "invalid_argument");

    // Recovery errors.
    let path = format!("/api/v1/accounts/{account_id}/recover");
    c.admin_post(
        &path,
        &json!({"lost_party_id": "nobody", "new_party_id": "x"}),
    )
    .await
    .expect_error(400, "invalid_argument");
    c.admin_post(
        &path,
        &json!({"lost_party_id": "server_party_1", "new_party_id": "server_party_2"}),
    )
    .await
    .expect_error(400, "duplicate_party_id");
    c.admin_post(
        &path,
        &json!({"lost_party_id": "server_party_1", "new_party_id": "server_party_9", "helpers": ["server_party_2"]}),
    )
    .await
    .expect_error(400, "insufficient_participants");

    let refresh = c
        .admin_post(
            &format!("/api/v1/accounts/{account_id}/refresh"),
            &json!({}),
        )
        .await;
    assert_eq!(refresh.status, 201, "{:?}", refresh.body);
    assert_eq!(refresh.body["join_tokens"].as_object().unwrap().len(), 3);
    let refresh_id = refresh.body["session_id"].as_str().unwrap().to_owned();
    complete_with_key(&c, &refresh.body, &key).await;
    c.wait_for_audit(&format!(
        "operation=session.completed&session_id={refresh_id}"
    ))
    .await;
    let unchanged = c
        .admin_get(&format!("/api/v1/accounts/{account_id}"))
        .await
        .body;
    assert_eq!(unchanged["public_key"], before["public_key"]);
    assert_eq!(unchanged["shares"].as_array().unwrap().len(), 3);
    c.stop().await;
}
mpc_store::backend_tests!(recovery_and_refresh, recovery_and_refresh);

/// A retried keygen or sign with the same Idempotency-Key gets the first response back; the
/// same key with another body is refused.
async fn idempotent_retries(t: TestDb) {
    let c = Cluster::start(t).await;
    let body = guide_keygen().to_string().into_bytes();
    let send = |key: &'static str, body: Vec<u8>| {
        let c = &c;
        async move {
            c.request(
                "POST",
                "/api/v1/mpc/keygen",
                Some(ADMIN_KEY),
                &[("Idempotency-Key", key)],
                Some(body),
            )
            .await
        }
    };
    let first = send("wallet-42", body.clone()).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let retry = send("wallet-42", body.clone()).await;
    assert_eq!(retry.status, 201);
    assert_eq!(
        retry.body, first.body,
        "same session, same tokens, same account"
    );
    assert_eq!(retry.headers.get("idempotent-replayed").unwrap(), "true");

    let mut other: Value = guide_keygen();
    other["threshold_t"] = json!(3);
    let conflict = send("wallet-42", other.to_string().into_bytes()).await;
    conflict.expect_error(409, "failed_precondition");
    assert!(
        conflict.message().contains("different request body"),
        "{}",
        conflict.message()
    );

    // Without the header, or with another key, a new session.
    let fresh = send("wallet-43", body.clone()).await;
    assert_ne!(fresh.body["session_id"], first.body["session_id"]);
    let (list, _) = (c.admin_get("/api/v1/accounts").await, ());
    assert_eq!(list.body["total"], 2, "the retry created no account");

    // Errors are replayed too (nothing was created the first time either).
    let mut bad = guide_keygen();
    bad["threshold_t"] = json!(5);
    let e1 = send("bad-1", bad.to_string().into_bytes()).await;
    e1.expect_error(400, "invalid_threshold");
    let e2 = send("bad-1", bad.to_string().into_bytes()).await;
    assert_eq!(e2.body, e1.body);

    // Sign: same key → same session.
    let created = c.admin_post("/api/v1/mpc/keygen", &guide_keygen()).await;
    let account_id = created.body["account_id"].as_str().unwrap().to_owned();
    complete_with_key(&c, &created.body, &test_key()).await;
    c.wait_for_account(&account_id, |a| a["status"] == "active")
        .await;
    let sign = sign_body(&account_id, &["server_party_1", "server_party_2"])
        .to_string()
        .into_bytes();
    let s1 = c
        .request(
            "POST",
            "/api/v1/mpc/sign",
            Some(ADMIN_KEY),
            &[("Idempotency-Key", "tx-1")],
            Some(sign.clone()),
        )
        .await;
    let s2 = c
        .request(
            "POST",
            "/api/v1/mpc/sign",
            Some(ADMIN_KEY),
            &[("Idempotency-Key", "tx-1")],
            Some(sign),
        )
        .await;
    assert_eq!(s1.status, 201, "{:?}", s1.body);
    assert_eq!(s1.body["session_id"], s2.body["session_id"]);
    c.stop().await;
}
mpc_store::backend_tests!(idempotent_retries, idempotent_retries);
