//! The Server Party API (integration guide §2.5, §5.1 step 2, §5.2 step 3; DESIGN.md §1, §4,
//! §6): a stateless service that joins sessions on behalf of a user device, with the same party
//! driver every party runs (`mpc_client`), and hands the device's share back instead of storing
//! it.
//!
//! - `POST /api/v1/keygen/generate-user-share`, `/api/v1/sign/with-user-share`,
//!   `/api/v1/refresh/with-user-share`, `/api/v1/recovery/new-user-share`: synchronous — the
//!   answer comes when the session completed, or is an error in the guide's words. Callers
//!   authenticate with `X-API-Key` or a scoped access token ([`auth`]).
//! - [`share`]: the `share_data` format — the share wrapped with AES-256-GCM under the API's own
//!   key (bound to key id, party id and index), optionally sealed to the device with HPKE
//!   ([`hpke`], RFC 9180) so that the back end relaying it cannot read it.
//! - Its Ed25519 identity (from configuration: there is no database) is what the server parties
//!   pin as a *delegate*: it joins under many device party ids.
//!
//! [`serve`] runs it until `shutdown`; the `mpc` binary and the tests call it the same way.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod hpke;
mod http;
mod metrics;
pub mod openapi;
mod session;
pub mod share;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use mpc_client::{CoordinatorClient, PartyContext, RouterClient};
use mpc_proto::AccessTokenVerifier;
use mpc_service::{Metrics, Shutdown};
use tokio::net::TcpListener;

pub use api::{
    GenerateUserShareRequest, IdentityResponse, RecoveryNewUserShareRequest,
    RefreshWithUserShareRequest, SignWithUserShareRequest, SignatureResponse, UserShareResponse,
};
pub use auth::{Authenticator, Caller, HeaderAuthenticator};
pub use config::{IdentitySeed, PartyApiConfig};
pub use error::PartyApiError;
pub use share::ShareKeys;

/// The service name in metrics and logs.
pub const SERVICE: &str = "server-party-api";

/// The listener the caller bound (port 0 in tests).
#[derive(Debug)]
pub struct PartyApiListeners {
    pub http: TcpListener,
}

impl PartyApiListeners {
    pub async fn bind(config: &PartyApiConfig) -> std::io::Result<Self> {
        Ok(Self {
            http: TcpListener::bind(config.http_addr).await?,
        })
    }
}

/// Serves until `shutdown` is cancelled, authenticating callers with the configured API keys
/// and access-token key. On shutdown, running sessions report a failure and their requests are
/// answered `unavailable`.
/// How long a starting API waits for its registration before it serves anyway.
const REGISTER_BEFORE_SERVING: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn serve(
    config: PartyApiConfig,
    listeners: PartyApiListeners,
    shutdown: Shutdown,
) -> Result<(), PartyApiError> {
    let access = config
        .access_token_public_key
        .map(|key| AccessTokenVerifier::from_public_key(&key))
        .transpose()
        .map_err(|e| PartyApiError::Config(format!("access-token public key: {}", e.message)))?;
    // reqwest (for the Account Service) needs a TLS provider even for http:// URLs; the `mpc`
    // binary installs ring, and installing it again is harmlessly refused.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut auth = HeaderAuthenticator::new(config.api_keys.clone(), access);
    if let Some(url) = &config.account_service_url {
        let keys = auth::AccountKeys::new(
            url,
            config.api_key_cache_ttl,
            config.client.request_timeout,
            &config.tls,
        )
        .map_err(|e| PartyApiError::Config(format!("MPC_ACCOUNT_SERVICE_URL: {}", e.message)))?;
        auth = auth.with_account_keys(keys);
    }
    serve_with(config, Arc::new(auth), listeners, shutdown).await
}

