//! Plumbing that every MPC-System service shares and none of them should write twice: the ops
//! routes (`/healthz`, `/readyz`, `/metrics`), per-service Prometheus metrics with HTTP and gRPC
//! middleware, tracing set-up, HTTP and gRPC serving with graceful shutdown, and JSON error
//! handling (`ApiJson`, fallbacks, panics, body limits) that always answers with an
//! [`mpc_proto::ApiError`]. No business logic lives here.
#![forbid(unsafe_code)]

pub mod admission;
pub mod http_api;
pub mod layers;
pub mod metrics;
pub mod ops;
pub mod serve;
pub mod telemetry;
pub mod throttle;
pub mod tls;
pub mod tls_gen;
mod tls_listener;

pub use admission::{Admission, AdmissionConfig, Admitted};
pub use http_api::{
    ApiJson, DEFAULT_BODY_LIMIT, DeadlineFn, catch_panic_layer, not_found_fallback,
    with_body_limit, with_deadline, with_fixed_deadline,
};
pub use layers::{
    GrpcMetricsLayer, GrpcMetricsService, HttpMetricsLayer, HttpMetricsService, grpc_metrics_layer,
    http_metrics_layer,
};
pub use metrics::Metrics;
pub use ops::{AlwaysReady, Readiness, ops_routes};
pub use serve::{
    GRPC_SHUTDOWN_GRACE, serve_grpc, serve_grpc_tls, serve_grpc_with_grace, serve_http,
    serve_http_tls, shutdown_signal,
};
pub use telemetry::init_tracing;
pub use throttle::{
    AuthFailure, AuthThrottle, ThrottleConfig, ThrottleSink, ThrottleState, refuse_after_draining,
    throttle_auth_failures,
};
pub use tls::{PeerIdentity, TlsConfig};

/// Cancelled when the process (or a test) wants a service to stop. Cheap to clone; a child
/// token (`shutdown.child_token()`) stops one service without stopping the others.
pub type Shutdown = tokio_util::sync::CancellationToken;

/// Constant-time equality for secrets (API keys, service tokens): both sides are hashed with
/// SHA-256 first and the digests compared in constant time, so neither how many leading bytes
/// matched nor the secret's length shows in the timing.
pub fn hash_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
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
