//! One base URL (issue 12, DESIGN.md §4): a wallet back end that knows only the Account
//! Service's URL and an API key goes through the whole life of a wallet, against the real system
//! in this process (coordinator, router, server parties, Server Party API, Account Service) on
//! SQLite and PostgreSQL. Every signature is checked with k256 (verify, low-s, ecrecover, DER).
//!
//! - `one_base_url`: keygen and the device's share through the Account Service's relay; a
//!   one-call sign with `share_data` (the answer carries the signature); the relay's sign with a
//!   device access token; a server-only sign read with `?wait=` (one request, final); a refresh
//!   through the relay whose new share signs in one call; the audit rows of the relayed calls,
//!   with the share and the join token redacted.
//! - `relay_errors`: the Server Party API's own errors come back unchanged (bad share, bad
//!   body), a session this service did not create is `session not found`, an access token of
//!   another account is 403, no credentials 401, `wait` beyond 60 s 400.
//! - `not_configured`: without a Server Party API the relay answers 503 and the one-call sign is
//!   refused before a session exists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod full_stack;

use std::time::Instant;

use full_stack::*;
use mpc_testkit::{Backend, Cluster};
use serde_json::{Value, json};

/// Keygen entirely through the Account Service: the session, then the device's share relayed.
async fn wallet_through_account_service(cluster: &Cluster) -> Wallet {
    let accounts = cluster.account_service();
    let created = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let r = accounts
        .post(PARTY_KEYGEN, &device_body(&created.body, DEVICE, json!({})))
        .await;
    assert_ok(&r);
    assert_eq!(r.body["party_index"], 0);
    assert_eq!(r.body["session_id"], created.body["session_id"]);
    let public_key = hex::decode(str_of(&r.body, "public_key")).unwrap();
    let account_id = str_of(&created.body, "account_id").to_owned();
    let account = accounts
        .wait_for_account(&account_id, "the account's activation", |a| {
            a["status"] != "pending"
        })
        .await;
    assert_eq!(account["status"], "active", "{account}");
    assert_eq!(account["public_key"], hex::encode(&public_key));
    Wallet {
        account_id,
        keygen_session_id: str_of(&created.body, "session_id").to_owned(),
        address: str_of(&account, "ethereum_address").to_owned(),
        public_key,
        device_share: str_of(&r.body, "share_data").to_owned(),
    }
}

