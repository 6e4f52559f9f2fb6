//! Bad input and abuse (issue "Hardening", section 4), with the real system in this process:
//! - `throttled_*`: wrong API keys from one address are refused with `429 too_many_failures`
//!   and `Retry-After` once the configured number of failures is reached, whatever the address
//!   presents next (the right key too) until the window ends; the audit log has one
//!   `auth.throttled` row per window (on SQLite and PostgreSQL); after the window the right key
//!   works again;
//! - `party_api_throttle`: the same at the Server Party API;
//! - `limits_and_deadlines`: an oversized body is a JSON 413 at both services; a request whose
//!   body never finishes is answered 504 `timeout` at the (tiny) deadline; the long poll
//!   (`?wait=`) outlives the ordinary deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod full_stack;

use std::net::SocketAddr;
use std::time::Duration;

use full_stack::*;
use mpc_testkit::http::HttpResponse;
use mpc_testkit::{Backend, Cluster};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: u32 = 3;
const WINDOW: Duration = Duration::from_secs(3);

fn throttle() -> mpc_service::ThrottleConfig {
    mpc_service::ThrottleConfig {
        max_failures: LIMIT,
        window: WINDOW,
        ..Default::default()
    }
}

async fn stack(backend: Backend) -> Option<Cluster> {
    Cluster::builder()
        .backend(backend)
        .server_parties(2)
        .account_config(|c| c.auth_throttle = throttle())
        // The Server Party API asks the Account Service about keys it does not know; its own
        // throttle is tested separately.
        .party_api_config(|c| c.auth_throttle.max_failures = 0)
        .build()
        .await
}

#[track_caller]
fn assert_throttled(r: &HttpResponse) {
    assert_error(r, 429, "too_many_failures");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {r:?}"));
    assert!(
        (1..=WINDOW.as_secs()).contains(&retry),
        "Retry-After {retry}"
    );
}

async fn get_with_key(addr: SocketAddr, key: &str) -> HttpResponse {
    mpc_testkit::http::request(addr, "GET", "/api/v1/accounts", &[("x-api-key", key)], None)
        .await
        .unwrap()
}

/// One window: `LIMIT` wrong keys (401), then refusals (429) for a wrong key, the right key,
/// and a POST with a body (answered whole).
async fn one_window(cluster: &Cluster) {
    let accounts = cluster.account_service();
    for _ in 0..LIMIT {
        let r = get_with_key(accounts.http, "mpc_wrong").await;
        assert_error(&r, 401, "invalid_api_key");
    }
    assert_throttled(&get_with_key(accounts.http, "mpc_wrong").await);
    // The right key too: the address is refused before any key is looked at.
    assert_throttled(&get_with_key(accounts.http, &accounts.api_key).await);
    let body = serde_json::to_vec(&guide_keygen()).unwrap();
    for _ in 0..5 {
        let r = mpc_testkit::http::request(
            accounts.http,
            "POST",
            "/api/v1/mpc/keygen",
            &[("x-api-key", "mpc_still_wrong")],
            Some(body.clone()),
        )
        .await
        .unwrap();
        assert_throttled(&r);
    }
}

async fn wait_out_the_window() {
    tokio::time::sleep(WINDOW + Duration::from_millis(300)).await;
}

