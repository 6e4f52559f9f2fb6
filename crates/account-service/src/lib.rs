//! The Account Service (integration guide §2.1): the single public entry of MPC-System. It
//! authenticates API keys, keeps accounts and their share metadata, orchestrates keygen, sign,
//! refresh and recovery sessions at the Session Coordinator, applies their outcomes (from the
//! event bus, or by asking the coordinator), mints scoped access tokens for the Server Party API,
//! and writes the audit log. It never touches key material.
//!
//! [`serve`] runs it until `shutdown` is cancelled; the `mpc` binary and the tests call it the
//! same way. State lives in the database, so replicas are interchangeable.
#![forbid(unsafe_code)]

pub mod access_token;
pub mod api;
pub mod audit;
pub mod config;
pub mod console;
pub mod coordinator;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod in_flight;
pub mod keys;
pub mod metrics;
pub mod outcomes;
pub mod party_api;
pub mod service;
pub mod validate;
pub mod webhooks;

use std::sync::Arc;

use async_trait::async_trait;
use mpc_bus::EventBus;
use mpc_service::{Metrics, Readiness, Shutdown};
use mpc_store::Db;
use tokio::net::TcpListener;

pub use access_token::{AccessClaims, AccessTokenSigner, AccessTokenVerifier};
pub use config::AccountConfig;
pub use error::AccountError;

/// The connections the Account Service uses.
#[derive(Clone)]
pub struct AccountResources {
    pub db: Db,
    pub bus: Arc<dyn EventBus>,
}

/// Sockets bound by the caller (tests bind `127.0.0.1:0`).
pub struct AccountListeners {
    pub http: TcpListener,
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

/// Runs migrations, then serves HTTP, consumes session events and reconciles pending sessions
/// until `shutdown` is cancelled.
pub async fn serve(
    config: AccountConfig,
    resources: AccountResources,
    listeners: AccountListeners,
    shutdown: Shutdown,
) -> Result<(), AccountError> {
    config.validate()?;
    let store = mpc_store::account::open(&resources.db).await?;
    let metrics = Metrics::new("account-service");
    let coordinator = coordinator::CoordinatorClient::new(
        &config.coordinator_endpoint,
        config.coordinator_service_token.clone(),
        config.coordinator_timeout,
        &config.tls,
    )
    .map_err(|e| AccountError::Config(e.message))?;
    let webhooks = Arc::new(
        webhooks::Webhooks::new(
            mpc_store::webhook::open(&resources.db),
            config.webhooks.clone(),
            webhooks::WebhookMetrics::register(&metrics),
            &*config.seed()?,
        )
        .map_err(AccountError::Config)?,
    );
    let service = Arc::new(service::AccountService {
        webhooks: webhooks.clone(),
        store: store.clone(),
        coordinator,
        session_lifetime_seconds: config.session_lifetime_seconds,
        metrics: metrics::AccountMetrics::register(&metrics),
        recent_events: Default::default(),
        in_flight: in_flight::InFlight::new(
            mpc_service::Admission::new(config.admission, &metrics),
            config.admission_hold,
        ),
    });
    let state = Arc::new(http::AppState {
        service: service.clone(),
        keys: Arc::new(keys::ApiKeys::new(
            store.clone(),
            config.bootstrap_api_key.as_ref(),
        )),
        access: config.access_token_signer()?,
        access_lifetime: config.access_token_lifetime,
        console: console::Console::new(&config.console),
        party_api: config
            .party_api_url
            .as_deref()
            .map(|url| party_api::PartyApiClient::new(url, config.party_api_timeout, &config.tls))
            .transpose()
            .map_err(|e| AccountError::Config(e.message))?,
    });
    let throttle = mpc_service::ThrottleState {
        throttle: Arc::new(mpc_service::AuthThrottle::new(config.auth_throttle)),
        sink: Arc::new(audit::AuditThrottleSink {
            store: store.clone(),
        }),
        trust_forwarded_for: config.trust_forwarded_for,
        body_limit: config.share_body_limit,
    };
    let audit = Arc::new(audit::AuditState {
        store,
        body_limit: config.body_limit,
        share_body_limit: config.share_body_limit,
        trust_forwarded_for: config.trust_forwarded_for,
    });
    let readiness = Arc::new(Ready {
        db: resources.db.clone(),
        bus: resources.bus.clone(),
    });
    let app = http::router(
        state,
        audit,
        &metrics,
        readiness,
        http::Limits {
            body_limit: config.body_limit,
            share_body_limit: config.share_body_limit,
            request_deadline: config.request_deadline,
            relay_deadline: config.party_api_timeout,
        },
        throttle,
    );

    let stop = shutdown.child_token();
    let consumer = tokio::spawn(outcomes::run_consumer(
        service.clone(),
        resources.bus.clone(),
        config.bus_queue.clone(),
        stop.clone(),
    ));
    let admission_expiry = {
        let (service, stop) = (service.clone(), stop.clone());
        tokio::spawn(async move {
            service
                .in_flight
                .run_expiry(std::time::Duration::from_secs(1), stop)
                .await;
        })
    };
    let delivery = tokio::spawn(webhooks::delivery::run_worker(webhooks, stop.clone()));
    let reconciler = tokio::spawn(outcomes::run_reconciler(
        service,
        config.reconcile_interval,
        config.reconcile_after,
        stop.clone(),
    ));
    if config.party_api_url.is_none() {
        tracing::warn!(
            "no MPC_PARTY_API_URL: the device operations and one-call signatures answer 503"
        );
    }
    if config.bootstrap_api_key.is_none() {
        tracing::info!("no MPC_API_KEY: only API keys created through the admin API work");
    }
    tracing::info!(http = ?listeners.http.local_addr().ok(), "account service listening");
    // With the peer address, for the audit log.
    let result = mpc_service::serve_http_tls(listeners.http, app, stop.clone(), &config.tls)
        .await
        .map_err(AccountError::Http);
    stop.cancel();
    let _ = tokio::join!(consumer, reconciler, admission_expiry, delivery);
    tracing::info!("account service stopped");
    result
}