/// `POST /api/v1/mpc/sign` with the device's `share_data`: one call, the signature in the
/// answer, and the session completed with the same signature.
async fn sign_in_one_call(cluster: &Cluster, wallet: &Wallet, share: &str) -> Value {
    let hash = random_hash();
    let body = json!({
        "account_id": wallet.account_id,
        "message_hash": format!("0x{hash}"),
        "participants": [
            {"party_id": DEVICE, "share_data": share},
            {"party_id": "server_party_1"},
        ],
    });
    let r = cluster
        .account_service()
        .post("/api/v1/mpc/sign", &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    assert_eq!(r.body["message_hash"], hash.as_str());
    assert_eq!(r.body["account_id"], wallet.account_id.as_str());
    check_signature(&wallet.public_key, &hash, &r.body);
    let session = cluster
        .account_service()
        .get(&format!(
            "/api/v1/mpc/sessions/{}",
            str_of(&r.body, "session_id")
        ))
        .await
        .body;
    assert_completed_sign(wallet, &hash, &session);
    assert_eq!(session["r"], r.body["r"]);
    r.body
}

async fn one_base_url(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let accounts = cluster.account_service();
    let wallet = wallet_through_account_service(&cluster).await;

    // One call: the session and the signature in one answer.
    sign_in_one_call(&cluster, &wallet, &wallet.device_share).await;

    // The relayed sign with a device's access token (no API key at all).
    let token = accounts
        .post(
            &format!("/api/v1/accounts/{}/access-tokens", wallet.account_id),
            &json!({}),
        )
        .await;
    assert_eq!(token.status, 201, "{}", token.body);
    let bearer = format!("Bearer {}", str_of(&token.body, "access_token"));
    let hash = random_hash();
    let created = create_sign(
        &cluster,
        &sign_body(&wallet, &hash, &[DEVICE, "server_party_2"]),
    )
    .await;
    let r = accounts
        .post_with(
            PARTY_SIGN,
            &[("authorization", &bearer)],
            &device_body(
                &created,
                DEVICE,
                json!({"share_data": wallet.device_share, "message_hash": hash}),
            ),
        )
        .await;
    assert_ok(&r);
    check_signature(&wallet.public_key, &hash, &r.body);

    // Server parties alone; one long-poll request answers with the final session.
    let hash = random_hash();
    let created = create_sign(
        &cluster,
        &sign_body(&wallet, &hash, &["server_party_1", "server_party_2"]),
    )
    .await;
    let started = Instant::now();
    let session = accounts
        .get(&format!(
            "/api/v1/mpc/sessions/{}?wait=60",
            str_of(&created, "session_id")
        ))
        .await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_completed_sign(&wallet, &hash, &session.body);
    // Not a timing assertion on speed: the answer came because the session ended, long
    // before the wait ran out.
    assert!(started.elapsed().as_secs() < 60);

    // Refresh through the relay: the device's new share signs in one call.
    let refresh = accounts
        .post(
            &format!("/api/v1/accounts/{}/refresh", wallet.account_id),
            &json!({}),
        )
        .await;
    assert_eq!(refresh.status, 201, "{}", refresh.body);
    let refreshed = accounts
        .post(
            PARTY_REFRESH,
            &device_body(
                &refresh.body,
                DEVICE,
                json!({"share_data": wallet.device_share}),
            ),
        )
        .await;
    assert_ok(&refreshed);
    assert_eq!(
        refreshed.body["public_key"],
        hex::encode(&wallet.public_key)
    );
    let new_share = str_of(&refreshed.body, "share_data").to_owned();
    assert_ne!(new_share, wallet.device_share);
    let done = accounts
        .get(&format!(
            "/api/v1/mpc/sessions/{}?wait=60",
            str_of(&refresh.body, "session_id")
        ))
        .await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    sign_in_one_call(&cluster, &wallet, &new_share).await;

    // Audited, with the secrets redacted, under the caller's key or the token's account.
    let rows = accounts
        .wait_for_audit(&format!(
            "operation=user_share.sign&account_id={}",
            wallet.account_id
        ))
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["response_status"], 200);
    assert_eq!(
        row["user_id"].as_str(),
        Some(format!("access-token:{}", wallet.account_id).as_str())
    );
    assert_eq!(row["request_body"]["share_data"], "[REDACTED]", "{row}");
    assert_eq!(row["request_body"]["join_token"], "[REDACTED]", "{row}");
    for op in ["user_share.keygen", "user_share.refresh"] {
        let rows = accounts
            .wait_for_audit(&format!("operation={op}&account_id={}", wallet.account_id))
            .await;
        assert_eq!(rows[0]["user_id"], "bootstrap", "{op}: {rows:?}");
    }
    let signs = accounts
        .audit(&format!("operation=sign&account_id={}", wallet.account_id))
        .await;
    let text = serde_json::to_string(&signs).unwrap();
    assert!(!text.contains(&wallet.device_share) && !text.contains(&new_share));
}

