//! Starting the coordinator and the router on fresh listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use message_router::{JoinTokenPublicKey, RouterConfig, RouterListeners, RouterResources};
use mpc_bus::EventBus;
use mpc_service::Shutdown;
use mpc_store::testing::TestDb;
use secrecy::SecretString;
use session_coordinator::{CoordinatorConfig, CoordinatorListeners, CoordinatorResources};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A service's addresses and task.
pub struct Service {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub(crate) task: JoinHandle<()>,
}

pub(crate) async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    (listener, addr)
}

pub(crate) async fn start_coordinator(
    db: &TestDb,
    bus: Arc<dyn EventBus>,
    seed: &[u8; 32],
    service_token: &str,
    registry: session_coordinator::registry::RegistryConfig,
    shutdown: Shutdown,
) -> Service {
    let seed_b64 = base64::engine::general_purpose::STANDARD.encode(seed);
    let mut config =
        CoordinatorConfig::new("(connected by the testkit)", SecretString::from(seed_b64));
    config.expiry_interval = Duration::from_millis(200);
    config.outbox_interval = Duration::from_millis(200);
    config.watch_poll_interval = Duration::from_millis(500);
    config.service_token = Some(SecretString::from(service_token.to_owned()));
    config.registry = registry;
    let (http, http_addr) = bind().await;
    let (grpc, grpc_addr) = bind().await;
    let resources = CoordinatorResources {
        db: db.db.clone(),
        bus,
    };
    let task = tokio::spawn(async move {
        if let Err(e) = session_coordinator::serve(
            config,
            resources,
            CoordinatorListeners { http, grpc },
            shutdown,
        )
        .await
        {
            panic!("coordinator: {e}");
        }
    });
    Service {
        http: http_addr,
        grpc: grpc_addr,
        task,
    }
}

pub(crate) async fn start_router(
    db: &TestDb,
    bus: Arc<dyn EventBus>,
    token_key: [u8; 32],
    queue: Option<String>,
    shutdown: Shutdown,
) -> Service {
    let mut config = RouterConfig::new(JoinTokenPublicKey(token_key));
    config.poll_interval = Duration::from_secs(1);
    config.shutdown_grace = Duration::from_secs(2);
    if let Some(queue) = queue {
        config.bus_queue = queue;
    }
    let (http, http_addr) = bind().await;
    let (grpc, grpc_addr) = bind().await;
    let resources = RouterResources {
        db: db.db.clone(),
        bus,
    };
    let task = tokio::spawn(async move {
        if let Err(e) =
            message_router::serve(config, resources, RouterListeners { http, grpc }, shutdown).await
        {
            panic!("router: {e}");
        }
    });
    Service {
        http: http_addr,
        grpc: grpc_addr,
        task,
    }
}
