//! The API's edges over real HTTP, on SQLite and PostgreSQL: every error case with its code and
//! wording, API keys (create, use, list, revoke, expiry, scopes), the audit log (failures
//! recorded, secrets redacted, the guide's "failures in the last hour" query), access tokens,
//! and the OpenAPI document and UI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use account_service::AccessTokenVerifier;
use chrono::{TimeDelta, Utc};
use common::*;
use mpc_store::account::{ApiKeyScope, NewApiKey};
use mpc_store::testing::TestDb;
use serde_json::{Value, json};

async fn errors_keep_the_guides_wording(t: TestDb) {
    let c = Cluster::start(t).await;
    let unknown = c
        .admin_get(&format!("/api/v1/mpc/sessions/{}", uuid::Uuid::new_v4()))
        .await;
    unknown.expect_error(404, "session_not_found");
    assert_eq!(unknown.message(), "session not found");
    c.admin_get("/api/v1/mpc/sessions/not-a-uuid")
        .await
        .expect_error(400, "invalid_argument");

    // Keygen validation.
    let keygen = |f: &dyn Fn(&mut Value)| {
        let mut body = guide_keygen();
        f(&mut body);
        body
    };
    let r = c
        .admin_post(
            "/api/v1/mpc/keygen",
            &keygen(&|b| b["threshold_t"] = json!(4)),
        )
        .await;
    r.expect_error(400, "invalid_threshold");
    assert!(r.message().contains("threshold_t"), "{}", r.message());
    c.admin_post(
        "/api/v1/mpc/keygen",
        &keygen(&|b| b["threshold_t"] = json!(1)),
    )
    .await
    .expect_error(400, "invalid_threshold");
    c.admin_post(
        "/api/v1/mpc/keygen",
        &keygen(&|b| b["threshold_n"] = json!(17)),
    )
    .await
    .expect_error(400, "invalid_threshold");
    c.admin_post(
        "/api/v1/mpc/keygen",
        &keygen(&|b| b["participants"][2]["party_id"] = json!("server_party_1")),
    )
    .await
    .expect_error(400, "duplicate_party_id");
    let few = c
        .admin_post(
            "/api/v1/mpc/keygen",
            &keygen(&|b| {
                b["participants"].as_array_mut().unwrap().pop();
            }),
        )
        .await;
    few.expect_error(400, "insufficient_participants");
    assert!(
        few.message().starts_with("insufficient participants"),
        "{}",
        few.message()
    );
    c.admin_post("/api/v1/mpc/keygen", &json!({"threshold_n": 3}))
        .await
        .expect_error(400, "invalid_argument");
    // Nothing was created by the refused requests.
    assert_eq!(c.admin_get("/api/v1/accounts").await.body["total"], 0);

    // Username and email are unique when given.
    let named = keygen(&|b| {
        b["username"] = json!("alice");
        b["email"] = json!("alice@example.com");
    });
    assert_eq!(c.admin_post("/api/v1/mpc/keygen", &named).await.status, 201);
    let taken = c.admin_post("/api/v1/mpc/keygen", &named).await;
    taken.expect_error(409, "already_exists");
    assert_eq!(taken.message(), "username is taken");

    // Sign validation.
    let missing = uuid::Uuid::new_v4().to_string();
    let hash = hex::encode(random_hash());
    let sign = |account: &str, hash: &str, parties: &[&str]| {
        json!({"account_id": account, "message_hash": hash,
               "participants": parties.iter().map(|p| json!({"party_id": p})).collect::<Vec<_>>()})
    };
    c.admin_post("/api/v1/mpc/sign", &sign(&missing, &hash, &["a", "b"]))
        .await
        .expect_error(404, "account_not_found");
    let bad_hash = c
        .admin_post("/api/v1/mpc/sign", &sign(&missing, "0xabc", &["a", "b"]))
        .await;
    bad_hash.expect_error(400, "invalid_message_hash");
    assert_eq!(
        bad_hash.message(),
        "invalid message hash: expected 64 hex characters (32 bytes), got 3"
    );
    c.admin_post(
        "/api/v1/mpc/sign",
        &sign(&missing, &"zz".repeat(32), &["a", "b"]),
    )
    .await
    .expect_error(400, "invalid_message_hash");
    c.admin_post("/api/v1/mpc/sign", &sign("nope", &hash, &["a", "b"]))
        .await
        .expect_error(400, "invalid_argument");

    // A pending account has no key to sign with yet.
    let pending = c.admin_post("/api/v1/mpc/keygen", &guide_keygen()).await;
    let pending_id = pending.body["account_id"].as_str().unwrap();
    c.admin_post(
        "/api/v1/mpc/sign",
        &sign(pending_id, &hash, &["server_party_1", "server_party_2"]),
    )
    .await
    .expect_error(409, "failed_precondition");

    let (account, _) = active_account(&c).await;
    let one = c
        .admin_post(
            "/api/v1/mpc/sign",
            &sign(&account, &hash, &["server_party_1"]),
        )
        .await;
    one.expect_error(400, "insufficient_participants");
    assert!(
        one.message().starts_with("insufficient participants"),
        "{}",
        one.message()
    );
    c.admin_post(
        "/api/v1/mpc/sign",
        &sign(&account, &hash, &["server_party_1", "server_party_1"]),
    )
    .await
    .expect_error(400, "duplicate_party_id");
    c.admin_post(
        "/api/v1/mpc/sign",
        &sign(&account, &hash, &["server_party_1", "stranger"]),
    )
    .await
    .expect_error(400, "invalid_argument");
    c.admin_post(
        "/api/v1/mpc/sign",
        &sign(
            &account,
            &hash,
            &["server_party_1", "server_party_2", "user_device_12345"],
        ),
    )
    .await
    .expect_error(400, "invalid_argument");

    c.admin_get(&format!("/api/v1/accounts/{missing}"))
        .await
        .expect_error(404, "account_not_found");
    c.admin_get("/api/v1/accounts?status=bogus")
        .await
        .expect_error(400, "invalid_argument");
    c.admin_get("/api/v1/accounts?limit=x")
        .await
        .expect_error(400, "invalid_argument");
    // Found by the property test: a path that is not UTF-8 once decoded is a JSON 400 too.
    c.admin_get("/api/v1/accounts/%ff")
        .await
        .expect_error(400, "invalid_argument");
    c.admin_get("/api/v1/no-such-thing")
        .await
        .expect_error(404, "not_found");
    c.stop().await;
}
mpc_store::backend_tests!(
    errors_keep_the_guides_wording,
    errors_keep_the_guides_wording
);

