//! `Idempotency-Key` on keygen and sign: a retried request (same caller, same route, same key)
//! gets the first response back instead of creating a second session.
//!
//! The key is claimed in the database before the request runs, so two concurrent retries cannot
//! both create a session: the second is told the first is still in progress (409). The same key
//! with a different body is refused (409) rather than silently answered with the other request's
//! response. Responses with a 5xx status are not kept, so that a retry can succeed; a claim whose
//! process died is taken over after a minute. Keys are kept for a day.

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use mpc_proto::{AccountId, ApiError, ErrorBody, ErrorCode, SessionId};
use mpc_store::account::{AccountStore, IdempotencyClaim, IdempotencyKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::AuditTarget;
use crate::keys::Caller;

pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Set on a response that repeats an earlier one.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
const MAX_KEY_LEN: usize = 255;
const STALE_CLAIM: TimeDelta = TimeDelta::seconds(60);

fn json_response(status: StatusCode, body: String, target: AuditTarget) -> Response {
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    response.extensions_mut().insert(target);
    response
}

fn error_json(e: &ApiError) -> String {
    serde_json::to_string(&ErrorBody { error: e.clone() }).unwrap_or_default()
}

/// The session and account named in a stored response, for the replay's audit row.
fn target_of(body: &str) -> AuditTarget {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let uuid = |field: &str| {
        v.get(field)
            .and_then(|s| s.as_str())
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
    };
    AuditTarget {
        session_id: uuid("session_id").map(SessionId),
        account_id: uuid("account_id").map(AccountId),
    }
}

fn conflict(message: &str) -> Response {
    ApiError::new(ErrorCode::FailedPrecondition, message).into_response()
}

/// Runs `run` (a request that creates something) at most once per `Idempotency-Key`, answering
/// 201 with its result.
pub async fn run_once<T, F, Fut>(
    store: &dyn AccountStore,
    caller: &Caller,
    route: &str,
    headers: &HeaderMap,
    request: &impl Serialize,
    run: F,
) -> Response
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(T, AuditTarget), ApiError>>,
{
    let execute = |run: F| async move {
        match run().await {
            Ok((body, target)) => match serde_json::to_string(&body) {
                Ok(json) => (StatusCode::CREATED, json, target, None),
                Err(e) => {
                    let e = ApiError::internal(&e);
                    (
                        e.code.http_status(),
                        error_json(&e),
                        AuditTarget::default(),
                        None,
                    )
                }
            },
            Err(e) => (
                e.code.http_status(),
                error_json(&e),
                AuditTarget::default(),
                e.retry_after,
            ),
        }
    };
    let with_retry_after = |mut response: Response, retry_after: Option<u32>| {
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    };
    let Some(raw) = headers.get(IDEMPOTENCY_HEADER) else {
        let (status, body, target, retry_after) = execute(run).await;
        return with_retry_after(json_response(status, body, target), retry_after);
    };
    let key = match raw.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= MAX_KEY_LEN => k.trim().to_owned(),
        _ => {
            return ApiError::invalid_argument(format!(
                "invalid Idempotency-Key: 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
            .into_response();
        }
    };
    let key = IdempotencyKey {
        api_key_id: caller.key_id.clone(),
        route: route.to_owned(),
        key,
    };
    let request_hash: [u8; 32] =
        Sha256::digest(serde_json::to_vec(request).unwrap_or_default()).into();

    let mut claim = store
        .claim_idempotency_key(&key, &request_hash, Utc::now(), STALE_CLAIM)
        .await;
    if matches!(claim, Err(mpc_store::StoreError::Conflict(_))) {
        // The key was released between our insert and our read: once more.
        claim = store
            .claim_idempotency_key(&key, &request_hash, Utc::now(), STALE_CLAIM)
            .await;
    }
    let claim = match claim {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match claim {
        IdempotencyClaim::Claimed => {
            let (status, body, target, retry_after) = execute(run).await;
            // A refusal for the moment (overloaded, a party unavailable, a dependency down) is
            // not the request's answer: a retry with the same key must run it again.
            let transient = status.is_server_error()
                || status == StatusCode::TOO_MANY_REQUESTS
                || retry_after.is_some();
            let kept = if transient {
                store.release_idempotency_key(&key).await
            } else {
                store
                    .complete_idempotency_key(&key, status.as_u16(), &body)
                    .await
            };
            if let Err(e) = kept {
                tracing::warn!(error = %e, "could not record the idempotent response");
            }
            with_retry_after(json_response(status, body, target), retry_after)
        }
        IdempotencyClaim::Completed {
            request_hash: stored,
            status,
            body,
        } => {
            if !mpc_service::hash_eq(&stored, &request_hash) {
                return conflict(
                    "Idempotency-Key was already used with a different request body: \
                     use a new key for a new request",
                );
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let target = target_of(&body);
            let mut response = json_response(status, body, target);
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            response
        }
        IdempotencyClaim::InProgress {
            request_hash: stored,
        } => {
            if mpc_service::hash_eq(&stored, &request_hash) {
                conflict("a request with this Idempotency-Key is still in progress: retry shortly")
            } else {
                conflict(
                    "Idempotency-Key was already used with a different request body: \
                     use a new key for a new request",
                )
            }
        }
    }
}
