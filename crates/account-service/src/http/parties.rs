//! The party registry as the Account Service shows it (`GET /api/v1/parties`: the guide's
//! "check that the server parties are running", §6.1), and `GET /api/v1/api-keys/self`, which
//! says whose key a request carries — the Server Party API asks it to accept this service's
//! API keys, with their scopes, expiry and revocation.

use axum::Extension;
use axum::extract::State;
use chrono::{DateTime, Utc};
use mpc_proto::ApiError;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_service::ApiJson;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::SharedState;
use crate::api::ErrorResponse;
use crate::keys::Caller;

/// A registered server party (or Server Party API).
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct PartyView {
    pub party_id: String,
    /// `server` or `party_api`.
    pub kind: String,
    /// Heard from within the coordinator's liveness timeout.
    pub live: bool,
    pub last_seen: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    /// Sessions it was taking part in at its last heartbeat.
    pub active_sessions: u32,
    /// Ed25519, hex: what the other parties pin.
    pub identity_public_key: String,
    pub version: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct PartyList {
    pub parties: Vec<PartyView>,
}

/// The calling API key.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ApiKeySelf {
    /// The key's id, or `bootstrap` for `MPC_API_KEY`.
    pub key_id: String,
    /// `operator` or `admin`.
    pub scope: String,
    pub expires_at: Option<DateTime<Utc>>,
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn kind_name(kind: i32) -> &'static str {
    match pb::PartyKind::try_from(kind) {
        Ok(pb::PartyKind::Server) => "server",
        Ok(pb::PartyKind::PartyApi) => "party_api",
        _ => "unknown",
    }
}

/// The server parties and Server Party APIs registered with the coordinator, live or not.
#[utoipa::path(
    get,
    path = "/api/v1/parties",
    tag = "parties",
    responses(
        (status = 200, description = "Every registered party", body = PartyList),
        (status = 401, description = "Missing or invalid API key", body = ErrorResponse),
        (status = 503, description = "The session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn list_parties(
    State(state): State<SharedState>,
) -> Result<ApiJson<PartyList>, ApiError> {
    let parties = state.service.coordinator.list_parties().await?;
    Ok(ApiJson(PartyList {
        parties: parties
            .into_iter()
            .map(|p| PartyView {
                kind: kind_name(p.kind).to_owned(),
                live: p.live,
                last_seen: time(p.last_seen_ms),
                registered_at: time(p.registered_at_ms),
                active_sessions: p.active_sessions,
                identity_public_key: hex::encode(&p.identity_public_key),
                version: p.version,
                party_id: p.party_id,
            })
            .collect(),
    }))
}

/// Whose key this is: its id, scope and expiry (401 when it is unknown, revoked or expired).
#[utoipa::path(
    get,
    path = "/api/v1/api-keys/self",
    tag = "admin",
    responses(
        (status = 200, description = "The calling key", body = ApiKeySelf),
        (status = 401, description = "Missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 503, description = "A service it needs is unavailable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn api_key_self(Extension(caller): Extension<Caller>) -> ApiJson<ApiKeySelf> {
    ApiJson(ApiKeySelf {
        key_id: caller.key_id,
        scope: caller.scope.to_string(),
        expires_at: caller.expires_at,
    })
}
