//! The HTTP plumbing over real HTTP: ops routes, request metrics, JSON errors, panics, limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use common::{http_get, post_json, request, sample, spawn_http};
use mpc_service::{
    ApiJson, Metrics, Readiness, catch_panic_layer, http_metrics_layer, not_found_fallback,
    ops_routes, with_body_limit,
};
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Readiness that the test switches between ready and "down: <what>".
#[derive(Default)]
struct Switch(Mutex<Option<String>>);

#[async_trait]
impl Readiness for Switch {
    async fn ready(&self) -> Result<(), String> {
        match self.0.lock().unwrap().clone() {
            None => Ok(()),
            Some(what) => Err(what),
        }
    }
}

#[tokio::test]
async fn ops_routes_report_health_readiness_and_metrics() {
    let metrics = Metrics::new("test-svc");
    let sessions: Counter = Counter::default();
    metrics.register("mpc_sessions_created", "Sessions created", sessions.clone());
    sessions.inc_by(7);
    let readiness = Arc::new(Switch::default());
    let (addr, shutdown, task) = spawn_http(ops_routes(metrics, readiness.clone())).await;

    let health = http_get(addr, "/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));

    let ready = http_get(addr, "/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), json!({"status": "ready"}));

    *readiness.0.lock().unwrap() = Some("database".to_owned());
    let not_ready = http_get(addr, "/readyz").await;
    assert_eq!(not_ready.status, 503);
    assert_eq!(
        not_ready.json(),
        json!({"error": {"code": "unavailable", "message": "not ready: database"}})
    );
    // Liveness does not depend on readiness: restarting would not bring the database back.
    assert_eq!(http_get(addr, "/healthz").await.status, 200);

    let scrape = http_get(addr, "/metrics").await;
    assert_eq!(scrape.status, 200);
    assert_eq!(
        scrape.content_type.as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert_eq!(
        sample(
            &scrape.body,
            "mpc_sessions_created_total",
            &[("service", "test-svc")]
        ),
        7.0
    );
    assert!(scrape.body.ends_with("# EOF\n"), "{}", scrape.body);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server did not stop after shutdown")
        .unwrap()
        .unwrap();
}

async fn item(axum::extract::Path(id): axum::extract::Path<u32>) -> ApiJson<serde_json::Value> {
    ApiJson(json!({ "id": id }))
}

async fn boom() -> &'static str {
    panic!("secret internal detail 0xdeadbeef")
}

#[tokio::test]
async fn http_metrics_label_the_route_template_not_the_path() {
    let metrics = Metrics::new("router");
    let app = Router::new()
        .route("/items/{id}", get(item))
        .route("/boom", get(boom))
        .fallback(not_found_fallback)
        .layer(catch_panic_layer())
        .layer(http_metrics_layer(&metrics))
        .merge(ops_routes(
            metrics.clone(),
            Arc::new(mpc_service::AlwaysReady),
        ));
    let (addr, _shutdown, _task) = spawn_http(app).await;

    assert_eq!(http_get(addr, "/items/41").await.json(), json!({"id": 41}));
    assert_eq!(http_get(addr, "/items/42").await.status, 200);
    assert_eq!(http_get(addr, "/no/such/path").await.status, 404);
    assert_eq!(http_get(addr, "/boom").await.status, 500);

    let text = metrics.encode();
    let ok = [
        ("service", "router"),
        ("method", "GET"),
        ("route", "/items/{id}"),
        ("status", "200"),
    ];
    assert_eq!(sample(&text, "mpc_http_requests_total", &ok), 2.0);
    assert_eq!(
        sample(
            &text,
            "mpc_http_request_duration_seconds_count",
            &[("route", "/items/{id}")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "mpc_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            "mpc_http_requests_total",
            &[("route", "/boom"), ("status", "500")]
        ),
        1.0
    );
    assert!(
        !text.contains("/items/41"),
        "raw path leaked into labels:\n{text}"
    );
    assert!(!text.contains("/no/such/path"), "raw path leaked:\n{text}");
}

#[derive(Debug, Deserialize, Serialize)]
struct CreateSession {
    threshold_t: u16,
    threshold_n: u16,
}

async fn create(ApiJson(req): ApiJson<CreateSession>) -> ApiJson<CreateSession> {
    ApiJson(req)
}

fn json_app() -> Router {
    Router::new()
        .route("/sessions", post(create))
        .route(
            "/raw",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route("/boom", get(boom))
        .fallback(not_found_fallback)
        .layer(catch_panic_layer())
}

fn assert_invalid_argument(resp: &common::HttpResponse) -> String {
    assert_eq!(resp.status, 400, "{}", resp.body);
    let body = resp.json();
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn api_json_accepts_valid_bodies_and_answers_json() {
    let (addr, _shutdown, _task) = spawn_http(json_app()).await;
    let resp = post_json(addr, "/sessions", r#"{"threshold_t":2,"threshold_n":3}"#).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.content_type.as_deref(), Some("application/json"));
    assert_eq!(resp.json(), json!({"threshold_t": 2, "threshold_n": 3}));
}

#[tokio::test]
async fn api_json_rejections_are_400_invalid_argument_with_a_useful_message() {
    let (addr, _shutdown, _task) = spawn_http(json_app()).await;

    let missing = post_json(addr, "/sessions", r#"{"threshold_t":2}"#).await;
    assert_eq!(
        assert_invalid_argument(&missing),
        "invalid JSON body: missing field `threshold_n` at line 1 column 17"
    );

    let wrong_type = post_json(
        addr,
        "/sessions",
        r#"{"threshold_t":"two","threshold_n":3}"#,
    )
    .await;
    let message = assert_invalid_argument(&wrong_type);
    assert!(
        message.starts_with("invalid JSON body: threshold_t: invalid type"),
        "{message}"
    );

    let syntax = post_json(addr, "/sessions", r#"{"threshold_t":2,"#).await;
    let message = assert_invalid_argument(&syntax);
    assert!(message.starts_with("invalid JSON body: "), "{message}");
    assert!(
        !message.contains("Failed to"),
        "axum's prefix leaked: {message}"
    );

    let trailing = post_json(addr, "/sessions", r#"{"threshold_t":2,"threshold_n":3} x"#).await;
    assert!(assert_invalid_argument(&trailing).starts_with("invalid JSON body: "));

    let no_content_type = request(
        addr,
        "POST",
        "/sessions",
        None,
        r#"{"threshold_t":2,"threshold_n":3}"#,
    )
    .await;
    assert!(assert_invalid_argument(&no_content_type).contains("Content-Type: application/json"));

    let text = request(addr, "POST", "/sessions", Some("text/plain"), "hello").await;
    assert!(assert_invalid_argument(&text).contains("Content-Type: application/json"));
}

#[tokio::test]
async fn unknown_routes_are_404_json() {
    let (addr, _shutdown, _task) = spawn_http(json_app()).await;
    let resp = http_get(addr, "/api/v1/nothing").await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn panics_become_500_internal_without_the_panic_text() {
    let (addr, _shutdown, _task) = spawn_http(json_app()).await;
    let resp = http_get(addr, "/boom").await;
    assert_eq!(resp.status, 500);
    assert_eq!(
        resp.json(),
        json!({"error": {"code": "internal", "message": "internal error"}})
    );
    assert!(!resp.body.contains("deadbeef"));
    // The server survives the panic.
    assert_eq!(
        post_json(addr, "/sessions", r#"{"threshold_t":2,"threshold_n":3}"#)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_json_for_every_extractor() {
    let (addr, _shutdown, _task) = spawn_http(with_body_limit(json_app(), 64)).await;
    let big = format!(
        r#"{{"threshold_t":2,"threshold_n":3,"pad":"{}"}}"#,
        "x".repeat(100)
    );

    for (path, content_type) in [
        ("/sessions", "application/json"),
        ("/raw", "application/octet-stream"),
    ] {
        let resp = request(addr, "POST", path, Some(content_type), big.clone()).await;
        assert_eq!(resp.status, 413, "{path}: {}", resp.body);
        assert_eq!(
            resp.content_type.as_deref(),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(resp.json()["error"]["code"], "payload_too_large", "{path}");
    }

    // Under the limit, both work.
    let small = post_json(addr, "/sessions", r#"{"threshold_t":2,"threshold_n":3}"#).await;
    assert_eq!(small.status, 200, "{}", small.body);
    let raw = request(
        addr,
        "POST",
        "/raw",
        Some("application/octet-stream"),
        "12345",
    )
    .await;
    assert_eq!((raw.status, raw.body.as_str()), (200, "5"));
}
