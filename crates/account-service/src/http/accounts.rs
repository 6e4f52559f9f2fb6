//! Accounts: list, get (with share metadata), suspend, activate, refresh, recover, and scoped
//! access tokens for the Server Party API.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::DateTime;
use mpc_proto::{AccountId, ApiError, ErrorCode};
use mpc_service::ApiJson;
use mpc_store::account::{AccountRecord, AccountStatus, ShareRecord};

use super::{ApiPath, ApiQuery, SharedState, parse_account_id};
use crate::api::{
    AccessTokenKey, AccessTokenResponse, AccountList, AccountListQuery, AccountQuery, AccountView,
    ErrorResponse, RecoverRequest, SessionCreatedResponse, ShareView,
};
use crate::audit::AuditTarget;
use crate::keys::Caller;
use crate::service::account_not_found;

pub(crate) fn account_view(a: &AccountRecord, shares: Option<&[ShareRecord]>) -> AccountView {
    AccountView {
        account_id: a.id.0,
        username: a.username.clone(),
        email: a.email.clone(),
        status: a.status.to_string(),
        threshold_n: a.threshold.n,
        threshold_t: a.threshold.t,
        public_key: a.public_key.as_deref().map(hex::encode),
        ethereum_address: a
            .public_key
            .as_deref()
            .and_then(|k| mpc_protocol::PublicKey::from_sec1(k).ok())
            .map(|k| k.eth_address()),
        keygen_session_id: a.keygen_session_id.map(|s| s.0),
        failure_reason: a.failure_reason.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
        shares: shares.map(|shares| {
            shares
                .iter()
                .map(|s| ShareView {
                    party_id: s.party_id.to_string(),
                    party_index: s.party_index,
                    share_type: s.share_type.to_string(),
                    device_type: s.device_type.clone(),
                    storage_location: s.storage_location.clone(),
                    is_active: s.is_active,
                    created_at: s.created_at,
                })
                .collect()
        }),
    }
}

fn with_target<T: serde::Serialize>(status: StatusCode, body: T, target: AuditTarget) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.extensions_mut().insert(target);
    response
}

fn account_target(id: AccountId) -> AuditTarget {
    AuditTarget {
        session_id: None,
        account_id: Some(id),
    }
}