async fn api_key_lifecycle(t: TestDb) {
    let c = Cluster::start(t).await;
    c.get("/api/v1/accounts", None)
        .await
        .expect_error(401, "invalid_api_key");
    let wrong = c.get("/api/v1/accounts", Some("mpc_not-a-key")).await;
    wrong.expect_error(401, "invalid_api_key");
    assert_eq!(wrong.message(), "invalid API key");

    let created = c
        .admin_post(
            "/api/v1/admin/api-keys",
            &json!({"name": "wallet-service", "expires_in_days": 90}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let key = created.body["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("mpc_") && key.len() >= 40, "{key}");
    assert_eq!(created.body["key"]["scope"], "operator");
    assert!(key.starts_with(created.body["key"]["prefix"].as_str().unwrap()));
    let key_id = created.body["key"]["id"].as_str().unwrap().to_owned();
    let expires = created.body["key"]["expires_at"].as_str().unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    assert!(
        (expires.with_timezone(&Utc) - Utc::now() - TimeDelta::days(90))
            .num_minutes()
            .abs()
            < 5
    );

    // The operator key works on the API but not on the admin endpoints.
    assert_eq!(c.get("/api/v1/accounts", Some(&key)).await.status, 200);
    let k = c
        .post("/api/v1/mpc/keygen", Some(&key), &guide_keygen())
        .await;
    assert_eq!(k.status, 201, "{:?}", k.body);
    c.get("/api/v1/admin/api-keys", Some(&key))
        .await
        .expect_error(403, "permission_denied");
    c.get("/api/v1/audit-logs", Some(&key))
        .await
        .expect_error(403, "permission_denied");

    let list = c.admin_get("/api/v1/admin/api-keys").await;
    let text = list.body.to_string();
    assert!(!text.contains(&key), "the key is shown only once");
    let listed = &list.body["keys"][0];
    assert_eq!(listed["id"], key_id.as_str());
    assert!(listed["last_used_at"].is_string(), "{listed:?}");

    // The operator's keygen is audited under its key id.
    let audit = c
        .wait_for_audit(&format!(
            "operation=keygen&session_id={}",
            k.body["session_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(audit[0]["user_id"], key_id.as_str());

    let revoked = c
        .request(
            "DELETE",
            &format!("/api/v1/admin/api-keys/{key_id}"),
            Some(ADMIN_KEY),
            &[],
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert!(revoked.body["revoked_at"].is_string());
    let refused = c.get("/api/v1/accounts", Some(&key)).await;
    refused.expect_error(401, "invalid_api_key");
    assert_eq!(refused.message(), "API key revoked");
    c.request(
        "DELETE",
        &format!("/api/v1/admin/api-keys/{}", uuid::Uuid::new_v4()),
        Some(ADMIN_KEY),
        &[],
        None,
    )
    .await
    .expect_error(404, "not_found");

    // An expired key says so. (Stored directly: the API refuses expiries in the past.)
    let store = mpc_store::account::open(&c.db.db).await.unwrap();
    let old = account_service::keys::generate_key().unwrap();
    store
        .insert_api_key(&NewApiKey {
            id: uuid::Uuid::new_v4(),
            name: "old".into(),
            key_hash: old.hash,
            prefix: old.prefix.clone(),
            scope: ApiKeyScope::Admin,
            created_at: Utc::now() - TimeDelta::days(91),
            expires_at: Some(Utc::now() - TimeDelta::days(1)),
        })
        .await
        .unwrap();
    use secrecy::ExposeSecret;
    let expired = c
        .get("/api/v1/accounts", Some(old.plaintext.expose_secret()))
        .await;
    expired.expect_error(401, "invalid_api_key");
    assert_eq!(expired.message(), "API key expired");

    // An admin key made through the API can make keys.
    let admin = c
        .admin_post(
            "/api/v1/admin/api-keys",
            &json!({"name": "ops", "scope": "admin"}),
        )
        .await;
    let admin_key = admin.body["api_key"].as_str().unwrap().to_owned();
    let made = c
        .post(
            "/api/v1/admin/api-keys",
            Some(&admin_key),
            &json!({"name": "x"}),
        )
        .await;
    assert_eq!(made.status, 201);
    c.admin_post(
        "/api/v1/admin/api-keys",
        &json!({"name": "x", "scope": "root"}),
    )
    .await
    .expect_error(400, "invalid_argument");
    c.admin_post(
        "/api/v1/admin/api-keys",
        &json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await
    .expect_error(400, "invalid_argument");
    c.stop().await;
}
mpc_store::backend_tests!(api_key_lifecycle, api_key_lifecycle);

async fn failures_are_audited_with_secrets_redacted(t: TestDb) {
    let c = Cluster::start(t).await;
    let since =
        (Utc::now() - TimeDelta::seconds(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // A 401 (the body carries a share and a token) and a 400.
    let denied = c
        .request(
            "POST",
            "/api/v1/mpc/sign",
            Some("mpc_wrong"),
            &[("User-Agent", "wallet-backend/1.0")],
            Some(
                json!({"account_id": uuid::Uuid::new_v4(), "message_hash": "00",
                       "participants": [{"party_id": "user_device", "share_data": "SECRET-SHARE-a1b2"}],
                       "join_token": "eyJSECRET"})
                .to_string()
                .into_bytes(),
            ),
        )
        .await;
    denied.expect_error(401, "invalid_api_key");
    let mut bad = guide_keygen();
    bad["threshold_t"] = json!(9);
    c.admin_post("/api/v1/mpc/keygen", &bad)
        .await
        .expect_error(400, "invalid_threshold");
    let ok = c.admin_post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(ok.status, 201);

    let failures = c
        .admin_get(&format!("/api/v1/audit-logs?status_min=400&since={since}"))
        .await;
    assert_eq!(failures.status, 200, "{:?}", failures.body);
    let entries = failures.body["entries"].as_array().unwrap();
    let statuses: Vec<u64> = entries
        .iter()
        .map(|e| e["response_status"].as_u64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [400, 401],
        "newest first, failures only: {entries:?}"
    );
    let (keygen, sign) = (&entries[0], &entries[1]);
    assert_eq!(keygen["operation"], "keygen");
    assert_eq!(keygen["user_id"], "bootstrap");
    assert_eq!(keygen["request_body"]["threshold_t"], 9);
    assert_eq!(sign["operation"], "sign");
    assert_eq!(
        sign["user_id"],
        Value::Null,
        "no caller: the key was refused"
    );
    assert_eq!(sign["ip_address"], "127.0.0.1");
    assert_eq!(sign["user_agent"], "wallet-backend/1.0");
    assert_eq!(
        sign["request_body"]["participants"][0]["share_data"],
        "[REDACTED]"
    );
    assert_eq!(
        sign["request_body"]["participants"][0]["party_id"],
        "user_device"
    );
    assert_eq!(sign["request_body"]["join_token"], "[REDACTED]");
    let all = c
        .admin_get("/api/v1/audit-logs?limit=1000")
        .await
        .body
        .to_string();
    assert!(!all.contains("SECRET"), "{all}");
    // The successful keygen is there with its session; its response's join tokens are not.
    let session = ok.body["session_id"].as_str().unwrap();
    let row = c.wait_for_audit(&format!("session_id={session}")).await;
    assert_eq!(row[0]["response_status"], 201);
    assert_eq!(row[0]["account_id"], ok.body["account_id"]);
    for token in ok.body["join_tokens"].as_object().unwrap().values() {
        assert!(!all.contains(token.as_str().unwrap()));
    }
    // Paging and filters.
    let page = c.admin_get("/api/v1/audit-logs?limit=1").await.body;
    let next = page["next_before_id"].as_i64().unwrap();
    let older = c
        .admin_get(&format!("/api/v1/audit-logs?limit=1&before_id={next}"))
        .await
        .body;
    assert!(older["entries"][0]["id"].as_i64().unwrap() < next);
    c.admin_get("/api/v1/audit-logs?since=yesterday")
        .await
        .expect_error(400, "invalid_argument");
    let until_past = c
        .admin_get("/api/v1/audit-logs?until=2001-01-01T00:00:00Z")
        .await
        .body;
    assert_eq!(until_past["entries"].as_array().unwrap().len(), 0);
    c.stop().await;
}
mpc_store::backend_tests!(
    failures_are_audited_with_secrets_redacted,
    failures_are_audited_with_secrets_redacted
);

async fn access_tokens_are_scoped_to_one_account(t: TestDb) {
    let c = Cluster::start(t).await;
    let (account, _) = active_account(&c).await;
    let key = c.get("/api/v1/access-token-key", None).await;
    assert_eq!(key.status, 200, "public: no API key needed");
    assert_eq!(key.body["algorithm"], "Ed25519");
    let public: [u8; 32] = hex::decode(key.body["public_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let verifier = AccessTokenVerifier::from_public_key(&public).unwrap();

    let issued = c
        .admin_post(
            &format!("/api/v1/accounts/{account}/access-tokens"),
            &json!({}),
        )
        .await;
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    assert_eq!(issued.body["token_type"], "Bearer");
    assert_eq!(issued.body["scope"], "party-api");
    let token = issued.body["access_token"].as_str().unwrap();
    let account_id = mpc_proto::AccountId::parse(&account).unwrap();
    let claims = verifier.verify_for_account(token, account_id).unwrap();
    assert_eq!(claims.exp - claims.iat, 15 * 60);
    assert!(
        verifier
            .verify_for_account(token, mpc_proto::AccountId::new_random())
            .is_err()
    );
    // The audit row names the account, not the token.
    let audit = c
        .wait_for_audit(&format!(
            "operation=access_token.create&account_id={account}"
        ))
        .await;
    assert!(!audit[0].to_string().contains(token));

    c.admin_post(&format!("/api/v1/accounts/{account}/suspend"), &json!({}))
        .await;
    c.admin_post(
        &format!("/api/v1/accounts/{account}/access-tokens"),
        &json!({}),
    )
    .await
    .expect_error(403, "account_suspended");
    c.admin_post(
        &format!("/api/v1/accounts/{}/access-tokens", uuid::Uuid::new_v4()),
        &json!({}),
    )
    .await
    .expect_error(404, "account_not_found");
    c.stop().await;
}
mpc_store::backend_tests!(
    access_tokens_are_scoped_to_one_account,
    access_tokens_are_scoped_to_one_account
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_docs_and_ops_routes_need_no_key() {
    let c = Cluster::start(TestDb::sqlite().await).await;
    let doc = c.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/api/v1/mpc/keygen",
        "/api/v1/mpc/sign",
        "/api/v1/mpc/sessions/{session_id}",
        "/api/v1/accounts",
        "/api/v1/accounts/{account_id}",
        "/api/v1/accounts/{account_id}/suspend",
        "/api/v1/accounts/{account_id}/activate",
        "/api/v1/accounts/{account_id}/refresh",
        "/api/v1/accounts/{account_id}/recover",
        "/api/v1/accounts/{account_id}/access-tokens",
        "/api/v1/access-token-key",
        "/api/v1/admin/api-keys",
        "/api/v1/admin/api-keys/{key_id}",
        "/api/v1/audit-logs",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc.body["components"]["securitySchemes"]["api_key"].is_object());
    assert!(doc.body["components"]["schemas"]["KeygenRequest"].is_object());
    // The contract is complete: every authenticated operation documents 401 and 503, every
    // POST 413, every path parameter is a UUID with its 400, the device operations are there.
    for path in [
        "/api/v1/keygen/generate-user-share",
        "/api/v1/sign/with-user-share",
        "/api/v1/refresh/with-user-share",
        "/api/v1/recovery/new-user-share",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |s: &str| responses.contains_key(s);
            if op.get("security").is_some() {
                assert!(has("401") && has("503"), "{method} {path}: 401/503");
            }
            if method == "post" {
                assert!(has("413"), "{method} {path}: 413");
            }
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["in"] == "path" {
                    assert_eq!(param["schema"]["format"], "uuid", "{method} {path}");
                    assert!(has("400"), "{method} {path}: 400 for a malformed path");
                }
            }
        }
    }
    for (path, method) in [
        ("/api/v1/mpc/keygen", "post"),
        ("/api/v1/mpc/sign", "post"),
        ("/api/v1/sign/with-user-share", "post"),
    ] {
        assert!(
            paths[path][method]["responses"].get("429").is_some(),
            "{path}: 429"
        );
    }
    let ui = c.get("/docs/", None).await;
    assert_eq!(ui.status, 200);
    assert!(
        ui.body.as_str().unwrap().contains("swagger"),
        "{:?}",
        ui.body
    );
    assert_eq!(c.get("/readyz", None).await.status, 200);
    assert_eq!(c.get("/metrics", None).await.status, 200);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_bodies_are_clear_errors() {
    let c = Cluster::start(TestDb::sqlite().await).await;
    let big = vec![b'a'; 300 * 1024];
    let r = c
        .request(
            "POST",
            "/api/v1/mpc/keygen",
            Some(ADMIN_KEY),
            &[],
            Some(big),
        )
        .await;
    r.expect_error(413, "payload_too_large");
    let r = c
        .request(
            "POST",
            "/api/v1/mpc/keygen",
            Some(ADMIN_KEY),
            &[],
            Some(b"{not json".to_vec()),
        )
        .await;
    r.expect_error(400, "invalid_argument");
    assert!(
        r.message().starts_with("invalid JSON body"),
        "{}",
        r.message()
    );
    let r = c
        .request(
            "POST",
            "/api/v1/mpc/keygen",
            Some(ADMIN_KEY),
            &[("Idempotency-Key", "")],
            Some(guide_keygen().to_string().into_bytes()),
        )
        .await;
    r.expect_error(400, "invalid_argument");
    c.stop().await;
}
