//! The HTTP API: a REST mirror of CreateSession and GetSession in the guide's JSON shapes, the
//! join-token public key, and the ops routes (`/healthz`, `/readyz`, `/metrics`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use mpc_proto::{ApiError, ErrorCode, SessionId, SessionType};
use mpc_service::{
    ApiJson, Metrics, Readiness, catch_panic_layer, http_metrics_layer, not_found_fallback,
    ops_routes, with_body_limit,
};
use mpc_store::coordinator::SessionRecord;
use serde::{Deserialize, Serialize};

use crate::service::Coordinator;
use crate::validate::{CreateRequest, ParticipantInput, RecoveryInput};

/// CreateSession bodies are small; nothing else takes a body.
const BODY_LIMIT: usize = 64 * 1024;

pub fn router(
    coordinator: Arc<Coordinator>,
    metrics: Metrics,
    readiness: Arc<dyn Readiness>,
) -> Router {
    let api = Router::new()
        .route("/api/v1/sessions", post(create_session))
        .route("/api/v1/sessions/{id}", get(get_session))
        .route("/api/v1/join-token-key", get(join_token_key))
        .with_state(coordinator);
    let app = api
        .merge(ops_routes(metrics.clone(), readiness))
        .fallback(not_found_fallback);
    with_body_limit(app, BODY_LIMIT)
        .layer(http_metrics_layer(&metrics))
        .layer(catch_panic_layer())
}

#[derive(Debug, Deserialize)]
pub struct CreateBody {
    pub session_type: String,
    pub threshold_n: u32,
    pub threshold_t: u32,
    pub participants: Vec<ParticipantBody>,
    /// The account id. The guide's sign request calls it `account_id`.
    #[serde(default, alias = "account_id")]
    pub key_id: String,
    /// Hex, 64 characters, no `0x`.
    #[serde(default)]
    pub message_hash: Option<String>,
    /// Hex, `04…`, 130 characters.
    #[serde(default)]
    pub public_key: Option<String>,
    #[serde(default)]
    pub recovery: Option<RecoveryBody>,
    #[serde(default)]
    pub lifetime_seconds: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub struct ParticipantBody {
    pub party_id: String,
    #[serde(default)]
    pub device_type: Option<String>,
    #[serde(default)]
    pub party_index: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize)]
pub struct RecoveryBody {
    pub target_party_id: String,
    pub helper_party_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
struct CreatedBody {
    session_id: SessionId,
    session_type: SessionType,
    threshold_n: u16,
    threshold_t: u16,
    key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_hash: Option<String>,
    /// Secret: hand each token to its party only.
    join_tokens: BTreeMap<String, String>,
    status: mpc_proto::SessionStatus,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct ParticipantView {
    party_id: String,
    party_index: u16,
    device_type: Option<String>,
    status: mpc_proto::ParticipantStatus,
    joined_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct SignatureView {
    /// DER, hex.
    signature: String,
    r: String,
    s: String,
    v: u8,
}

#[derive(Debug, Serialize)]
struct SessionView {
    session_id: SessionId,
    session_type: SessionType,
    status: mpc_proto::SessionStatus,
    threshold_n: u16,
    threshold_t: u16,
    key_id: String,
    message_hash: Option<String>,
    public_key: Option<String>,
    signature: Option<SignatureView>,
    recovery: Option<RecoveryBody>,
    failure_reason: Option<String>,
    blamed_party_id: Option<String>,
    participants: Vec<ParticipantView>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
}

fn session_view(s: &SessionRecord) -> SessionView {
    SessionView {
        session_id: s.id,
        session_type: s.session_type,
        status: s.status,
        threshold_n: s.threshold.n,
        threshold_t: s.threshold.t,
        key_id: s.key_id.clone(),
        message_hash: s.message_hash.as_deref().map(hex::encode),
        public_key: s.public_key.as_deref().map(hex::encode),
        signature: s.signature.as_ref().map(|sig| SignatureView {
            signature: hex::encode(&sig.der),
            r: hex::encode(sig.r),
            s: hex::encode(sig.s),
            v: sig.v,
        }),
        recovery: s.recovery.as_ref().map(|r| RecoveryBody {
            target_party_id: r.target.to_string(),
            helper_party_ids: r.helpers.iter().map(|h| h.to_string()).collect(),
        }),
        failure_reason: s.failure_reason.clone(),
        blamed_party_id: s.blamed_party.as_ref().map(|p| p.to_string()),
        participants: s
            .participants
            .iter()
            .map(|p| ParticipantView {
                party_id: p.party_id.to_string(),
                party_index: p.party_index,
                device_type: p.device_type.clone(),
                status: p.status,
                joined_at: p.joined_at,
            })
            .collect(),
        created_at: s.created_at,
        expires_at: s.expires_at,
        updated_at: s.updated_at,
        completed_at: s.completed_at,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn decode_hex(value: Option<&str>, code: ErrorCode, what: &str) -> Result<Vec<u8>, ApiError> {
    match value {
        None | Some("") => Ok(Vec::new()),
        Some(v) => hex::decode(v)
            .map_err(|_| ApiError::new(code, format!("{what} must be hex without a 0x prefix"))),
    }
}

fn create_request(body: CreateBody) -> Result<CreateRequest, ApiError> {
    Ok(CreateRequest {
        session_type: body.session_type.parse()?,
        threshold_t: body.threshold_t,
        threshold_n: body.threshold_n,
        participants: body
            .participants
            .into_iter()
            .map(|p| ParticipantInput {
                party_id: p.party_id,
                device_type: p.device_type.unwrap_or_default(),
                party_index: p.party_index,
            })
            .collect(),
        key_id: body.key_id,
        message_hash: decode_hex(
            body.message_hash.as_deref(),
            ErrorCode::InvalidMessageHash,
            "invalid message hash: message_hash",
        )?,
        public_key: decode_hex(
            body.public_key.as_deref(),
            ErrorCode::InvalidArgument,
            "public_key",
        )?,
        recovery: body.recovery.map(|r| RecoveryInput {
            target_party_id: r.target_party_id,
            helper_party_ids: r.helper_party_ids,
        }),
        lifetime_seconds: body.lifetime_seconds.unwrap_or(0),
    })
}

async fn create_session(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    coordinator.check_service_token(bearer(&headers))?;
    let created = coordinator.create(&create_request(body)?).await?;
    let s = &created.session;
    let body = CreatedBody {
        session_id: s.id,
        session_type: s.session_type,
        threshold_n: s.threshold.n,
        threshold_t: s.threshold.t,
        key_id: s.key_id.clone(),
        message_hash: s.message_hash.as_deref().map(hex::encode),
        join_tokens: created
            .join_tokens
            .into_iter()
            .map(|(party, token)| (party.to_string(), token))
            .collect(),
        status: s.status,
        expires_at: s.expires_at,
    };
    Ok((StatusCode::CREATED, ApiJson(body)).into_response())
}

async fn get_session(
    State(coordinator): State<Arc<Coordinator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<ApiJson<SessionView>, ApiError> {
    coordinator.check_service_token(bearer(&headers))?;
    let id = SessionId::parse(&id)?;
    Ok(ApiJson(session_view(&coordinator.get(id).await?)))
}

#[derive(Debug, Serialize)]
struct JoinTokenKey {
    algorithm: &'static str,
    /// Ed25519 public key, hex.
    public_key: String,
}

async fn join_token_key(State(coordinator): State<Arc<Coordinator>>) -> ApiJson<JoinTokenKey> {
    ApiJson(JoinTokenKey {
        algorithm: "Ed25519",
        public_key: hex::encode(coordinator.join_token_public_key()),
    })
}