async fn relay_errors(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let accounts = cluster.account_service();
    let wallet = wallet_through_account_service(&cluster).await;
    let hash = random_hash();
    let created = create_sign(
        &cluster,
        &sign_body(&wallet, &hash, &[DEVICE, "server_party_1"]),
    )
    .await;

    // The Server Party API's own checks, as it answers them directly.
    let altered = {
        let mut s = wallet.device_share.clone().into_bytes();
        let last = s.len() - 1;
        s[last] = if s[last] == b'0' { b'1' } else { b'0' };
        String::from_utf8(s).unwrap()
    };
    let bad_share = device_body(
        &created,
        DEVICE,
        json!({"share_data": altered, "message_hash": hash}),
    );
    let direct = cluster
        .party_api()
        .post_with(PARTY_SIGN, &party_api_key(&cluster), &bad_share)
        .await;
    let relayed = accounts.post(PARTY_SIGN, &bad_share).await;
    assert_error(&relayed, 400, "invalid_argument");
    assert_eq!(
        (relayed.status, &relayed.body),
        (direct.status, &direct.body)
    );
    let r = accounts
        .post(
            PARTY_SIGN,
            &json!({"session_id": str_of(&created, "session_id")}),
        )
        .await;
    assert_error(&r, 400, "invalid_argument");
    assert!(r.error_message().contains("missing field"), "{}", r.body);
    let r = accounts
        .post(
            PARTY_KEYGEN,
            &json!({"session_id": "not-a-uuid", "party_id": DEVICE, "join_token": "x"}),
        )
        .await;
    assert_error(&r, 400, "invalid_argument");

    // A session this service did not create.
    let foreign = json!({
        "session_id": uuid::Uuid::new_v4().to_string(),
        "party_id": DEVICE,
        "join_token": "eyJ.x.y",
    });
    assert_error(
        &accounts.post(PARTY_KEYGEN, &foreign).await,
        404,
        "session_not_found",
    );

    // Credentials: none, a wrong key, a token of another account.
    let body = device_body(
        &created,
        DEVICE,
        json!({"share_data": wallet.device_share, "message_hash": hash}),
    );
    assert_error(
        &accounts.post_with(PARTY_SIGN, &[], &body).await,
        401,
        "invalid_api_key",
    );
    assert_error(
        &accounts
            .post_with(PARTY_SIGN, &[("x-api-key", "mpc_wrong-key")], &body)
            .await,
        401,
        "invalid_api_key",
    );
    let other = wallet_through_account_service(&cluster).await;
    let token = accounts
        .post(
            &format!("/api/v1/accounts/{}/access-tokens", other.account_id),
            &json!({}),
        )
        .await;
    let bearer = format!("Bearer {}", str_of(&token.body, "access_token"));
    assert_error(
        &accounts
            .post_with(PARTY_SIGN, &[("authorization", &bearer)], &body)
            .await,
        403,
        "permission_denied",
    );
    // The session is untouched by all of that: the device still signs it.
    let r = accounts.post(PARTY_SIGN, &body).await;
    assert_ok(&r);
    check_signature(&wallet.public_key, &hash, &r.body);

    // The long poll's bound.
    let r = accounts
        .get(&format!(
            "/api/v1/mpc/sessions/{}?wait=61",
            str_of(&created, "session_id")
        ))
        .await;
    assert_error(&r, 400, "invalid_argument");
    // A one-call sign whose share does not open: the Server Party API's error, no signature.
    let r = accounts
        .post(
            "/api/v1/mpc/sign",
            &json!({
                "account_id": wallet.account_id,
                "message_hash": random_hash(),
                "participants": [
                    {"party_id": DEVICE, "share_data": altered},
                    {"party_id": "server_party_1"},
                ],
            }),
        )
        .await;
    assert_error(&r, 400, "invalid_argument");
}

async fn not_configured(backend: Backend) {
    let Some(cluster) = Cluster::builder()
        .backend(backend)
        .server_parties(2)
        .account_service(true)
        .build()
        .await
    else {
        return;
    };
    let accounts = cluster.account_service();
    let created = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let r = accounts
        .post(PARTY_KEYGEN, &device_body(&created.body, DEVICE, json!({})))
        .await;
    assert_error(&r, 503, "unavailable");
    assert!(
        r.error_message().contains("MPC_PARTY_API_URL"),
        "{}",
        r.body
    );
    // Refused before anything else is looked at (the account is still pending: a sign without
    // a share would be 409).
    let r = accounts
        .post(
            "/api/v1/mpc/sign",
            &json!({
                "account_id": str_of(&created.body, "account_id"),
                "message_hash": random_hash(),
                "participants": [
                    {"party_id": DEVICE, "share_data": "00"},
                    {"party_id": "server_party_1"},
                ],
            }),
        )
        .await;
    assert_error(&r, 503, "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_base_url_sqlite() {
    one_base_url(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_base_url_postgres() {
    one_base_url(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_errors_sqlite() {
    relay_errors(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_errors_postgres() {
    relay_errors(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_configured_sqlite() {
    not_configured(Backend::Sqlite).await;
}
