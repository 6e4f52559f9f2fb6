//! Random JSON bodies (arbitrary documents, and the real request shapes with fields of random
//! types and values) sent to every POST endpoint never produce a 5xx, and every refusal is an
//! `{"error": {"code", "message"}}` body. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mpc_store::testing::TestDb;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

const FIELDS: [&str; 16] = [
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
    "name",
    "scope",
    "expires_at",
    "expires_in_days",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0u32..20).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,40}".prop_map(Value::String),
        "[0-9a-f]{60,68}".prop_map(Value::String),
        "0x[0-9a-f]{64}".prop_map(Value::String),
        Just(json!(uuid::Uuid::new_v4().to_string())),
        prop_oneof![
            Just("server_party_1"),
            Just("server_party_2"),
            Just("user_device_12345"),
            Just("server"),
            Just("android"),
            Just("admin"),
            Just("2099-01-01T00:00:00Z"),
        ]
        .prop_map(|s| json!(s)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid body of each endpoint with some fields replaced by random values.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(FIELDS.to_vec()), value()), 0..4).prop_map(
        move |changes| {
            let mut body = base.clone();
            if let Value::Object(map) = &mut body {
                for (field, v) in changes {
                    map.insert(field.to_owned(), v);
                }
            }
            body
        },
    )
}

fn endpoint() -> impl Strategy<Value = usize> {
    0usize..8
}

async fn random_bodies_never_produce_a_5xx(t: TestDb) {
    let c = Cluster::start(t).await;
    let (account, _) = active_account(&c).await;
    let sign_base = json!({
        "account_id": account,
        "message_hash": hex::encode(random_hash()),
        "participants": [{"party_id": "server_party_1"}, {"party_id": "server_party_2"}]
    });
    let recover_base =
        json!({"lost_party_id": "user_device_12345", "new_party_id": "user_device_2"});
    let key_base = json!({"name": "k", "scope": "operator"});
    let bodies = prop_oneof![
        value(),
        mutated(guide_keygen()),
        mutated(sign_base),
        mutated(recover_base),
        mutated(key_base),
    ];
    let account_ids = prop_oneof![
        Just(account.clone()),
        Just(uuid::Uuid::new_v4().to_string()),
        "[a-z0-9%.-]{1,20}",
    ];
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    tokio::task::block_in_place(|| {
        runner
            .run(
                &(endpoint(), bodies, account_ids, any::<bool>()),
                |(which, body, id, raw)| {
                    let path = match which {
                        0 => "/api/v1/mpc/keygen".to_owned(),
                        1 => "/api/v1/mpc/sign".to_owned(),
                        2 => format!("/api/v1/accounts/{id}/recover"),
                        3 => format!("/api/v1/accounts/{id}/refresh"),
                        4 => format!("/api/v1/accounts/{id}/suspend"),
                        5 => format!("/api/v1/accounts/{id}/activate"),
                        6 => format!("/api/v1/accounts/{id}/access-tokens"),
                        _ => "/api/v1/admin/api-keys".to_owned(),
                    };
                    // Sometimes not even JSON: the text cut in the middle.
                    let mut bytes = body.to_string().into_bytes();
                    if raw && bytes.len() > 2 {
                        bytes.truncate(bytes.len() / 2);
                    }
                    let r = handle.block_on(c.request(
                        "POST",
                        &path,
                        Some(ADMIN_KEY),
                        &[],
                        Some(bytes),
                    ));
                    prop_assert!(r.status < 500, "{path} {body} -> {} {:?}", r.status, r.body);
                    if r.status >= 400 {
                        prop_assert!(
                            !r.code().is_empty() && !r.message().is_empty(),
                            "{path} -> {:?}",
                            r.body
                        );
                    }
                    Ok(())
                },
            )
            .unwrap();
    });
    c.stop().await;
}
mpc_store::backend_tests!(
    random_bodies_never_produce_a_5xx,
    random_bodies_never_produce_a_5xx
);
