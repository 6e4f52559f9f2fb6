//! Failures with the real system in this process (coordinator, router, server parties, Server
//! Party API, Account Service; port 0; a fresh database per service), on SQLite and on
//! PostgreSQL:
//! - `refusals`: a suspended account cannot sign (clear error) until activated, after which real
//!   parties sign again; too few signers is `insufficient participants`; a signer that is a
//!   running server party but not a party of the account is refused; each refusal is in the
//!   audit log with `share_data` and join tokens redacted, and no secret of the whole flow
//!   (share, join tokens, API key, access token) appears anywhere in the log; then random JSON
//!   bodies to every POST endpoint never produce a 5xx;
//! - `device_never_joins`: a keygen whose device never joins (short session lifetime) ends with
//!   `keygen failed: timeout`, the account records why, the outcome is audited, no party keeps
//!   a share, and the failed account can neither sign nor get access tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod full_stack;

use full_stack::*;
use mpc_testkit::{Backend, Cluster};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

async fn refusals(backend: Backend) {
    // Three server parties: server_party_3 runs but holds no share of the wallet.
    let Some(cluster) = cluster(backend, 3).await else {
        return;
    };
    let accounts = cluster.account_service();
    let (wallet, created) = create_wallet_with(&cluster, &guide_keygen()).await;
    let id = &wallet.account_id;
    // Every secret the flow handled; none may reach the audit log.
    let mut secrets: Vec<String> = created["join_tokens"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    secrets.push(wallet.device_share.clone());
    secrets.push(accounts.api_key.clone());
    secrets.push(cluster.party_api().api_key.clone());

    // Suspended: no signing (with the device or without), no access token; a clear error.
    let suspended = accounts
        .post(&format!("/api/v1/accounts/{id}/suspend"), &json!({}))
        .await;
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    assert_eq!(suspended.body["status"], "suspended");
    let device_token = str_of(&created["join_tokens"], DEVICE).to_owned();
    let guide_style = json!({
        "account_id": id,
        "message_hash": random_hash(),
        // As in the guide's SDK examples: the device's share (and here a token) inline.
        "participants": [
            {"party_id": DEVICE, "share_data": wallet.device_share, "join_token": device_token},
            {"party_id": "server_party_1"}
        ]
    });
    for body in [
        guide_style.clone(),
        sign_body(
            &wallet,
            &random_hash(),
            &["server_party_1", "server_party_2"],
        ),
    ] {
        let r = accounts.post("/api/v1/mpc/sign", &body).await;
        assert_error(&r, 403, "account_suspended");
        assert!(
            r.error_message().starts_with("account is suspended"),
            "{}",
            r.body
        );
    }
    let token = accounts
        .post(&format!("/api/v1/accounts/{id}/access-tokens"), &json!({}))
        .await;
    assert_error(&token, 403, "account_suspended");
    let activated = accounts
        .post(&format!("/api/v1/accounts/{id}/activate"), &json!({}))
        .await;
    assert_eq!(activated.body["status"], "active", "{}", activated.body);
    sign_without_device(&cluster, &wallet, &["server_party_1", "server_party_2"]).await;
    let token = accounts
        .post(&format!("/api/v1/accounts/{id}/access-tokens"), &json!({}))
        .await;
    assert_eq!(token.status, 201, "{}", token.body);
    secrets.push(str_of(&token.body, "access_token").to_owned());

    // Too few signers, and a signer that is not a party of the account.
    let few = accounts
        .post(
            "/api/v1/mpc/sign",
            &sign_body(&wallet, &random_hash(), &["server_party_1"]),
        )
        .await;
    assert_error(&few, 400, "insufficient_participants");
    assert!(
        few.error_message().starts_with("insufficient participants"),
        "{}",
        few.body
    );
    let stranger = accounts
        .post(
            "/api/v1/mpc/sign",
            &sign_body(
                &wallet,
                &random_hash(),
                &["server_party_1", "server_party_3"],
            ),
        )
        .await;
    assert_error(&stranger, 400, "invalid_argument");
    assert_eq!(
        stranger.error_message(),
        format!("party server_party_3 is not a party of account {id}")
    );

    // The audit log has each refusal, with the secrets of the request redacted.
    let refused = accounts.audit("operation=sign&status_min=400").await;
    let statuses: Vec<u64> = refused
        .iter()
        .map(|e| e["response_status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [400, 400, 403, 403], "newest first: {refused:?}");
    let inline = &refused[3]["request_body"]["participants"][0];
    assert_eq!(inline["share_data"], "[REDACTED]", "{inline}");
    assert_eq!(inline["join_token"], "[REDACTED]", "{inline}");
    assert_eq!(inline["party_id"], DEVICE);
    assert_eq!(refused[3]["request_body"]["account_id"], id.as_str());
    let log = accounts.audit("limit=1000").await;
    assert!(log.len() >= 10, "{log:?}");
    let text = serde_json::to_string(&log).unwrap();
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the audit log: {text}"
        );
    }

    random_bodies_never_produce_a_5xx(&cluster, &wallet);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_sqlite() {
    refusals(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_postgres() {
    refusals(Backend::Postgres).await;
}

async fn device_never_joins(backend: Backend) {
    // The server parties join by themselves; nobody joins for the device.
    let Some(cluster) = Cluster::builder()
        .backend(backend)
        .server_parties(2)
        .account_config(|c| c.session_lifetime_seconds = 4)
        .build()
        .await
    else {
        return;
    };
    let accounts = cluster.account_service();
    let created = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = str_of(&created.body, "account_id").to_owned();
    let session_id = str_of(&created.body, "session_id").to_owned();

    let account = accounts
        .wait_for_account(&id, "the keygen's end", |a| a["status"] != "pending")
        .await;
    assert_eq!(account["status"], "failed", "{account}");
    let reason = str_of(&account, "failure_reason").to_owned();
    assert!(reason.starts_with("keygen failed: timeout"), "{reason}");
    assert_eq!(account["public_key"], Value::Null);
    assert_eq!(account["shares"].as_array().unwrap().len(), 0, "{account}");

    let session = accounts
        .get(&format!("/api/v1/mpc/sessions/{session_id}"))
        .await
        .body;
    assert_eq!(session["failure_reason"], reason.as_str(), "{session}");
    // The server parties report the timeout (naming the device) just before the coordinator
    // would expire the session; on a slow machine the coordinator may come first.
    let (operation, status) = match str_of(&session, "status") {
        "failed" => {
            assert_eq!(session["blamed_party_id"], DEVICE, "{session}");
            assert!(reason.contains(DEVICE), "{reason}");
            ("session.failed", 422)
        }
        "expired" => ("session.expired", 410),
        other => panic!("the session is {other}: {session}"),
    };
    let audited = accounts
        .wait_for_audit(&format!("operation={operation}&session_id={session_id}"))
        .await;
    assert_eq!(audited[0]["response_status"], status);
    assert_eq!(audited[0]["account_id"], id.as_str());
    assert_eq!(
        audited[0]["request_body"]["failure_reason"],
        reason.as_str()
    );
    for i in 0..2 {
        let store = cluster.party_store(i).await;
        assert!(
            store.active_share(&id).await.unwrap().is_none(),
            "server party {}",
            i + 1
        );
    }

    let sign = accounts
        .post(
            "/api/v1/mpc/sign",
            &json!({"account_id": id, "message_hash": random_hash(),
                    "participants": [{"party_id": "server_party_1"}, {"party_id": "server_party_2"}]}),
        )
        .await;
    assert_error(&sign, 409, "failed_precondition");
    assert!(
        sign.error_message().contains("its keygen failed"),
        "{}",
        sign.body
    );
    let token = accounts
        .post(&format!("/api/v1/accounts/{id}/access-tokens"), &json!({}))
        .await;
    assert_error(&token, 409, "failed_precondition");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_never_joins_sqlite() {
    device_never_joins(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_never_joins_postgres() {
    device_never_joins(Backend::Postgres).await;
}

// --- random bodies ------------------------------------------------------------------------

const FIELDS: [&str; 13] = [
    "threshold_n",
    "threshold_t",
    "participants",
    "party_id",
    "device_type",
    "username",
    "email",
    "account_id",
    "message_hash",
    "lost_party_id",
    "new_party_id",
    "helpers",
    "share_data",
];

fn scalar(account: String) -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0u32..6).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,30}".prop_map(Value::String),
        "(0x)?[0-9a-f]{62,66}".prop_map(Value::String),
        Just(json!(account)),
        prop::sample::select(vec![
            "server_party_1",
            "server_party_2",
            "server_party_3",
            DEVICE,
            "server",
            "android",
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn value(account: String) -> impl Strategy<Value = Value> {
    scalar(account).prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS.to_vec()), inner), 0..5).prop_map(
                |fields| Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>()
                )
            ),
        ]
    })
}

