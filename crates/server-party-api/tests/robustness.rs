//! Requests that are wrong in shape or size, random bodies, and a request past its time bound:
//! always a JSON `{"error": {"code", "message"}}` with a 4xx (never a 5xx), and a party that
//! ran out of time reports its failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use mpc_proto::Threshold;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_testkit::{Backend, Cluster, http};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use server_party_api::share::{ShareOwner, to_share_data};
use server_party_api::{IdentitySeed, PartyApiConfig, PartyApiListeners};

const PATHS: [&str; 4] = [KEYGEN, SIGN, REFRESH, RECOVERY];
const FIELDS: [&str; 6] = [
    "session_id",
    "party_id",
    "join_token",
    "share_data",
    "message_hash",
    "user_public_key",
];

/// The fixture key in both server parties, a sign session for the device, and a valid body.
async fn sign_body(cluster: &Cluster) -> Value {
    let key_id = format!("acct-{}", uuid::Uuid::new_v4().simple());
    let shares = mpc_testkit::fixture_shares();
    cluster.import_share(0, &key_id, &shares[1]).await;
    cluster.import_share(1, &key_id, &shares[2]).await;
    let key = Key {
        key_id: key_id.clone(),
        threshold: Threshold { t: 2, n: 3 },
        public_key: shares[0].public_key().to_uncompressed().to_vec(),
    };
    let party = device();
    let owner = ShareOwner {
        key_id: &key_id,
        party_id: &party,
        party_index: 0,
    };
    let share = to_share_data(&cluster.party_api().share_keys(), &owner, &shares[0], None).unwrap();
    let (hash, created) = sign_session(cluster, &key, true, &[0]).await;
    request(
        &created,
        json!({ "share_data": share, "message_hash": hash.to_hex() }),
    )
}

