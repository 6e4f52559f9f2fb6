//! One base URL (DESIGN.md §4 "One base URL"; guide §2.6): the device operations of the Server
//! Party API, served here under the same paths and relayed to it over the internal network, and
//! the one-call signature of `POST /api/v1/mpc/sign` with `share_data`.
//!
//! Callers present `X-API-Key` (any key of this service) or a scoped access token
//! (`Authorization: Bearer`, from `POST /api/v1/accounts/{id}/access-tokens`). The body is
//! checked with the Server Party API's own request types (same errors), the session must be one
//! this service created (else `session not found`), and the Server Party API's answer — status,
//! body, `Retry-After` — comes back unchanged. Every call is audited, with `share_data` and
//! the join token redacted (the audit middleware's rule for every body).
//!
//! **What is forwarded.** Not the caller's API key: an access token minted here for the
//! session's account, valid for `access_token_lifetime`. The Account Service has already
//! authenticated the key (revocation, expiry), so the Server Party API needs neither a copy of
//! the keys nor a call back here, and what crosses the internal network is good for one account
//! and expires, rather than a long-lived key that may be an admin's. A caller that brings an
//! access token is checked here (same account as the session, else 403 as the Server Party API
//! says it) and its token is forwarded as it is, so that it gains no lifetime.

use std::time::SystemTime;

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use mpc_proto::{AccountId, ApiError, ErrorCode, PartyId, SessionId};
use mpc_service::ApiJson;
use mpc_store::account::ApiKeyScope;
use secrecy::SecretString;
use serde::Serialize;
use server_party_api::{
    GenerateUserShareRequest, RecoveryNewUserShareRequest, RefreshWithUserShareRequest,
    SignWithUserShareRequest, SignatureResponse, UserShareResponse,
};
use tokio::task::JoinSet;

use super::SharedState;
use crate::api::{ErrorResponse, SignOutcome, SignRequest};
use crate::audit::AuditTarget;
use crate::keys::{API_KEY_HEADER, Caller};
use crate::party_api::{PartyApiClient, not_configured};

pub const KEYGEN_PATH: &str = "/api/v1/keygen/generate-user-share";
pub const SIGN_PATH: &str = "/api/v1/sign/with-user-share";
pub const REFRESH_PATH: &str = "/api/v1/refresh/with-user-share";
pub const RECOVERY_PATH: &str = "/api/v1/recovery/new-user-share";

/// Who called a relayed endpoint.
#[derive(Clone)]
pub enum RelayCaller {
    /// An API key of this service.
    Key(Caller),
    /// A scoped access token, good for its account's sessions only.
    Token {
        account: AccountId,
        token: SecretString,
    },
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Middleware of the relayed routes: `X-API-Key` (checked as everywhere here) or an access
/// token. A wrong key is refused even with a token beside it, as the Server Party API does.
pub async fn relay_auth(
    State(state): State<SharedState>,
    mut req: Request,
    next: Next,
) -> Response {
    let who = if let Some(key) = req.headers().get(API_KEY_HEADER) {
        let presented = key.to_str().unwrap_or("\u{fffd}");
        match state.keys.authenticate(Some(presented), Utc::now()).await {
            Ok(caller) => RelayCaller::Key(caller),
            Err(e) => return crate::keys::refuse_credentials(e),
        }
    } else if let Some(token) = bearer(&req) {
        match state.access.verifier().verify(token) {
            Ok(claims) => RelayCaller::Token {
                account: claims.sub,
                token: SecretString::from(token.to_owned()),
            },
            Err(e) => return crate::keys::refuse_credentials(e),
        }
    } else {
        return crate::keys::refuse_credentials(ApiError::new(
            ErrorCode::InvalidApiKey,
            "missing API key: send it in the X-API-Key header, or an access token as \
             Authorization: Bearer",
        ));
    };
    // For the audit log: the key's id, or the token's account.
    let audited = match &who {
        RelayCaller::Key(caller) => caller.clone(),
        RelayCaller::Token { account, .. } => Caller {
            key_id: format!("access-token:{account}"),
            scope: ApiKeyScope::Operator,
            expires_at: None,
        },
    };
    req.extensions_mut().insert(who);
    let mut response = next.run(req).await;
    response.extensions_mut().insert(audited);
    response
}

/// A fresh access token for `account`.
fn mint(state: &SharedState, account: AccountId) -> Result<SecretString, ApiError> {
    let (token, _) = state
        .access
        .issue(account, state.access_lifetime, SystemTime::now())?;
    Ok(SecretString::from(token))
}

/// A token for `account` to present to the Server Party API.
fn credential(
    state: &SharedState,
    who: &RelayCaller,
    account: AccountId,
) -> Result<SecretString, ApiError> {
    match who {
        RelayCaller::Key(_) => mint(state, account),
        RelayCaller::Token {
            account: own,
            token,
        } if *own == account => Ok(token.clone()),
        RelayCaller::Token { .. } => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "the access token is for another account than this session's",
        )),
    }
}

