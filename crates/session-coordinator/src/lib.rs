//! The Session Coordinator (integration guide §2.2): creates sessions and their join tokens,
//! admits parties, drives the session and participant state machines, checks what parties
//! report, expires sessions past their deadline, and publishes session events. It never sees key
//! material: session keys are relayed as opaque bytes and only public results are checked.
//!
//! [`serve`] runs it (HTTP + gRPC) until `shutdown` is cancelled; the `mpc` binary and the tests
//! call it the same way. State lives in the database, so replicas are interchangeable: every
//! transition is a compare-and-set and only the replica that won it publishes the event.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod events;
pub mod grpc;
pub mod http;
mod lifecycle;
pub mod metrics;
mod recovery;
pub mod registry;
pub mod service;
pub mod validate;
pub mod verify;
pub mod watch;

use std::sync::Arc;

use async_trait::async_trait;
use mpc_bus::EventBus;
use mpc_proto::pb::mpc::coordinator::v1::coordinator_server::CoordinatorServer;
use mpc_service::{Metrics, Readiness, Shutdown, serve_grpc_tls, serve_http_tls};
use mpc_store::Db;
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use config::CoordinatorConfig;
pub use error::CoordinatorError;
pub use service::Coordinator;

/// Largest gRPC request the coordinator decodes (a 16-party CreateSession is a few KiB).
pub const MAX_GRPC_MESSAGE_BYTES: usize = 1024 * 1024;

/// The connections the coordinator uses.
#[derive(Clone)]
pub struct CoordinatorResources {
    pub db: Db,
    pub bus: Arc<dyn EventBus>,
}

/// Sockets bound by the caller (tests bind `127.0.0.1:0`).
pub struct CoordinatorListeners {
    pub http: TcpListener,
    pub grpc: TcpListener,
}

struct Ready {
    db: Db,
    bus: Arc<dyn EventBus>,
}

#[async_trait]
impl Readiness for Ready {
    async fn ready(&self) -> Result<(), String> {
        self.db
            .ping()
            .await
            .map_err(|_| "database unreachable".to_owned())?;
        self.bus
            .ping()
            .await
            .map_err(|_| "event bus unreachable".to_owned())
    }
}

/// Runs migrations, then serves HTTP and gRPC, the expiry sweep and the outbox relay until
/// `shutdown` is cancelled (or one of the servers fails, which stops the rest).
pub async fn serve(
    config: CoordinatorConfig,
    resources: CoordinatorResources,
    listeners: CoordinatorListeners,
    shutdown: Shutdown,
) -> Result<(), CoordinatorError> {
    config.validate()?;
    let signer = config.token_signer()?;
    let store = mpc_store::coordinator::open(&resources.db).await?;
    let metrics = Metrics::new("session-coordinator");
    let coordinator = Arc::new(Coordinator::new(
        store,
        resources.bus.clone(),
        signer,
        validate::Lifetimes {
            default: config.default_session_lifetime,
            max: config.max_session_lifetime,
            join: config.join_timeout,
        },
        metrics::CoordinatorMetrics::register(&metrics),
        config.service_token.clone(),
        registry::Registry::new(
            mpc_store::registry::open(&resources.db).await?,
            config.registry,
        ),
    ));
    let stop = shutdown.child_token();
    let readiness = Arc::new(Ready {
        db: resources.db.clone(),
        bus: resources.bus.clone(),
    });
    let router = http::router(coordinator.clone(), metrics.clone(), readiness);
    let routes = Routes::new(
        CoordinatorServer::new(grpc::GrpcApi::new(
            coordinator.clone(),
            config.watch_poll_interval,
            stop.clone(),
        ))
        // Set explicitly: no coordinator request carries key material or payloads, so a
        // larger message is refused (`resource_exhausted`) before it is decoded.
        .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES),
    );

    let expiry = tokio::spawn(
        coordinator
            .clone()
            .run_expiry(config.expiry_interval, stop.clone()),
    );
    let relay = tokio::spawn(
        coordinator
            .publisher
            .clone()
            .run_relay(config.outbox_interval, stop.clone()),
    );
    tracing::info!(
        http = ?listeners.http.local_addr().ok(),
        grpc = ?listeners.grpc.local_addr().ok(),
        join_token_key = %hex::encode(coordinator.join_token_public_key()),
        "session coordinator listening"
    );
    let grpc_tls = config
        .tls
        .grpc_server()
        .map_err(|e| CoordinatorError::Config(format!("TLS: {e}")))?;
    let result = tokio::try_join!(
        async {
            serve_http_tls(listeners.http, router, stop.clone(), &config.tls)
                .await
                .map_err(CoordinatorError::Http)
        },
        async {
            serve_grpc_tls(listeners.grpc, routes, stop.clone(), &metrics, grpc_tls)
                .await
                .map_err(CoordinatorError::Grpc)
        },
    );
    stop.cancel();
    let _ = tokio::join!(expiry, relay);
    tracing::info!("session coordinator stopped");
    result.map(|_| ())
}