/// Accounts, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "accounts",
    params(AccountListQuery),
    responses(
        (status = 200, description = "A page of accounts", body = AccountList),
        (status = 400, description = "invalid_argument: bad query (status, limit, offset)", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn list_accounts(
    State(state): State<SharedState>,
    ApiQuery(q): ApiQuery<AccountListQuery>,
) -> Result<ApiJson<AccountList>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(s.parse::<AccountStatus>().map_err(|_| {
            ApiError::invalid_argument("status must be one of pending, active, suspended, failed")
        })?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0);
    let (accounts, total) = state
        .service
        .store
        .list_accounts(status, limit, offset)
        .await?;
    Ok(ApiJson(AccountList {
        accounts: accounts.iter().map(|a| account_view(a, None)).collect(),
        total,
        limit,
        offset,
    }))
}

/// An account with its share metadata (never the shares).
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account_id}",
    tag = "accounts",
    params(("account_id" = uuid::Uuid, Path), AccountQuery),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 400, description = "invalid_argument: the account id is not a UUID, or a bad query", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 404, description = "account_not_found", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn get_account(
    State(state): State<SharedState>,
    ApiPath(account_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AccountQuery>,
) -> Result<ApiJson<AccountView>, ApiError> {
    let id = parse_account_id(&account_id)?;
    let service = &state.service;
    let mut account = service
        .store
        .get_account(id)
        .await?
        .ok_or_else(|| account_not_found(id))?;
    // A pending keygen may have finished without its event reaching us yet.
    if account.status == AccountStatus::Pending
        && let Some(session) = account.keygen_session_id
    {
        service.reconcile(session).await;
        account = service
            .store
            .get_account(id)
            .await?
            .ok_or_else(|| account_not_found(id))?;
    }
    let shares = service
        .store
        .shares(id, q.include_inactive.unwrap_or(false))
        .await?;
    Ok(ApiJson(account_view(&account, Some(&shares))))
}

/// Suspend an account: it cannot sign until it is activated again.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account_id}/suspend",
    tag = "accounts",
    params(("account_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The account, suspended", body = AccountView),
        (status = 400, description = "invalid_argument: the path parameter is not a UUID", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 404, description = "account_not_found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: only active accounts can be suspended", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn suspend(
    State(state): State<SharedState>,
    ApiPath(account_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    set_suspended(state, &account_id, true).await
}

/// Activate a suspended account.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account_id}/activate",
    tag = "accounts",
    params(("account_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The account, active", body = AccountView),
        (status = 400, description = "invalid_argument: the path parameter is not a UUID", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 404, description = "account_not_found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: only suspended accounts can be activated", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn activate(
    State(state): State<SharedState>,
    ApiPath(account_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    set_suspended(state, &account_id, false).await
}

async fn set_suspended(
    state: SharedState,
    account_id: &str,
    suspend: bool,
) -> Result<Response, ApiError> {
    let id = parse_account_id(account_id)?;
    let account = state.service.set_suspended(id, suspend).await?;
    let shares = state.service.store.shares(id, false).await?;
    Ok(with_target(
        StatusCode::OK,
        account_view(&account, Some(&shares)),
        account_target(id),
    ))
}

/// Refresh every party's share: new shares, same public key; old shares become useless.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account_id}/refresh",
    tag = "accounts",
    params(("account_id" = uuid::Uuid, Path)),
    responses(
        (status = 201, description = "Refresh session created (all n parties)", body = SessionCreatedResponse),
        (status = 400, description = "invalid_argument: the account id is not a UUID; unknown_party", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 404, description = "account_not_found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the account has no key", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable; party_unavailable: a server party of the account is not live", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn refresh(
    State(state): State<SharedState>,
    ApiPath(account_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_account_id(&account_id)?;
    let (body, target) = state.service.refresh(id).await?;
    Ok(with_target(StatusCode::CREATED, body, target))
}

/// Rebuild a lost party's share for a new party at the same index (same public key and
/// Ethereum address). On completion the lost share is retired and the new one recorded.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account_id}/recover",
    tag = "accounts",
    params(("account_id" = uuid::Uuid, Path)),
    request_body = RecoverRequest,
    responses(
        (status = 201, description = "Recovery session created", body = SessionCreatedResponse),
        (status = 400, description = "insufficient_participants, duplicate_party_id, invalid_argument (body, account id not a UUID); unknown_party", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 404, description = "account_not_found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the account has no key", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable; party_unavailable: a server party of the account is not live", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn recover(
    State(state): State<SharedState>,
    ApiPath(account_id): ApiPath<String>,
    ApiJson(req): ApiJson<RecoverRequest>,
) -> Result<Response, ApiError> {
    let id = parse_account_id(&account_id)?;
    let (body, target) = state.service.recover(id, &req).await?;
    Ok(with_target(StatusCode::CREATED, body, target))
}

/// A short-lived token with which a device may call the Server Party API for this account only.
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account_id}/access-tokens",
    tag = "accounts",
    params(("account_id" = uuid::Uuid, Path)),
    responses(
        (status = 201, description = "The token", body = AccessTokenResponse),
        (status = 400, description = "invalid_argument: the path parameter is not a UUID", body = ErrorResponse),
        (status = 401, description = "invalid_api_key: missing, invalid, revoked or expired API key", body = ErrorResponse),
        (status = 403, description = "account_suspended", body = ErrorResponse),
        (status = 404, description = "account_not_found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the account's keygen failed", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 503, description = "unavailable: the database or the session coordinator is unreachable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn create_access_token(
    State(state): State<SharedState>,
    Extension(_caller): Extension<Caller>,
    ApiPath(account_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_account_id(&account_id)?;
    let account = state
        .service
        .store
        .get_account(id)
        .await?
        .ok_or_else(|| account_not_found(id))?;
    match account.status {
        // A pending account's device needs a token to take part in the keygen itself.
        AccountStatus::Active | AccountStatus::Pending => {}
        AccountStatus::Suspended => {
            return Err(ApiError::new(
                ErrorCode::AccountSuspended,
                "account is suspended: no access tokens until it is activated",
            ));
        }
        AccountStatus::Failed => {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                "account has no key: its keygen failed",
            ));
        }
    }
    let (token, claims) = state
        .access
        .issue(id, state.access_lifetime, SystemTime::now())?;
    let expires_at = DateTime::from_timestamp(i64::try_from(claims.exp).unwrap_or(i64::MAX), 0)
        .ok_or_else(|| ApiError::internal(&"access token expiry out of range"))?;
    Ok(with_target(
        StatusCode::CREATED,
        AccessTokenResponse {
            access_token: token,
            token_type: "Bearer".into(),
            scope: claims.scope,
            account_id: id.0,
            expires_at,
        },
        account_target(id),
    ))
}

/// The Ed25519 public key that verifies access tokens (for the Server Party API). Public.
#[utoipa::path(
    get,
    path = "/api/v1/access-token-key",
    tag = "accounts",
    responses((status = 200, description = "The key", body = AccessTokenKey))
)]
pub async fn access_token_key(State(state): State<SharedState>) -> ApiJson<AccessTokenKey> {
    ApiJson(AccessTokenKey {
        algorithm: "Ed25519".into(),
        public_key: hex::encode(state.access.public_key()),
    })
}