fn client(state: &SharedState) -> Result<&PartyApiClient, ApiError> {
    state.party_api.as_ref().ok_or_else(not_configured)
}

/// The session's account, if this service created the session.
async fn session_account(
    state: &SharedState,
    session_id: &str,
) -> Result<(SessionId, AccountId), ApiError> {
    let id = SessionId::parse(session_id)?;
    let record = state
        .service
        .store
        .get_session(id)
        .await?
        .ok_or_else(ApiError::session_not_found)?;
    Ok((id, record.account_id))
}

async fn relay(
    state: &SharedState,
    who: &RelayCaller,
    path: &str,
    session_id: &str,
    body: &impl Serialize,
) -> Result<Response, ApiError> {
    let client = client(state)?;
    let (session_id, account_id) = session_account(state, session_id).await?;
    let token = credential(state, who, account_id)?;
    let relayed = client.post(path, &token, body).await?;
    let mut response = (relayed.status, relayed.body).into_response();
    let headers = response.headers_mut();
    headers.extend(relayed.headers);
    headers
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    response.extensions_mut().insert(AuditTarget {
        session_id: Some(session_id),
        account_id: Some(account_id),
    });
    Ok(response)
}

/// The device's part of a keygen (guide §5.1 step 2), relayed to the Server Party API:
/// answers when the key exists, with the device's share.
#[utoipa::path(
    post,
    path = "/api/v1/keygen/generate-user-share",
    tag = "device",
    request_body = GenerateUserShareRequest,
    responses(
        (status = 200, description = "The key exists; the device's share", body = UserShareResponse),
        (status = 400, description = "invalid_argument (body, session id, user_public_key), wrong session type", body = ErrorResponse),
        (status = 401, description = "invalid_api_key (key or access token), invalid_join_token", body = ErrorResponse),
        (status = 403, description = "permission_denied: the access token is for another account", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the session has started, or the party has joined", body = ErrorResponse),
        (status = 410, description = "session_expired", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "protocol_failed: keygen failed (reason, blamed party)", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the Server Party API or the coordinator is unreachable", body = ErrorResponse),
        (status = 504, description = "timeout", body = ErrorResponse),
    ),
    security(("api_key" = []), ("access_token" = []))
)]
pub async fn generate_user_share(
    State(state): State<SharedState>,
    Extension(who): Extension<RelayCaller>,
    ApiJson(req): ApiJson<GenerateUserShareRequest>,
) -> Result<Response, ApiError> {
    relay(&state, &who, KEYGEN_PATH, &req.session_id, &req).await
}

/// The device's part of a signature (guide §5.2 step 3), relayed to the Server Party API.
#[utoipa::path(
    post,
    path = "/api/v1/sign/with-user-share",
    tag = "device",
    request_body = SignWithUserShareRequest,
    responses(
        (status = 200, description = "The session completed: the signature", body = SignatureResponse),
        (status = 400, description = "invalid_argument (body, session id, share_data), invalid_message_hash, wrong session type", body = ErrorResponse),
        (status = 401, description = "invalid_api_key (key or access token), invalid_join_token", body = ErrorResponse),
        (status = 403, description = "permission_denied: the access token is for another account", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the session has started, or the party has joined", body = ErrorResponse),
        (status = 410, description = "session_expired", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "protocol_failed: sign failed (reason, blamed party)", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the Server Party API or the coordinator is unreachable", body = ErrorResponse),
        (status = 504, description = "timeout", body = ErrorResponse),
    ),
    security(("api_key" = []), ("access_token" = []))
)]
pub async fn sign_with_user_share(
    State(state): State<SharedState>,
    Extension(who): Extension<RelayCaller>,
    ApiJson(req): ApiJson<SignWithUserShareRequest>,
) -> Result<Response, ApiError> {
    relay(&state, &who, SIGN_PATH, &req.session_id, &req).await
}

/// The device's part of a refresh (new shares, same key), relayed to the Server Party API.
#[utoipa::path(
    post,
    path = "/api/v1/refresh/with-user-share",
    tag = "device",
    request_body = RefreshWithUserShareRequest,
    responses(
        (status = 200, description = "The session completed: the device's new share", body = UserShareResponse),
        (status = 400, description = "invalid_argument (body, session id, share_data, user_public_key), wrong session type", body = ErrorResponse),
        (status = 401, description = "invalid_api_key (key or access token), invalid_join_token", body = ErrorResponse),
        (status = 403, description = "permission_denied: the access token is for another account", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the session has started, or the party has joined", body = ErrorResponse),
        (status = 410, description = "session_expired", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "protocol_failed", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the Server Party API or the coordinator is unreachable", body = ErrorResponse),
        (status = 504, description = "timeout", body = ErrorResponse),
    ),
    security(("api_key" = []), ("access_token" = []))
)]
pub async fn refresh_with_user_share(
    State(state): State<SharedState>,
    Extension(who): Extension<RelayCaller>,
    ApiJson(req): ApiJson<RefreshWithUserShareRequest>,
) -> Result<Response, ApiError> {
    relay(&state, &who, REFRESH_PATH, &req.session_id, &req).await
}