/// [`serve`] with another way to authenticate callers.
pub async fn serve_with(
    config: PartyApiConfig,
    auth: Arc<dyn Authenticator>,
    listeners: PartyApiListeners,
    shutdown: Shutdown,
) -> Result<(), PartyApiError> {
    let verifier = config.validate()?;
    let identity = config.identity_seed.key();
    let identity_public = identity.public_key();
    let client = |e: mpc_proto::ApiError| PartyApiError::Config(e.message);
    // With the service token when one is configured.
    let coordinator_client = || -> Result<CoordinatorClient, PartyApiError> {
        let c =
            CoordinatorClient::new_tls(&config.coordinator_endpoint, config.client, &config.tls)
                .map_err(client)?;
        Ok(match &config.service_token {
            Some(token) => c.with_service_token(token.clone()),
            None => c,
        })
    };
    let coordinator = coordinator_client()?;
    let router = RouterClient::new_tls(&config.router_endpoint, config.client, &config.tls)
        .map_err(client)?;
    let stop = shutdown.child_token();
    let registry_id = mpc_proto::PartyId::parse(&config.registry_id)
        .map_err(|e| PartyApiError::Config(e.message))?;
    // Fresh at every start: the coordinator fails the device sessions an earlier instance was
    // running, and lets their devices rejoin the ones that had not started.
    let instance = mpc_client::HostInstance::fresh(registry_id);
    let ctx = PartyContext {
        identity: Arc::new(identity),
        coordinator: coordinator.clone(),
        router: router.clone(),
        token_verifier: verifier,
        trust: config.trust.clone(),
        options: config.driver,
        cancel: stop.clone(),
        progress: None,
        compute: config
            .compute
            .clone()
            .unwrap_or_else(mpc_client::ComputePool::shared),
        host: Some(instance.clone()),
    };
    let identity_for_registry = ctx.identity.clone();
    let metrics = Metrics::new(SERVICE);
    let api = Arc::new(session::Api {
        ctx,
        share_keys: config.share_keys.clone(),
        auth,
        admission: mpc_service::Admission::new(config.admission, &metrics),
        max_request_time: config.max_request_time,
        metrics: metrics::ApiMetrics::register(&metrics),
        running: Mutex::new(HashSet::new()),
    });
    let readiness = Arc::new(http::ApiReadiness {
        coordinator,
        router,
        join_token_key: config.join_token_public_key,
    });
    if config.trust.pinned().is_empty()
        && config.trust.delegates().is_empty()
        && !config.trust.allows_unpinned()
    {
        tracing::warn!(
            "no party is pinned (MPC_PARTY_API_PINNED): every session will fail the trust check"
        );
    }
    let running = api.clone();
    // Heartbeats on a connection of their own: behind hundreds of session streams on the
    // shared one they could arrive late enough for the coordinator to think the API dead.
    let heartbeat_client = coordinator_client()?;
    let (mut registered, announcer) = mpc_client::Announcer {
        coordinator: heartbeat_client,
        identity: identity_for_registry,
        kind: mpc_proto::pb::mpc::coordinator::v1::PartyKind::PartyApi,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        active_sessions: Arc::new(move || running.active_sessions()),
        instance,
    }
    .spawn(stop.clone());
    let throttle = mpc_service::ThrottleState {
        throttle: Arc::new(mpc_service::AuthThrottle::new(config.auth_throttle)),
        // No audit log here: the first refusal of each window is logged at warn level.
        sink: Arc::new(mpc_service::throttle::LogSink),
        trust_forwarded_for: config.trust_forwarded_for,
        body_limit: config.body_limit,
    };
    let app = http::router(
        api,
        identity_public,
        &metrics,
        readiness,
        http::Limits {
            body_limit: config.body_limit,
            request_deadline: config.request_deadline,
            session_deadline: config.max_request_time,
        },
        throttle,
    );
    tracing::info!(
        http = ?listeners.http.local_addr().ok(),
        identity_public_key = %identity_public,
        share_key_id = config.share_keys.current().id(),
        admission_budget = config.admission.budget,
        "server party API listening"
    );
    // Registered before the first request is served: the coordinator then knows this
    // instance, so a device whose earlier request died with the previous instance finds its
    // join undone (it may join again) instead of "already joined". Requests wait in the
    // listener's backlog meanwhile; a coordinator that is down only delays this, briefly.
    if tokio::time::timeout(REGISTER_BEFORE_SERVING, registered.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "not registered with the coordinator after {} s; serving anyway",
            REGISTER_BEFORE_SERVING.as_secs()
        );
    }
    let served = mpc_service::serve_http_tls(listeners.http, app, stop.clone(), &config.tls).await;
    stop.cancel();
    let _ = announcer.await;
    tracing::info!("server party API stopped");
    served.map_err(PartyApiError::Http)
}
