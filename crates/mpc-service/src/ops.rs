//! The operator endpoints every service exposes: liveness, readiness, metrics.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mpc_proto::{ApiError, ErrorCode};
use serde_json::json;

use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};

/// Whether a service can do its work right now (its database, its broker).
#[async_trait]
pub trait Readiness: Send + Sync {
    /// `Err` names what is down in a few words ("database", "event bus"); operators see it in
    /// the `/readyz` answer, so it must not carry secrets (no connection strings).
    async fn ready(&self) -> Result<(), String>;
}

/// For services, and tests, with nothing to check.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysReady;

#[async_trait]
impl Readiness for AlwaysReady {
    async fn ready(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A readiness check that hangs (a database that accepts connections but never answers) must
/// not hang the probe too: the orchestrator would see a timeout instead of a reason.
const READINESS_DEADLINE: Duration = Duration::from_secs(5);

/// `GET /healthz` → 200 `{"status":"ok"}` (the process is alive);
/// `GET /readyz` → 200 `{"status":"ready"}`, or 503
/// `{"error":{"code":"unavailable","message":"not ready: <what>"}}`;
/// `GET /metrics` → this service's metrics in the OpenMetrics text format.
pub fn ops_routes(metrics: Metrics, readiness: Arc<dyn Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/metrics", get(metrics_text).with_state(metrics))
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(readiness): State<Arc<dyn Readiness>>) -> Response {
    let outcome = tokio::time::timeout(READINESS_DEADLINE, readiness.ready())
        .await
        .unwrap_or_else(|_| Err("readiness check timed out".to_owned()));
    match outcome {
        Ok(()) => axum::Json(json!({ "status": "ready" })).into_response(),
        Err(what) => {
            tracing::warn!(reason = %what, "not ready");
            ApiError::new(ErrorCode::Unavailable, format!("not ready: {what}")).into_response()
        }
    }
}

async fn metrics_text(State(metrics): State<Metrics>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        metrics.encode(),
    )
        .into_response()
}
