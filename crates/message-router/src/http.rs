//! The HTTP mirror of the gRPC API, for clients without gRPC:
//!
//! - `POST /api/v1/sessions/{session_id}/messages` routes an envelope (JSON, payload in base64);
//! - `GET  /api/v1/sessions/{session_id}/messages?party_id=…&after_seq=…&limit=…&wait_ms=…`
//!   fetches the caller's envelopes.
//!
//! Both take `Authorization: Bearer <join token>`; errors are `ApiError` JSON.

use std::time::Duration;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mpc_proto::ApiError;
use mpc_service::ApiJson;
use mpc_store::router::StoredEnvelope;
use serde::{Deserialize, Serialize};

use crate::relay::{DirtyEnvelope, MailboxRequest, Relay};

/// The body of `POST …/messages`.
#[derive(Deserialize)]
pub struct RouteBody {
    pub message_id: String,
    /// Optional; when given it must equal the path's session id.
    #[serde(default)]
    pub session_id: Option<String>,
    pub from_party: String,
    /// Absent, null or empty for a broadcast.
    #[serde(default)]
    pub to_party: Option<String>,
    pub round: u32,
    /// Standard base64 (with padding) of the ciphertext.
    pub payload: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RouteReply {
    pub message_id: String,
    pub duplicate: bool,
    pub recipients: u32,
}

#[derive(Debug, Deserialize)]
pub struct FetchParams {
    pub party_id: String,
    #[serde(default)]
    pub after_seq: u64,
    #[serde(default)]
    pub limit: u32,
    #[serde(default)]
    pub wait_ms: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct FetchReply {
    pub messages: Vec<EnvelopeJson>,
    pub last_seq: u64,
    pub has_more: bool,
}

/// An envelope in JSON. `to_party` is `null` for a broadcast.
#[derive(Debug, Serialize, Deserialize)]
pub struct EnvelopeJson {
    pub message_id: String,
    pub session_id: String,
    pub from_party: String,
    pub to_party: Option<String>,
    pub round: u32,
    /// Standard base64.
    pub payload: String,
    pub seq: u64,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// The API routes (without the ops routes and layers, which `serve` adds).
pub fn routes(relay: Relay) -> Router {
    Router::new()
        .route(
            "/api/v1/sessions/{session_id}/messages",
            get(fetch_messages).post(route_message),
        )
        .with_state(relay)
}

async fn route_message(
    State(relay): State<Relay>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    ApiJson(body): ApiJson<RouteBody>,
) -> Result<ApiJson<RouteReply>, ApiError> {
    let token = bearer_token(&headers)?;
    let Path(session_id) = path.map_err(|e| ApiError::invalid_argument(e.body_text()))?;
    if body.session_id.as_ref().is_some_and(|s| *s != session_id) {
        return Err(ApiError::invalid_argument(
            "session_id in the body differs from the one in the path",
        ));
    }
    let payload = BASE64
        .decode(body.payload.as_bytes())
        .map_err(|_| ApiError::invalid_argument("payload is not valid base64"))?;
    let routed = relay
        .route(
            token,
            DirtyEnvelope {
                message_id: body.message_id,
                session_id,
                from_party: body.from_party,
                to_party: body.to_party.unwrap_or_default(),
                round: body.round,
                payload,
            },
        )
        .await?;
    Ok(ApiJson(RouteReply {
        message_id: routed.message_id.to_string(),
        duplicate: routed.duplicate,
        recipients: routed.recipients,
    }))
}

async fn fetch_messages(
    State(relay): State<Relay>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<FetchParams>, QueryRejection>,
) -> Result<ApiJson<FetchReply>, ApiError> {
    let token = bearer_token(&headers)?;
    let Path(session_id) = path.map_err(|e| ApiError::invalid_argument(e.body_text()))?;
    let Query(params) = query.map_err(|e| ApiError::invalid_argument(e.body_text()))?;
    let fetched = relay
        .fetch(
            token,
            &MailboxRequest {
                session_id,
                party_id: params.party_id,
                after_seq: params.after_seq,
            },
            params.limit,
            Duration::from_millis(u64::from(params.wait_ms)),
        )
        .await?;
    Ok(ApiJson(FetchReply {
        messages: fetched.envelopes.into_iter().map(to_json).collect(),
        last_seq: fetched.last_seq,
        has_more: fetched.has_more,
    }))
}

/// The join token of `Authorization: Bearer <token>`; anything else is `invalid join token`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(ApiError::invalid_join_token)
}

fn to_json(envelope: StoredEnvelope) -> EnvelopeJson {
    EnvelopeJson {
        message_id: envelope.message_id.to_string(),
        session_id: envelope.session_id.to_string(),
        from_party: envelope.from_party.to_string(),
        to_party: envelope.to_party.map(|p| p.to_string()),
        round: envelope.round,
        payload: BASE64.encode(&envelope.payload),
        seq: envelope.seq,
        created_at: crate::rfc3339(envelope.created_at),
    }
}

/// Base64 grows a payload by 4/3; the rest of the JSON body is small.
pub fn body_limit(max_payload_bytes: usize) -> usize {
    max_payload_bytes
        .saturating_add(2)
        .saturating_div(3)
        .saturating_mul(4)
        .saturating_add(64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert!(bearer_token(&h).is_err());
        for (value, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearer ", None),
            ("abc", None),
        ] {
            h.insert(AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer_token(&h).ok(), want, "{value:?}");
        }
    }

    #[test]
    fn body_limit_fits_a_maximal_payload() {
        for max in [1usize, 2, 3, 1000, 16 * 1024 * 1024] {
            let encoded = BASE64.encode(vec![0u8; max]).len();
            assert!(body_limit(max) >= encoded + 1024, "{max}");
        }
    }
}
