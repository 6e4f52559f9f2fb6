//! Admin endpoints: API keys (create, list, revoke) and the audit log. Admin-scoped keys only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{AccountId, ApiError, ErrorCode, SessionId};
use mpc_service::ApiJson;
use mpc_store::account::{ApiKeyRecord, ApiKeyScope, AuditFilter};
use secrecy::ExposeSecret;

use super::{ApiPath, ApiQuery, SharedState};
use crate::api::{
    ApiKeyList, ApiKeyView, AuditEntryView, AuditLogPage, AuditQuery, CreateApiKeyRequest,
    CreatedApiKey, ErrorResponse,
};
use crate::keys::Caller;

const MAX_KEY_NAME_LEN: usize = 255;

fn key_view(k: &ApiKeyRecord) -> ApiKeyView {
    ApiKeyView {
        id: k.id,
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        scope: k.scope.to_string(),
        created_at: k.created_at,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
        last_used_at: k.last_used_at,
    }
}

/// Create an API key. The key is in the response this once; only its hash is stored.
#[utoipa::path(
    post,
    path = "/api/v1/admin/api-keys",
    tag = "admin",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "The new key", body = CreatedApiKey),
        (status = 400, description = "invalid_argument: bad name, scope or expiry", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 403, description = "permission_denied: not an admin key", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn create_api_key(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > MAX_KEY_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_argument(format!(
            "name must be 1 to {MAX_KEY_NAME_LEN} characters"
        )));
    }
    let scope = match req.scope.as_deref() {
        None | Some("") => ApiKeyScope::Operator,
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::invalid_argument("scope must be `operator` or `admin`"))?,
    };
    let now = Utc::now();
    let expires_at = match (req.expires_at, req.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_argument(
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(at), None) => Some(at),
        (None, Some(days)) => Some(now + TimeDelta::days(i64::from(days.min(36_500)))),
        (None, None) => None,
    };
    if expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::invalid_argument(
            "expires_at must be in the future",
        ));
    }
    let (record, plaintext) = state
        .keys
        .create(name.to_owned(), scope, expires_at, now)
        .await?;
    tracing::info!(key_id = %record.id, prefix = %record.prefix, scope = %record.scope, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            api_key: plaintext.expose_secret().to_owned(),
            key: key_view(&record),
        }),
    )
        .into_response())
}

/// Every API key (never the keys themselves).
#[utoipa::path(
    get,
    path = "/api/v1/admin/api-keys",
    tag = "admin",
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 403, description = "permission_denied: not an admin key", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn list_api_keys(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> Result<ApiJson<ApiKeyList>, ApiError> {
    caller.require_admin()?;
    let keys = state.service.store.list_api_keys().await?;
    Ok(ApiJson(ApiKeyList {
        keys: keys.iter().map(key_view).collect(),
    }))
}

/// Revoke an API key: it stops working at once. Revoking twice is harmless.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/api-keys/{key_id}",
    tag = "admin",
    params(("key_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The key, revoked", body = ApiKeyView),
        (status = 400, description = "invalid_argument: the path parameter is not a UUID", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 403, description = "permission_denied: not an admin key", body = ErrorResponse),
        (status = 404, description = "not_found: no such key", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn revoke_api_key(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(key_id): ApiPath<String>,
) -> Result<ApiJson<ApiKeyView>, ApiError> {
    caller.require_admin()?;
    let id = uuid::Uuid::parse_str(&key_id)
        .map_err(|_| ApiError::invalid_argument("key_id must be a UUID"))?;
    let record = state
        .service
        .store
        .revoke_api_key(id, Utc::now())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "API key not found"))?;
    tracing::info!(key_id = %record.id, "API key revoked");
    Ok(ApiJson(key_view(&record)))
}

fn parse_time(raw: Option<&str>, what: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid_argument(format!(
                        "{what} must be an RFC 3339 time, e.g. 2025-12-05T10:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// The audit log, newest first (guide §7.3: `status_min=400&since=<an hour ago>` lists the
/// recent failures).
#[utoipa::path(
    get,
    path = "/api/v1/audit-logs",
    tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditLogPage),
        (status = 400, description = "invalid_argument: bad filter", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 403, description = "permission_denied: not an admin key", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn audit_logs(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditLogPage>, ApiError> {
    caller.require_admin()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = AuditFilter {
        status_min: q.status_min,
        status_max: q.status_max,
        operation: q.operation.filter(|o| !o.is_empty()),
        session_id: q
            .session_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(SessionId::parse)
            .transpose()?,
        account_id: q
            .account_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(AccountId::parse)
            .transpose()?,
        since: parse_time(q.since.as_deref(), "since")?,
        until: parse_time(q.until.as_deref(), "until")?,
        before_id: q.before_id,
        limit,
    };
    let entries = state.service.store.query_audit(&filter).await?;
    let next_before_id = (entries.len() == usize::try_from(limit).unwrap_or(usize::MAX))
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(ApiJson(AuditLogPage {
        entries: entries
            .into_iter()
            .map(|e| AuditEntryView {
                id: e.id,
                session_id: e.session_id.map(|s| s.0),
                account_id: e.account_id.map(|a| a.0),
                operation: e.operation,
                user_id: e.user_id,
                ip_address: e.ip_address,
                user_agent: e.user_agent,
                request_body: e.request_body,
                response_status: e.response_status,
                created_at: e.created_at,
            })
            .collect(),
        next_before_id,
    }))
}