/// A real request body with some fields replaced by random values.
fn mutated(base: Value, account: String) -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (prop::sample::select(FIELDS.to_vec()), value(account)),
        1..4,
    )
    .prop_map(move |changes| {
        let mut body = base.clone();
        if let Value::Object(map) = &mut body {
            for (field, v) in changes {
                map.insert(field.to_owned(), v);
            }
        }
        body
    })
}

/// Random and half-random bodies to every POST endpoint (sometimes cut mid-text): never a 5xx,
/// and every refusal is an `{"error": {"code", "message"}}`.
fn random_bodies_never_produce_a_5xx(cluster: &Cluster, wallet: &Wallet) {
    let accounts = cluster.account_service();
    let account = wallet.account_id.clone();
    let sign = sign_body(wallet, &random_hash(), &[DEVICE, "server_party_1"]);
    let recover = json!({"lost_party_id": DEVICE, "new_party_id": "user_device_2"});
    let bodies = prop_oneof![
        value(account.clone()),
        mutated(guide_keygen(), account.clone()),
        mutated(sign, account.clone()),
        mutated(recover, account.clone()),
    ];
    let ids = prop_oneof![
        Just(account.clone()),
        Just(uuid::Uuid::new_v4().to_string()),
        "[a-z0-9%.-]{1,20}",
    ];
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let key = accounts.api_key.clone();
    tokio::task::block_in_place(|| {
        runner
            .run(
                &(0usize..7, bodies, ids, any::<bool>()),
                |(which, body, id, cut)| {
                    let path = match which {
                        0 => "/api/v1/mpc/keygen".to_owned(),
                        1 => "/api/v1/mpc/sign".to_owned(),
                        2 => format!("/api/v1/accounts/{id}/recover"),
                        3 => format!("/api/v1/accounts/{id}/refresh"),
                        4 => format!("/api/v1/accounts/{id}/suspend"),
                        5 => format!("/api/v1/accounts/{id}/activate"),
                        _ => format!("/api/v1/accounts/{id}/access-tokens"),
                    };
                    let mut bytes = body.to_string().into_bytes();
                    if cut && bytes.len() > 2 {
                        bytes.truncate(bytes.len() / 2);
                    }
                    let r = handle.block_on(accounts.request(
                        "POST",
                        &path,
                        &[("x-api-key", &key)],
                        Some(bytes),
                    ));
                    prop_assert!(r.status < 500, "{path} {body} -> {} {}", r.status, r.body);
                    if r.status >= 400 {
                        prop_assert!(
                            !r.error_code().is_empty() && !r.error_message().is_empty(),
                            "{path} -> {}",
                            r.body
                        );
                    }
                    Ok(())
                },
            )
            .unwrap();
    });
}
