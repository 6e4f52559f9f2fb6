//! The Server Party (integration guide §2.4; DESIGN.md §1, §4–§6): one process per party. It
//! consumes `session.*` events from its own durable queue, joins the sessions that name it with
//! its token and a freshly signed session key, runs keygen / sign / refresh / recovery with the
//! party driver (`mpc_client`), and keeps its key shares sealed in its own database.
//!
//! - Identity: an Ed25519 key created on first start and stored sealed under the master key;
//!   `GET /api/v1/identity` serves its public key, which the other parties pin.
//! - Shares at rest: AES-256-GCM with AAD (key id, party id, party index) under the master key
//!   (`MPC_PARTY_MASTER_KEY`, with a key id so it can be rotated: [`rotate_master_key`]).
//!   Stored *pending* before the party reports, made *active* when the session completes,
//!   deleted if it fails or expires; after a refresh or recovery the old share is retired and
//!   erased.
//! - Robust: redelivered events are no-ops, a restart mid-session ends in a reported failure
//!   (never a half-stored share), and at most `max_concurrent_sessions` sessions run at once.
//!
//! [`serve`] runs it until `shutdown`; the `mpc` binary and the tests call it the same way.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod http;
mod keys;
mod metrics;
mod worker;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use mpc_bus::EventBus;
use mpc_client::{CoordinatorClient, PartyContext, RouterClient};
use mpc_proto::PartyId;
use mpc_protocol::{IdentityPublicKey, SealingKey};
use mpc_service::{Metrics, Shutdown};
use mpc_store::Db;
use tokio::net::TcpListener;

pub use config::{PartyConfig, master_key_from_base64, master_key_from_file, queue_name};
pub use error::PartyServiceError;
pub use http::IdentityResponse;
pub use keys::{load_or_create_identity, rotate_master_key};

/// The service name in metrics and logs.
pub const SERVICE: &str = "server-party";

/// What the party runs on: its own database, and the event bus.
#[derive(Clone)]
pub struct PartyResources {
    pub db: Db,
    pub bus: Arc<dyn EventBus>,
}

/// The listener the caller bound (port 0 in tests).
#[derive(Debug)]
pub struct PartyListeners {
    pub http: TcpListener,
}

impl PartyListeners {
    pub async fn bind(config: &PartyConfig) -> std::io::Result<Self> {
        Ok(Self {
            http: TcpListener::bind(config.http_addr).await?,
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Migrates the party's database and returns its identity public key, creating the identity on
/// first use: what an operator pins in the other parties' configuration before starting them.
pub async fn provision_identity(
    db: &Db,
    party: &PartyId,
    master_key: &SealingKey,
) -> Result<IdentityPublicKey, PartyServiceError> {
    let store = mpc_store::party::open(db).await?;
    Ok(load_or_create_identity(store.as_ref(), party, master_key)
        .await?
        .public_key())
}

/// Runs the party until `shutdown` is cancelled: migrates its database, opens (or creates) its
/// identity key — a wrong master key fails here, before anything is served — then consumes its
/// event queue and serves HTTP. On shutdown, running sessions report a failure and end (within
/// `shutdown_grace`); unfinished events stay in the queue.
pub async fn serve(
    config: PartyConfig,
    resources: PartyResources,
    listeners: PartyListeners,
    shutdown: Shutdown,
) -> Result<(), PartyServiceError> {
    let verifier = config.validate()?;
    let store = mpc_store::party::open(&resources.db).await?;
    let identity =
        load_or_create_identity(store.as_ref(), &config.party_id, &config.master_key).await?;
    let identity_public = identity.public_key();
    let stop = shutdown.child_token();
    let client = |e: mpc_proto::ApiError| PartyServiceError::Config(e.message);
    // With the service token when one is configured.
    let coordinator_client = || -> Result<CoordinatorClient, PartyServiceError> {
        let c =
            CoordinatorClient::new_tls(&config.coordinator_endpoint, config.client, &config.tls)
                .map_err(client)?;
        Ok(match &config.service_token {
            Some(token) => c.with_service_token(token.clone()),
            None => c,
        })
    };
    let coordinator = coordinator_client()?;
    // Fresh at every start: the coordinator fails the sessions an earlier instance was running.
    let instance = mpc_client::HostInstance::fresh(config.party_id.clone());
    let ctx = PartyContext {
        identity: Arc::new(identity),
        coordinator,
        router: RouterClient::new_tls(&config.router_endpoint, config.client, &config.tls)
            .map_err(client)?,
        token_verifier: verifier,
        trust: config.trust.clone(),
        options: config.driver,
        cancel: stop.child_token(),
        progress: None,
        compute: config
            .compute
            .clone()
            .unwrap_or_else(mpc_client::ComputePool::shared),
        host: Some(instance.clone()),
    };
    let metrics = Metrics::new(SERVICE);
    let party = Arc::new(worker::Party {
        party_id: config.party_id.clone(),
        store,
        ctx,
        kek: config.master_key.clone(),
        max_sessions: config.max_concurrent_sessions,
        running: Mutex::new(HashSet::new()),
        metrics: metrics::PartyMetrics::register(&metrics),
    });
    // The compute pool's queue, as a metric (the pool knows nothing of metrics).
    let sampler = {
        let (party, stop) = (party.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                party
                    .metrics
                    .set_compute_waiting(party.ctx.compute.waiting());
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        })
    };
    let sessions = party.clone();
    // Heartbeats on a connection of their own: behind hundreds of session streams on the
    // shared one they could arrive late enough for the coordinator to think the party dead.
    let heartbeat_client = coordinator_client()?;
    let (registered, announcer) = mpc_client::Announcer {
        coordinator: heartbeat_client,
        identity: party.ctx.identity.clone(),
        kind: mpc_proto::pb::mpc::coordinator::v1::PartyKind::Server,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        active_sessions: Arc::new(move || sessions.active_sessions()),
        instance,
    }
    .spawn(stop.clone());
    // Dropped with `serve` (the process stops abruptly): a dead party must not keep announcing.
    let mut announcer = AbortOnDrop(announcer);
    let mut sampler = AbortOnDrop(sampler);
    let readiness = Arc::new(http::PartyReadiness {
        db: resources.db.clone(),
        bus: resources.bus.clone(),
        registered,
    });
    let app = http::router(&config.party_id, identity_public, &metrics, readiness);
    tracing::info!(
        party_id = %config.party_id,
        http = ?listeners.http.local_addr().ok(),
        identity_public_key = %identity_public,
        queue = %config.bus_queue,
        max_concurrent_sessions = config.max_concurrent_sessions,
        "server party listening"
    );
    // Aborted if `serve` itself is dropped (the process stops abruptly): its sessions go with
    // it and their events return to the queue.
    let mut consumer = AbortOnDrop(tokio::spawn(worker::consume(
        party,
        resources.bus.clone(),
        config.bus_queue.clone(),
        stop.clone(),
        config.shutdown_grace,
    )));
    let served = mpc_service::serve_http_tls(listeners.http, app, stop.clone(), &config.tls).await;
    stop.cancel();
    if let Err(e) = (&mut consumer.0).await
        && e.is_panic()
    {
        tracing::error!(party_id = %config.party_id, "the event consumer panicked");
    }
    let _ = (&mut announcer.0).await;
    let _ = (&mut sampler.0).await;
    tracing::info!(party_id = %config.party_id, "server party stopped");
    served.map_err(PartyServiceError::Http)
}
