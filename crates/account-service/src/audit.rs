//! The audit log (integration guide §7.3): every mutating request, every request refused for
//! its credentials, and every session outcome, with the caller, address, user agent, status and
//! the request body with its secrets redacted.
//!
//! [`audit_requests`] is middleware around the API routes (outside the API-key check, so that a
//! 401 is recorded too). Handlers name the session and account a request concerned by putting an
//! [`AuditTarget`] in the response's extensions. An audit write that fails is logged and does not
//! fail the request: the client's operation has already happened.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mpc_proto::{AccountId, ApiError, ErrorCode, SessionId};
use mpc_store::account::{AccountStore, NewAuditEntry};
use serde_json::Value;

use crate::keys::Caller;

/// Field names whose values never reach the audit log (compared case-insensitively).
/// `user_public_key` is public and kept.
pub const REDACTED_FIELDS: [&str; 12] = [
    "share_data",
    "join_token",
    "join_tokens",
    "api_key",
    "key",
    "token",
    "access_token",
    "service_token",
    "secret",
    "password",
    "seed",
    "private_key",
];
pub const REDACTED: &str = "[REDACTED]";
/// `operation` is a VARCHAR(50) (integration guide §7.3).
const MAX_OPERATION_LEN: usize = 50;
const MAX_USER_AGENT_LEN: usize = 512;

/// The session and account a request concerned, for its audit row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditTarget {
    pub session_id: Option<SessionId>,
    pub account_id: Option<AccountId>,
}

/// What the audit middleware needs.
pub struct AuditState {
    pub store: Arc<dyn AccountStore>,
    pub body_limit: usize,
    /// For the routes whose bodies carry a device's share ([`carries_share`]).
    pub share_body_limit: usize,
    pub trust_forwarded_for: bool,
}

/// Routes whose request bodies may carry a device's `share_data`.
pub fn carries_share(template: Option<&str>) -> bool {
    matches!(
        template,
        Some(
            "/api/v1/mpc/sign"
                | "/api/v1/keygen/generate-user-share"
                | "/api/v1/sign/with-user-share"
                | "/api/v1/refresh/with-user-share"
                | "/api/v1/recovery/new-user-share"
        )
    )
}

/// Replaces the value of every [`REDACTED_FIELDS`] key, at any depth, with `"[REDACTED]"`.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if REDACTED_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(k)) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The body as it goes into the log: redacted JSON, or only its size when it is not JSON (it
/// could be anything, including a secret).
fn body_for_log(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut v) => {
            redact(&mut v);
            Some(v)
        }
        Err(_) => Some(serde_json::json!({ "unparsed_bytes": bytes.len() })),
    }
}

/// A short name for what the request did: `keygen`, `sign`, `account.suspend`, …; other
/// requests are named by method and route template.
pub fn operation_name(method: &Method, template: Option<&str>) -> String {
    let named = match (method.as_str(), template.unwrap_or("")) {
        ("POST", "/api/v1/mpc/keygen") => Some("keygen"),
        ("POST", "/api/v1/mpc/sign") => Some("sign"),
        ("POST", "/api/v1/keygen/generate-user-share") => Some("user_share.keygen"),
        ("POST", "/api/v1/sign/with-user-share") => Some("user_share.sign"),
        ("POST", "/api/v1/refresh/with-user-share") => Some("user_share.refresh"),
        ("POST", "/api/v1/recovery/new-user-share") => Some("user_share.recovery"),
        ("POST", "/api/v1/accounts/{account_id}/suspend") => Some("account.suspend"),
        ("POST", "/api/v1/accounts/{account_id}/activate") => Some("account.activate"),
        ("POST", "/api/v1/accounts/{account_id}/refresh") => Some("refresh"),
        ("POST", "/api/v1/accounts/{account_id}/recover") => Some("recovery"),
        ("POST", "/api/v1/accounts/{account_id}/access-tokens") => Some("access_token.create"),
        ("POST", "/api/v1/admin/api-keys") => Some("api_key.create"),
        ("DELETE", "/api/v1/admin/api-keys/{key_id}") => Some("api_key.revoke"),
        _ => None,
    };
    let name = match named {
        Some(n) => n.to_owned(),
        None => format!("{method} {}", template.unwrap_or("unmatched")),
    };
    name.chars().take(MAX_OPERATION_LEN).collect()
}

/// The operation of the one audit row written per throttled address and window.
pub const THROTTLED_OPERATION: &str = "auth.throttled";

/// Records the first refusal of each throttle window (`auth.throttled`, status 429): one row
/// per address and window, however many requests the address keeps sending.
pub struct AuditThrottleSink {
    pub store: Arc<dyn AccountStore>,
}

