//! The Message Router (integration guide §2.3, DESIGN.md §3 and §5): relays end-to-end-encrypted
//! envelopes between the parties of a session over gRPC (`mpc.router.v1`) and an HTTP mirror,
//! persists them for offline parties, and never interprets or logs payloads.
//!
//! [`serve`] runs it: migrations, the gRPC and HTTP servers, the bus consumer that learns which
//! sessions ended, the retention sweep, and (on PostgreSQL) the `LISTEN` feed that lets router
//! replicas wake each other's subscribers.
#![forbid(unsafe_code)]

mod background;
pub mod config;
mod grpc;
pub mod http;
mod hub;
mod metrics;
pub mod relay;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use mpc_bus::EventBus;
use mpc_service::{Metrics, Readiness};
use mpc_store::{Db, StoreError};
use tokio::net::TcpListener;

pub use config::{ConfigError, JoinTokenPublicKey, RouterConfig};
pub use mpc_service::Shutdown;

/// The service name in metrics and logs.
pub const SERVICE: &str = "message-router";

/// What the router runs on.
#[derive(Clone)]
pub struct RouterResources {
    pub db: Db,
    pub bus: Arc<dyn EventBus>,
}

/// The listeners the caller bound (port 0 in tests).
#[derive(Debug)]
pub struct RouterListeners {
    pub http: TcpListener,
    pub grpc: TcpListener,
}

impl RouterListeners {
    /// Binds `config.http_addr` and `config.grpc_addr`.
    pub async fn bind(config: &RouterConfig) -> std::io::Result<Self> {
        Ok(Self {
            http: TcpListener::bind(config.http_addr).await?,
            grpc: TcpListener::bind(config.grpc_addr).await?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("invalid join-token public key")]
    PublicKey,
    #[error("router migrations: {0}")]
    Migration(#[source] StoreError),
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    #[error("gRPC server: {0}")]
    Grpc(#[source] tonic::transport::Error),
    #[error("TLS: {0}")]
    Tls(#[from] mpc_service::tls::TlsError),
}

/// Runs the router until `shutdown` is cancelled: applies its migrations, then serves gRPC on
/// `listeners.grpc` and HTTP (API mirror, `/healthz`, `/readyz`, `/metrics`) on
/// `listeners.http`, consumes session events, and sweeps expired envelopes. Returns when both
/// servers have stopped (an error of either stops the other), or `shutdown_grace` after
/// shutdown if some connection is still open then.
pub async fn serve(
    config: RouterConfig,
    resources: RouterResources,
    listeners: RouterListeners,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    config.validate()?;
    let verifier = config
        .join_token_public_key
        .verifier()
        .map_err(|_| ServeError::PublicKey)?;
    mpc_store::router::migrate(&resources.db)
        .await
        .map_err(ServeError::Migration)?;

    tracing::info!(
        http = %listeners.http.local_addr().map_err(ServeError::Http)?,
        grpc = %listeners.grpc.local_addr().map_err(ServeError::Http)?,
        "message router listening"
    );

    let store = mpc_store::router::store(&resources.db);
    let metrics = Metrics::new(SERVICE);
    let router_metrics = metrics::RouterMetrics::register(&metrics);
    let hub = hub::Hub::default();
    // Stops the background tasks and the other server when either server fails.
    let stop = shutdown.child_token();
    let relay = relay::Relay::new(
        store.clone(),
        verifier,
        hub.clone(),
        router_metrics.clone(),
        relay::Limits {
            max_payload_bytes: config.max_payload_bytes,
            max_fetch_wait: config.max_fetch_wait,
            poll_interval: config.poll_interval,
        },
        stop.clone(),
    );

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(hub::pump_change_feed(
        store.clone(),
        hub.clone(),
        stop.clone(),
    ));
    tasks.spawn(background::consume_session_events(
        resources.bus.clone(),
        config.bus_queue.clone(),
        store.clone(),
        stop.clone(),
    ));
    tasks.spawn(background::sweep_periodically(
        store,
        hub,
        router_metrics,
        config.retention_grace,
        config.sweep_interval,
        stop.clone(),
    ));

    let readiness: Arc<dyn Readiness> = Arc::new(RouterReadiness {
        db: resources.db.clone(),
        bus: resources.bus.clone(),
    });
    let http_app = mpc_service::with_body_limit(
        http::routes(relay.clone())
            .merge(mpc_service::ops_routes(metrics.clone(), readiness))
            .fallback(mpc_service::not_found_fallback),
        http::body_limit(config.max_payload_bytes),
    )
    .layer(mpc_service::http_metrics_layer(&metrics))
    .layer(mpc_service::catch_panic_layer());
    let grpc_routes = tonic::service::Routes::new(grpc::service(relay, config.max_payload_bytes));

    let tls = config.tls.clone();
    let grpc_tls = config.tls.grpc_server().map_err(ServeError::Tls)?;
    let http_server = {
        let stop = stop.clone();
        async move {
            let result =
                mpc_service::serve_http_tls(listeners.http, http_app, stop.clone(), &tls).await;
            stop.cancel();
            result.map_err(ServeError::Http)
        }
    };
    let grpc_server = {
        let stop = stop.clone();
        let metrics = metrics.clone();
        async move {
            let result = mpc_service::serve_grpc_tls(
                listeners.grpc,
                grpc_routes,
                stop.clone(),
                &metrics,
                grpc_tls,
            )
            .await;
            stop.cancel();
            result.map_err(ServeError::Grpc)
        }
    };
    let servers = async { tokio::join!(http_server, grpc_server) };
    let drain_deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(config.shutdown_grace).await;
    };
    let result = tokio::select! {
        (http_result, grpc_result) = servers => http_result.and(grpc_result),
        () = drain_deadline => {
            tracing::warn!(
                grace = ?config.shutdown_grace,
                "connections still open after the shutdown grace; stopping without them"
            );
            Ok(())
        }
    };
    stop.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!("message router stopped");
    result
}

struct RouterReadiness {
    db: Db,
    bus: Arc<dyn EventBus>,
}

#[async_trait]
impl Readiness for RouterReadiness {
    async fn ready(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|_| "database".to_owned())?;
        self.bus.ping().await.map_err(|_| "event bus".to_owned())
    }
}

/// Timestamps on the wire: RFC 3339, UTC, millisecond precision.
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Sleeps; true when shutdown came first.
async fn sleep_or_shutdown(duration: std::time::Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(duration) => false,
    }
}