async fn throttled(backend: Backend) {
    let Some(cluster) = stack(backend).await else {
        return;
    };
    let accounts = cluster.account_service();
    one_window(&cluster).await;
    wait_out_the_window().await;
    // The window is over: the right key works again (and reads the audit log).
    let r = get_with_key(accounts.http, &accounts.api_key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = accounts.audit("operation=auth.throttled").await;
    assert_eq!(
        rows.len(),
        1,
        "one row for the window, not one per request: {rows:?}"
    );
    assert_eq!(rows[0]["response_status"], 429, "{}", rows[0]);
    assert_eq!(rows[0]["request_body"]["failures"], LIMIT, "{}", rows[0]);
    assert!(rows[0]["ip_address"].as_str().is_some(), "{}", rows[0]);
    let refused = accounts.audit("status_min=401&status_max=401").await;
    assert_eq!(
        refused.len(),
        LIMIT as usize,
        "each 401 before the throttle: {refused:?}"
    );
    // A second window is a second row.
    one_window(&cluster).await;
    wait_out_the_window().await;
    let rows = accounts.audit("operation=auth.throttled").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_sqlite() {
    throttled(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttled_postgres() {
    throttled(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn party_api_throttle() {
    let Some(cluster) = Cluster::builder()
        .backend(Backend::Sqlite)
        .server_parties(2)
        .account_service(true)
        .party_api_config(|c| c.auth_throttle = throttle())
        .build()
        .await
    else {
        return;
    };
    let api = cluster.party_api();
    let body = json!({"session_id": "x", "party_id": "y", "join_token": "z", "share_data": "00", "message_hash": "00"});
    for _ in 0..LIMIT {
        let r = api
            .post_with(PARTY_SIGN, &[("x-api-key", "wrong-key")], &body)
            .await;
        assert_error(&r, 401, "invalid_api_key");
    }
    for key in ["wrong-key", api.api_key.as_str()] {
        let r = api
            .post_with(PARTY_SIGN, &[("x-api-key", key)], &body)
            .await;
        assert_throttled(&r);
    }
    // Routes without credentials are not throttled.
    assert_eq!(
        mpc_testkit::http::get(api.http, "/api/v1/identity")
            .await
            .unwrap()
            .status,
        200
    );
    wait_out_the_window().await;
    let r = api
        .post_with(PARTY_SIGN, &[("x-api-key", api.api_key.as_str())], &body)
        .await;
    // Past the credential check: refused for its body, not throttled.
    assert_error(&r, 400, "invalid_message_hash");
    cluster.shutdown().await;
}

/// Sends the head of a request promising `Content-Length: 100` and one byte of body, then
/// nothing: the answer must come at the deadline.
async fn stalled_post(addr: SocketAddr, path: &str, key: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\nx-api-key: {key}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(mpc_testkit::DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("no answer to a stalled request")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_and_deadlines() {
    let Some(cluster) = Cluster::builder()
        .backend(Backend::Sqlite)
        .server_parties(2)
        .account_config(|c| {
            c.body_limit = 2048;
            c.share_body_limit = 4096;
            c.request_deadline = Duration::from_secs(1);
        })
        .party_api_config(|c| {
            c.body_limit = 4096;
            c.request_deadline = Duration::from_millis(300);
            c.max_request_time = Duration::from_millis(300);
        })
        .build()
        .await
    else {
        return;
    };
    let accounts = cluster.account_service();
    let api = cluster.party_api();
    // Body limits: a JSON 413 with a stable code.
    let big = json!({"threshold_n": 3, "padding": "x".repeat(3000)});
    assert_error(
        &accounts.post("/api/v1/mpc/keygen", &big).await,
        413,
        "payload_too_large",
    );
    let bigger = json!({"session_id": "x", "padding": "x".repeat(5000)});
    assert_error(
        &accounts.post(PARTY_SIGN, &bigger).await,
        413,
        "payload_too_large",
    );
    assert_error(
        &api.post_with(PARTY_SIGN, &[("x-api-key", api.api_key.as_str())], &bigger)
            .await,
        413,
        "payload_too_large",
    );
    // Deadlines: a body that never finishes gets a JSON 504 `timeout` (and the connection is
    // closed), at both services.
    for answer in [
        stalled_post(accounts.http, "/api/v1/mpc/keygen", &accounts.api_key).await,
        stalled_post(api.http, PARTY_SIGN, &api.api_key).await,
    ] {
        assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
        assert!(answer.contains(r#""code":"timeout""#), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    // The long poll outlives the 1 s deadline: its own is the deadline plus its wait.
    let created = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let session = str_of(&created.body, "session_id");
    let r = accounts
        .get(&format!("/api/v1/mpc/sessions/{session}?wait=2"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    cluster.shutdown().await;
}
