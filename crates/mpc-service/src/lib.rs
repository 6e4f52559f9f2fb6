//! Plumbing that every MPC-System service shares and none of them should write twice: the ops
//! routes (`/healthz`, `/readyz`, `/metrics`), per-service Prometheus metrics with HTTP and gRPC
//! middleware, tracing set-up, HTTP and gRPC serving with graceful shutdown, and JSON error
//! handling (`ApiJson`, fallbacks, panics, body limits) that always answers with an
//! [`mpc_proto::ApiError`]. No business logic lives here.
#![forbid(unsafe_code)]

pub mod http_api;
pub mod layers;
pub mod metrics;
pub mod ops;
pub mod serve;
pub mod telemetry;

pub use http_api::{
    ApiJson, DEFAULT_BODY_LIMIT, catch_panic_layer, not_found_fallback, with_body_limit,
};
pub use layers::{
    GrpcMetricsLayer, GrpcMetricsService, HttpMetricsLayer, HttpMetricsService, grpc_metrics_layer,
    http_metrics_layer,
};
pub use metrics::Metrics;
pub use ops::{AlwaysReady, Readiness, ops_routes};
pub use serve::{serve_grpc, serve_http, shutdown_signal};
pub use telemetry::init_tracing;

/// Cancelled when the process (or a test) wants a service to stop. Cheap to clone; a child
/// token (`shutdown.child_token()`) stops one service without stopping the others.
pub type Shutdown = tokio_util::sync::CancellationToken;

/// Constant-time equality for secrets (API keys, join tokens, their hashes), so that the time a
/// comparison takes does not reveal how many leading bytes matched. Inputs of different lengths
/// are unequal; their length is not secret (compare fixed-size hashes to hide it).
pub fn hash_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::hash_eq;

    #[test]
    fn hash_eq_compares_content_and_length() {
        assert!(hash_eq(b"abc", b"abc"));
        assert!(hash_eq(b"", b""));
        assert!(!hash_eq(b"abc", b"abd"));
        assert!(!hash_eq(b"abc", b"ab"));
        assert!(!hash_eq(b"ab", b"abc"));
    }
}
