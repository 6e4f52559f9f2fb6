//! HTTP: `/healthz`, `/readyz` (database and event bus), `/metrics`, and
//! `GET /api/v1/identity` → `{"party_id", "identity_public_key"}` (hex), the key the other
//! parties pin.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use mpc_bus::EventBus;
use mpc_proto::PartyId;
use mpc_protocol::IdentityPublicKey;
use mpc_service::{Metrics, Readiness};
use mpc_store::Db;
use serde::{Deserialize, Serialize};

/// The body of `GET /api/v1/identity`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityResponse {
    pub party_id: String,
    /// Hex of the 32-byte Ed25519 public key.
    pub identity_public_key: String,
}

pub(crate) struct PartyReadiness {
    pub(crate) db: Db,
    pub(crate) bus: Arc<dyn EventBus>,
    /// Announced to the coordinator's registry: until then, sessions naming this party are
    /// refused, so the party is not ready.
    pub(crate) registered: mpc_client::Registered,
}

#[async_trait]
impl Readiness for PartyReadiness {
    async fn ready(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|_| "database".to_owned())?;
        self.bus.ping().await.map_err(|_| "event bus".to_owned())?;
        if self.registered.is_registered() {
            Ok(())
        } else {
            Err("not registered with the session coordinator yet".to_owned())
        }
    }
}

pub(crate) fn router(
    party: &PartyId,
    identity: IdentityPublicKey,
    metrics: &Metrics,
    readiness: Arc<dyn Readiness>,
) -> Router {
    let body = IdentityResponse {
        party_id: party.to_string(),
        identity_public_key: identity.to_string(),
    };
    let api = Router::new()
        .route(
            "/api/v1/identity",
            get(move || {
                let body = body.clone();
                async move { axum::Json(body) }
            }),
        )
        .merge(mpc_service::ops_routes(metrics.clone(), readiness))
        .fallback(mpc_service::not_found_fallback)
        .layer(mpc_service::catch_panic_layer())
        .layer(mpc_service::http_metrics_layer(metrics));
    mpc_service::with_body_limit(api, mpc_service::DEFAULT_BODY_LIMIT)
}