fn assert_error_body(r: &mpc_testkit::http::HttpResponse, what: &str) {
    assert!(
        (400..500).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.body
    );
    let code = r.body["error"]["code"].as_str().unwrap_or_default();
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty() && !message.is_empty(),
        "{what}: {}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_and_oversized_bodies() {
    let cluster = cluster(Backend::Sqlite, 2).await.unwrap();
    let api = cluster.party_api();
    let good = sign_body(&cluster).await;
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().insert(field.into(), value);
        b
    };
    let without = |field: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    let cases = [
        (json!({}), "empty", 400, "missing field"),
        (without("share_data"), "no share_data", 400, "share_data"),
        (
            with("session_id", json!("not-a-uuid")),
            "session id",
            400,
            "invalid session id",
        ),
        (
            with("party_id", json!("a b")),
            "party id",
            400,
            "invalid party_id",
        ),
        (
            with("join_token", json!("")),
            "empty token",
            401,
            "invalid join token",
        ),
        (
            with("session_id", json!(42)),
            "a number",
            400,
            "invalid type",
        ),
    ];
    for (body, what, status, words) in cases {
        let r = api.post(SIGN, &body).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert_error_body(&r, what);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{what}: {message}");
    }
    for key in [
        "zz",
        "04",
        &hex::encode([4u8; 65]),
        &format!("05{}", "11".repeat(32)),
    ] {
        let mut body = good.clone();
        body["user_public_key"] = json!(key);
        let r = api.post(KEYGEN, &body).await;
        assert_eq!(r.status, 400, "{key}: {}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("P-256 public key"),
            "{}",
            r.body
        );
    }
    // Over the body limit (8 MiB): 413 as JSON, before anything else.
    let huge = with("share_data", json!("ab".repeat(5 * 1024 * 1024)));
    let r = api.post(SIGN, &huge).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "payload_too_large");
    // Unknown paths are JSON 404s.
    let r = api.post("/api/v1/nothing", &good).await;
    assert_eq!(r.status, 404);
    // After all that, the body itself still signs.
    assert_ok(&api.post(SIGN, &good).await);
    cluster.shutdown().await;
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "\\PC{0,40}".prop_map(Value::String),
        "[0-9a-f]{0,140}".prop_map(Value::String),
        "0x[0-9a-f]{64}".prop_map(Value::String),
        Just(json!(uuid::Uuid::new_v4().to_string())),
        Just(json!("user_device_1")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
                    inner
                ),
                0..5
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The valid body with some fields replaced (or bytes flipped in its hex fields).
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(FIELDS.to_vec()), value()), 0..3).prop_map(
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

async fn random_bodies_never_produce_a_5xx(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let good = sign_body(&cluster).await;
    let api_addr = cluster.party_api().http;
    let api_key = cluster.party_api().api_key.clone();
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let bodies = prop_oneof![value(), mutated(good)];
    tokio::task::block_in_place(|| {
        runner
            .run(
                &(0usize..PATHS.len(), bodies, any::<bool>()),
                |(which, body, cut)| {
                    let path = PATHS[which];
                    // Sometimes half of the body's text, as a JSON string.
                    let body = if cut {
                        let text = body.to_string();
                        let half: String = text.chars().take(text.chars().count() / 2).collect();
                        json!(half)
                    } else {
                        body
                    };
                    let r = handle
                        .block_on(http::post_json(
                            api_addr,
                            path,
                            &[("x-api-key", &api_key)],
                            &body,
                        ))
                        .unwrap();
                    prop_assert!(r.status < 500, "{path} {body} -> {} {}", r.status, r.body);
                    if r.status >= 400 {
                        let code = r.body["error"]["code"].as_str().unwrap_or_default();
                        prop_assert!(!code.is_empty(), "{path} -> {}", r.body);
                    }
                    Ok(())
                },
            )
            .unwrap();
    });
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bodies_never_produce_a_5xx_sqlite() {
    random_bodies_never_produce_a_5xx(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bodies_never_produce_a_5xx_postgres() {
    random_bodies_never_produce_a_5xx(Backend::Postgres).await;
}

/// An API of its own on the cluster's coordinator and router (API key `k`), configured by
/// `change`.
async fn own_api(
    cluster: &Cluster,
    change: impl FnOnce(&mut PartyApiConfig),
) -> (
    std::net::SocketAddr,
    mpc_service::Shutdown,
    tokio::task::JoinHandle<Result<(), server_party_api::PartyApiError>>,
) {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let share_key = mpc_protocol::SealingKey::generate("uk-1").unwrap();
    let mut config =
        PartyApiConfig::new(IdentitySeed::new(seed), share_key, cluster.join_token_key());
    config.coordinator_endpoint = format!("http://{}", cluster.coordinator().grpc);
    config.router_endpoint = format!("http://{}", cluster.router().grpc);
    config.api_keys = vec![secrecy::SecretString::from("k".to_owned())];
    config.driver = mpc_testkit::fast_driver();
    change(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = mpc_service::Shutdown::new();
    let task = tokio::spawn(server_party_api::serve(
        config,
        PartyApiListeners { http: listener },
        stop.clone(),
    ));
    (addr, stop, task)
}

/// An API whose requests may hold for one second: a keygen that cannot start (a participant
/// never joins) is answered `timeout`, and the device's party reports its failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_time_bound_fails_the_session() {
    let cluster = Cluster::builder().server_parties(0).build().await.unwrap();
    let (addr, stop, served) =
        own_api(&cluster, |c| c.max_request_time = Duration::from_secs(1)).await;
    let created = cluster
        .create_session(mpc_testkit::keygen_request(
            vec![
                mpc_testkit::participant(&device(), "ios", Some(0)),
                mpc_testkit::participant(&pid("never_joins"), "android", Some(1)),
            ],
            2,
            "acct-slow",
        ))
        .await;
    let r = http::post_json(
        addr,
        KEYGEN,
        &[("x-api-key", "k")],
        &request(&created, json!({})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "timeout");
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_eq!(mpc_testkit::status(&info), pb::SessionStatus::Failed);
    assert_eq!(
        info.failure_reason,
        "keygen failed: party user_device_1 stopped before the session finished"
    );
    stop.cancel();
    served.await.unwrap().unwrap();
    cluster.shutdown().await;
}

/// `/readyz` says what is wrong: a coordinator with another join-token key, a router that is
/// not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_what_is_wrong() {
    let cluster = Cluster::builder().server_parties(0).build().await.unwrap();
    let other_key = mpc_proto::TokenSigner::from_seed(&[3; 32]).public_key();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    type Change = Box<dyn FnOnce(&mut PartyApiConfig)>;
    let cases: [(&str, Change); 3] = [
        ("", Box::new(|_| {})),
        (
            "join-token key",
            Box::new(move |c| c.join_token_public_key = other_key),
        ),
        (
            "message router",
            Box::new(move |c| c.router_endpoint = format!("http://{closed_addr}")),
        ),
    ];
    for (problem, change) in cases {
        let (addr, stop, served) = own_api(&cluster, change).await;
        let r = http::get(addr, "/readyz").await.unwrap();
        if problem.is_empty() {
            assert_eq!(r.status, 200, "{}", r.body);
        } else {
            assert_eq!(r.status, 503, "{problem}: {}", r.body);
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(problem), "{problem}: {message}");
        }
        stop.cancel();
        served.await.unwrap().unwrap();
    }
    cluster.shutdown().await;
}