/// The device's part of a recovery, relayed to the Server Party API: without `share_data` the
/// device is the new holder of the lost index; with it, the device helps.
#[utoipa::path(
    post,
    path = "/api/v1/recovery/new-user-share",
    tag = "device",
    request_body = RecoveryNewUserShareRequest,
    responses(
        (status = 200, description = "The session completed: the device's new share, same public key", body = UserShareResponse),
        (status = 400, description = "invalid_argument (body, session id, share_data, user_public_key), wrong session type", body = ErrorResponse),
        (status = 401, description = "invalid_api_key (key or access token), invalid_join_token", body = ErrorResponse),
        (status = 403, description = "permission_denied: the access token is for another account", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the session has started, or the party has joined", body = ErrorResponse),
        (status = 410, description = "session_expired", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "protocol_failed", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the Server Party API or the coordinator is unreachable", body = ErrorResponse),
        (status = 504, description = "timeout", body = ErrorResponse),
    ),
    security(("api_key" = []), ("access_token" = []))
)]
pub async fn recovery_new_user_share(
    State(state): State<SharedState>,
    Extension(who): Extension<RelayCaller>,
    ApiJson(req): ApiJson<RecoveryNewUserShareRequest>,
) -> Result<Response, ApiError> {
    relay(&state, &who, RECOVERY_PATH, &req.session_id, &req).await
}

/// `POST /api/v1/mpc/sign`: without `share_data`, the session (guide §5.2 step 2); with it on
/// a participant, the whole signature in one call (guide §3.2): the session is created, each
/// participant with `share_data` takes part through the Server Party API, the server parties
/// by themselves, and the answer is the completed session with `signature`, `r`, `s`, `v`.
pub(crate) async fn sign(
    state: &SharedState,
    req: &SignRequest,
) -> Result<(SignOutcome, AuditTarget), ApiError> {
    let devices: Vec<(String, String)> = req
        .participants
        .iter()
        .filter_map(|p| {
            p.share_data
                .as_ref()
                .map(|share| (p.party_id.clone(), share.0.clone()))
        })
        .collect();
    let unsigned = |session| SignOutcome {
        session,
        signature: None,
        r: None,
        s: None,
        v: None,
    };
    if devices.is_empty() {
        let (session, target) = state.service.sign(req).await?;
        return Ok((unsigned(session), target));
    }
    // Refused before a session exists.
    let client = client(state)?.clone();
    let (mut session, target) = state.service.sign(req).await?;
    let account = AccountId(session.account_id);
    // The caller holds an API key (the route's middleware checked it).
    let token = mint(state, account)?;
    let mut calls = JoinSet::new();
    for (party, share_data) in devices {
        // The coordinator keys join tokens by the canonical party id.
        let party = PartyId::parse(&party)?.to_string();
        let join_token =
            session.join_tokens.get(&party).cloned().ok_or_else(|| {
                ApiError::internal(&format_args!("no join token for signer {party}"))
            })?;
        let body = SignWithUserShareRequest {
            session_id: session.session_id.to_string(),
            party_id: party,
            join_token,
            share_data,
            message_hash: session.message_hash.clone(),
        };
        let (client, token) = (client.clone(), token.clone());
        calls.spawn(async move {
            client
                .post(SIGN_PATH, &token, &body)
                .await?
                .into_result::<SignatureResponse>()
        });
    }
    // Every device answers with the session's one signature; the first failure ends the
    // others (dropping their requests makes their parties report a failure at once).
    let mut signature: Option<SignatureResponse> = None;
    while let Some(joined) = calls.join_next().await {
        let answer = joined.map_err(|e| ApiError::internal(&e))??;
        if signature
            .as_ref()
            .is_some_and(|s| s.r != answer.r || s.s != answer.s)
        {
            return Err(ApiError::internal(&"devices answered different signatures"));
        }
        signature.get_or_insert(answer);
    }
    let signature = signature.ok_or_else(|| ApiError::internal(&"no device answered"))?;
    session.status = "completed".into();
    Ok((
        SignOutcome {
            session,
            signature: Some(signature.signature),
            r: Some(signature.r),
            s: Some(signature.s),
            v: Some(u32::from(signature.v)),
        },
        target,
    ))
}
