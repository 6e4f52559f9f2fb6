//! The client's retry rules against a small HTTP server that plays the API's overload answers
//! (429 with `Retry-After`, then success): retried with the same `Idempotency-Key` on keygen,
//! not retried at all with `max_retries = 0`, and the 429 then surfaces as a typed error. The
//! SDK's behaviour against the real system is tested in `crates/mpc-cli/tests/sdk.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use mpc_sdk::{Client, Config, KeygenRequest, Participant};
use serde_json::json;

#[derive(Default)]
struct Seen {
    keys: Vec<Option<String>>,
}

async fn server(throttle_first: usize) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let state = seen.clone();
    let app = Router::new().route(
        "/api/v1/mpc/keygen",
        post(move |headers: HeaderMap| {
            let state = state.clone();
            async move {
                let mut s = state.lock().unwrap();
                s.keys.push(
                    headers
                        .get("idempotency-key")
                        .map(|v| v.to_str().unwrap().to_owned()),
                );
                if s.keys.len() <= throttle_first {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "0"), ("content-type", "application/json")],
                        json!({"error": {"code": "overloaded", "message": "too many requests"}})
                            .to_string(),
                    );
                }
                (
                    StatusCode::CREATED,
                    [("retry-after", ""), ("content-type", "application/json")],
                    json!({"session_id": "s", "session_type": "keygen", "threshold_n": 2,
                           "threshold_t": 2, "join_tokens": {"d": "t"}, "status": "created",
                           "account_id": "a", "expires_at": "2030-01-01T00:00:00Z"})
                    .to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn request() -> KeygenRequest {
    KeygenRequest {
        threshold_n: 2,
        threshold_t: 2,
        participants: vec![
            Participant::new("d", "ios"),
            Participant::new("server_party_1", "server"),
        ],
        ..KeygenRequest::default()
    }
}

#[tokio::test]
async fn throttled_requests_are_retried_under_one_idempotency_key() {
    let (url, seen) = server(2).await;
    let client = Client::new(Config {
        base_url: url,
        api_key: "k".into(),
        timeout: Duration::from_secs(10),
        ..Config::default()
    })
    .unwrap();
    let created = client.create_keygen(&request()).await.unwrap();
    assert_eq!(created.account_id, "a");
    let keys = &seen.lock().unwrap().keys;
    assert_eq!(keys.len(), 3, "two 429s, then the answer");
    assert!(
        keys[0].is_some() && keys.iter().all(|k| k == &keys[0]),
        "{keys:?}"
    );
}

#[tokio::test]
async fn without_retries_a_429_is_a_typed_error() {
    let (url, seen) = server(1).await;
    let client = Client::new(Config {
        base_url: url,
        api_key: "k".into(),
        max_retries: 0,
        ..Config::default()
    })
    .unwrap();
    let e = client.create_keygen(&request()).await.unwrap_err();
    assert!(e.is_throttled(), "{e}");
    assert_eq!(e.code(), Some("overloaded"));
    assert_eq!(e.retry_after(), Some(Duration::ZERO));
    assert_eq!(seen.lock().unwrap().keys.len(), 1);
}