#[async_trait::async_trait]
impl mpc_service::ThrottleSink for AuditThrottleSink {
    async fn throttled(
        &self,
        event: &mpc_service::throttle::Throttled,
        request: &axum::http::request::Parts,
    ) {
        tracing::warn!(
            ip = %event.ip,
            failures = event.failures,
            "throttling an address after repeated credential failures"
        );
        let entry = NewAuditEntry {
            session_id: None,
            account_id: None,
            operation: THROTTLED_OPERATION.to_owned(),
            user_id: None,
            ip_address: Some(event.ip),
            user_agent: request
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(MAX_USER_AGENT_LEN).collect()),
            request_body: Some(serde_json::json!({
                "failures": event.failures,
                "window_seconds": event.window.as_secs(),
                "retry_after_seconds": event.retry_after,
                "method": request.method.as_str(),
                "path": request.uri.path().chars().take(200).collect::<String>(),
            })),
            response_status: Some(StatusCode::TOO_MANY_REQUESTS.as_u16()),
            created_at: Utc::now(),
        };
        if let Err(e) = self.store.insert_audit(&entry).await {
            tracing::warn!(error = %e, "could not write the audit log");
        }
    }
}

fn should_audit(method: &Method, status: StatusCode) -> bool {
    let mutating = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    mutating || status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
}

/// Middleware: records the request after it was answered (see the module docs).
pub async fn audit_requests(
    State(state): State<Arc<AuditState>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let ip = mpc_service::throttle::client_ip(&req, state.trust_forwarded_for);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(MAX_USER_AGENT_LEN).collect::<String>());

    // Buffer the body so that it can be both logged and handled. GETs carry none worth keeping.
    let (parts, body) = req.into_parts();
    let limit = if carries_share(template.as_deref()) {
        state.share_body_limit
    } else {
        state.body_limit
    };
    let (bytes, response) = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            let req = Request::from_parts(parts, Body::from(bytes.clone()));
            (bytes, next.run(req).await)
        }
        Err(_) => (
            Default::default(),
            ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large").into_response(),
        ),
    };
    let status = response.status();
    if !should_audit(&method, status) {
        return response;
    }
    let target = response
        .extensions()
        .get::<AuditTarget>()
        .copied()
        .unwrap_or_default();
    let entry = NewAuditEntry {
        session_id: target.session_id,
        account_id: target.account_id,
        operation: operation_name(&method, template.as_deref()),
        user_id: response
            .extensions()
            .get::<Caller>()
            .map(|c| c.key_id.clone()),
        ip_address: ip,
        user_agent,
        request_body: body_for_log(&bytes),
        response_status: Some(status.as_u16()),
        created_at: Utc::now(),
    };
    if let Err(e) = state.store.insert_audit(&entry).await {
        tracing::warn!(error = %e, operation = %entry.operation, "could not write the audit log");
    }
    response
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = json!({
            "session_id": "s",
            "share_data": "a1b2",
            "join_tokens": {"p1": "eyJ"},
            "participants": [{"party_id": "u", "share_data": "c3d4", "Join_Token": "eyJ"}],
            "user_public_key": "04ab",
            "API_KEY": "mpc_x",
        });
        redact(&mut v);
        assert_eq!(
            v,
            json!({
                "session_id": "s",
                "share_data": REDACTED,
                "join_tokens": REDACTED,
                "participants": [{"party_id": "u", "share_data": REDACTED, "Join_Token": REDACTED}],
                "user_public_key": "04ab",
                "API_KEY": REDACTED,
            })
        );
    }

    #[test]
    fn non_json_bodies_are_logged_by_size_only() {
        assert_eq!(body_for_log(b""), None);
        assert_eq!(
            body_for_log(b"share_data=secret"),
            Some(json!({"unparsed_bytes": 17}))
        );
    }

    #[test]
    fn operations_have_short_names() {
        assert_eq!(
            operation_name(&Method::POST, Some("/api/v1/mpc/keygen")),
            "keygen"
        );
        assert_eq!(
            operation_name(&Method::GET, Some("/api/v1/accounts/{account_id}")),
            "GET /api/v1/accounts/{account_id}"
        );
        assert!(operation_name(&Method::GET, Some(&"/x".repeat(100))).len() <= 50);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            "[a-z0-9]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("share_data".to_owned()),
                        Just("token".to_owned()),
                        "[a-z_]{1,6}"
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn has_secret(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| {
                (REDACTED_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(k)) && v != REDACTED)
                    || has_secret(v)
            }),
            Value::Array(a) => a.iter().any(has_secret),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn no_secret_field_survives_redaction(mut v in json_value()) {
            redact(&mut v);
            prop_assert!(!has_secret(&v));
        }
    }
}
