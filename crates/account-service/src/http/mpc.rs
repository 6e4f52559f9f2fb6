//! `POST /api/v1/mpc/keygen`, `POST /api/v1/mpc/sign`, `GET /api/v1/mpc/sessions/{id}`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ErrorCode};
use mpc_service::ApiJson;

use super::{ApiPath, ApiQuery, SharedState, parse_session_id};
use crate::api::{
    ErrorResponse, KeygenRequest, KeygenResponse, ParticipantView, SessionQuery, SessionView,
    SignOutcome, SignRequest,
};
use crate::audit::AuditTarget;
use crate::idempotency;
use crate::keys::Caller;

/// Create a wallet account and its keygen session (guide §5.1 step 1).
///
/// The account is `pending` until every party has joined and the key exists; then it becomes
/// `active` with its public key and one share-metadata row per party. The device joins through
/// the Server Party API with its join token.
#[utoipa::path(
    post,
    path = "/api/v1/mpc/keygen",
    tag = "mpc",
    request_body = KeygenRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the first response")),
    responses(
        (status = 201, description = "Session created", body = KeygenResponse),
        (status = 400, description = "invalid_threshold, duplicate_party_id, insufficient_participants, invalid_argument; unknown_party: a server party that is not registered", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 409, description = "already_exists: username or email taken; failed_precondition: Idempotency-Key reused with another body or still in progress", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable; party_unavailable: a server party is not live", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn keygen(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<KeygenRequest>,
) -> Response {
    let service = &state.service;
    idempotency::run_once(&*service.store, &caller, "keygen", &headers, &req, || {
        service.keygen(&req)
    })
    .await
}

/// Create a sign session for an account (guide §5.2 step 2), or sign in one call (§3.2).
///
/// Exactly `threshold_t` parties of the account; the server parties sign by themselves.
/// Without `share_data` the answer is the new session: the device signs through
/// `POST /api/v1/sign/with-user-share` with its join token, and
/// `GET /api/v1/mpc/sessions/{id}?wait=60` returns `r`, `s`, `v`. With `share_data` on a
/// participant, this service runs that participant's part through the Server Party API and
/// answers once the session has completed, with `signature`, `r`, `s`, `v`.
#[utoipa::path(
    post,
    path = "/api/v1/mpc/sign",
    tag = "mpc",
    request_body = SignRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key returns the first response")),
    responses(
        (status = 201, description = "Session created; with `share_data`, completed and signed", body = SignOutcome),
        (status = 400, description = "insufficient_participants, invalid_message_hash, duplicate_party_id, invalid_argument (also a `share_data` that does not open as this party's share); unknown_party", body = ErrorResponse),
        (status = 401, description = "Missing or invalid API key; with `share_data`, invalid_join_token", body = ErrorResponse),
        (status = 403, description = "account_suspended", body = ErrorResponse),
        (status = 404, description = "account_not_found", body = ErrorResponse),
        (status = 409, description = "The account has no key yet; Idempotency-Key conflicts", body = ErrorResponse),
        (status = 410, description = "With `share_data`: the session expired before every party took part", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "With `share_data`: protocol_failed (sign failed: reason, blamed party)", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable (the coordinator, or with `share_data` the Server Party API); party_unavailable", body = ErrorResponse),
        (status = 504, description = "With `share_data`: timeout", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn sign(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SignRequest>,
) -> Response {
    idempotency::run_once(
        &*state.service.store,
        &caller,
        "sign",
        &headers,
        &req,
        || super::relay::sign(&state, &req),
    )
    .await
}

fn time(ms: i64) -> Option<DateTime<Utc>> {
    (ms > 0)
        .then(|| DateTime::from_timestamp_millis(ms))
        .flatten()
}

fn participant_status(status: i32) -> String {
    match pb::ParticipantStatus::try_from(status) {
        Ok(pb::ParticipantStatus::Invited) => "invited",
        Ok(pb::ParticipantStatus::Joined) => "joined",
        Ok(pb::ParticipantStatus::Ready) => "ready",
        Ok(pb::ParticipantStatus::Computing) => "computing",
        Ok(pb::ParticipantStatus::Completed) => "completed",
        Ok(pb::ParticipantStatus::Failed) => "failed",
        _ => "unknown",
    }
    .to_owned()
}

fn session_type(ty: i32) -> String {
    match pb::SessionType::try_from(ty) {
        Ok(pb::SessionType::Keygen) => "keygen",
        Ok(pb::SessionType::Sign) => "sign",
        Ok(pb::SessionType::Refresh) => "refresh",
        Ok(pb::SessionType::Recovery) => "recovery",
        _ => "unknown",
    }
    .to_owned()
}

fn session_status(status: i32) -> String {
    match pb::SessionStatus::try_from(status) {
        Ok(pb::SessionStatus::Created) => "created",
        Ok(pb::SessionStatus::Waiting) => "waiting",
        Ok(pb::SessionStatus::InProgress) => "in_progress",
        Ok(pb::SessionStatus::Completed) => "completed",
        Ok(pb::SessionStatus::Failed) => "failed",
        Ok(pb::SessionStatus::Expired) => "expired",
        _ => "unknown",
    }
    .to_owned()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

pub(crate) fn session_view(info: &pb::SessionInfo) -> Result<SessionView, ApiError> {
    let session_id = uuid::Uuid::parse_str(&info.session_id)
        .map_err(|_| ApiError::internal(&"coordinator returned an invalid session id"))?;
    let completed = info.status == i32::from(pb::SessionStatus::Completed);
    let is_sign = info.session_type == i32::from(pb::SessionType::Sign);
    let public_key = (!info.public_key.is_empty()).then(|| info.public_key.clone());
    let ethereum_address = public_key
        .as_deref()
        .filter(|_| completed || !is_sign)
        .and_then(|k| mpc_protocol::PublicKey::from_sec1(k).ok())
        .map(|k| k.eth_address());
    let signature = info.signature.as_ref().filter(|_| completed && is_sign);
    Ok(SessionView {
        session_id,
        session_type: session_type(info.session_type),
        status: session_status(info.status),
        threshold_n: info.threshold_n,
        threshold_t: info.threshold_t,
        account_id: non_empty(&info.key_id),
        participants: info
            .participants
            .iter()
            .map(|p| ParticipantView {
                party_id: p.party_id.clone(),
                party_index: p.party_index,
                device_type: non_empty(&p.device_type),
                status: participant_status(p.status),
                joined_at: p.joined_at_ms.and_then(time),
            })
            .collect(),
        message_hash: (!info.message_hash.is_empty()).then(|| hex::encode(&info.message_hash)),
        public_key: public_key.map(hex::encode),
        ethereum_address,
        signature: signature.map(|s| hex::encode(&s.der)),
        r: signature.map(|s| hex::encode(&s.r)),
        s: signature.map(|s| hex::encode(&s.s)),
        v: signature.map(|s| s.v),
        failure_reason: non_empty(&info.failure_reason),
        blamed_party_id: non_empty(&info.blamed_party_id),
        created_at: time(info.created_at_ms),
        expires_at: time(info.expires_at_ms),
        completed_at: info.completed_at_ms.and_then(time),
    })
}

/// A session's state (guide §6.1): participants and their status, and when it is done the public
/// key and Ethereum address (keygen), the signature `r`, `s`, `v` (sign), or why it failed.
/// With `?wait=SECONDS` (at most 60) the answer comes as soon as the session is final, or with
/// its current state when the time is up: a long poll instead of polling.
#[utoipa::path(
    get,
    path = "/api/v1/mpc/sessions/{session_id}",
    tag = "mpc",
    params(
        ("session_id" = uuid::Uuid, Path, description = "The session id"),
        SessionQuery,
    ),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 400, description = "Not a UUID; `wait` not 0 to 60", body = ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 503, description = "The session coordinator is unavailable", body = ErrorResponse),
        (status = 504, description = "The session coordinator did not answer in time", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn get_session(
    State(state): State<SharedState>,
    ApiPath(session_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SessionQuery>,
) -> Result<Response, ApiError> {
    let id = parse_session_id(&session_id)?;
    let wait = match query.wait.unwrap_or(0) {
        w @ 0..=MAX_WAIT_SECONDS => std::time::Duration::from_secs(u64::from(w)),
        _ => {
            return Err(ApiError::invalid_argument(format!(
                "wait must be 0 to {MAX_WAIT_SECONDS} seconds"
            )));
        }
    };
    let found = if wait.is_zero() {
        state.service.coordinator.get_session(id).await
    } else {
        state.service.coordinator.wait_final(id, wait).await
    };
    let info = match found {
        Ok(info) => info,
        Err(e) if matches!(e.code, ErrorCode::SessionNotFound | ErrorCode::NotFound) => {
            return Err(ApiError::session_not_found());
        }
        Err(e) => return Err(e),
    };
    // A client reading the outcome also applies it, in case its event has not arrived.
    if let Some(observed) = crate::outcomes::Observed::from_info(&info)
        && let Err(e) = state.service.observe(&observed).await
    {
        tracing::warn!(error = %e, session_id = %id, "could not apply session outcome");
    }
    let view = session_view(&info)?;
    let mut response = Json(view).into_response();
    response.extensions_mut().insert(AuditTarget {
        session_id: Some(id),
        account_id: None,
    });
    Ok(response)
}

/// The longest long poll on a session.
pub const MAX_WAIT_SECONDS: u32 = 60;
/// The session route (with its `?wait=` long poll).
pub const SESSION_PATH: &str = "/api/v1/mpc/sessions/{session_id}";
