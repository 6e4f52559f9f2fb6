//! The HTTP API (integration guide §5): routes, the API-key and audit middleware, the
//! OpenAPI document and its browsable UI, and the ops routes.

mod accounts;
mod admin;
pub mod admin_console;
pub mod console_assets;
mod mpc;
pub mod openapi;
mod parties;
pub mod relay;
pub mod webhooks;

pub(crate) use mpc::session_view as mpc_session_view;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use mpc_proto::{AccountId, ApiError, SessionId};
use mpc_service::{
    Metrics, Readiness, catch_panic_layer, http_metrics_layer, not_found_fallback, ops_routes,
    throttle_auth_failures, with_body_limit, with_deadline,
};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::access_token::AccessTokenSigner;
use crate::audit::{AuditState, audit_requests};
use crate::keys::{ApiKeys, require_api_key};
use crate::service::AccountService;

/// What the handlers share.
pub struct AppState {
    pub service: Arc<AccountService>,
    pub keys: Arc<ApiKeys>,
    pub access: AccessTokenSigner,
    pub access_lifetime: Duration,
    /// The operator console's metrics sampler and party probe.
    pub console: Arc<crate::console::Console>,
    /// Where the device operations and one-call signatures go; `None`: they answer 503.
    pub party_api: Option<crate::party_api::PartyApiClient>,
}

pub type SharedState = Arc<AppState>;

/// Query strings, with every rejection as a 400 [`ApiError`] (axum's own is plain text).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Self(q))
            .map_err(|e| {
                ApiError::invalid_argument(format!("invalid query string: {}", e.body_text()))
            })
    }
}

/// Path parameters, with every rejection (e.g. invalid UTF-8 after percent-decoding) as a 400
/// [`ApiError`] (axum's own is plain text).
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Self(p))
            .map_err(|e| ApiError::invalid_argument(format!("invalid path: {}", e.body_text())))
    }
}

pub(crate) fn parse_account_id(raw: &str) -> Result<AccountId, ApiError> {
    AccountId::parse(raw)
}

pub(crate) fn parse_session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw)
}

/// Request-body limits and deadlines (see [`crate::AccountConfig`]).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub body_limit: usize,
    pub share_body_limit: usize,
    pub request_deadline: Duration,
    /// The relayed device operations' own bound (the relay's timeout).
    pub relay_deadline: Duration,
}

/// The whole HTTP application.
pub fn router(
    state: SharedState,
    audit: Arc<AuditState>,
    metrics: &Metrics,
    readiness: Arc<dyn Readiness>,
    limits: Limits,
    throttle: mpc_service::ThrottleState,
) -> Router {
    let Limits {
        body_limit,
        share_body_limit,
        request_deadline,
        relay_deadline,
    } = limits;
    let keys = state.keys.clone();
    // Bodies that carry a device's share (hex, up to ~3 MB for 16 parties) may be larger.
    let shares_limit = DefaultBodyLimit::max(share_body_limit);
    let relayed = Router::new()
        .route(relay::KEYGEN_PATH, post(relay::generate_user_share))
        .route(relay::SIGN_PATH, post(relay::sign_with_user_share))
        .route(relay::REFRESH_PATH, post(relay::refresh_with_user_share))
        .route(relay::RECOVERY_PATH, post(relay::recovery_new_user_share))
        .route_layer(from_fn_with_state(state.clone(), relay::relay_auth))
        .layer(shares_limit)
        .with_state(state.clone());
    let api = Router::new()
        .route("/api/v1/mpc/keygen", post(mpc::keygen))
        .route("/api/v1/mpc/sign", post(mpc::sign).layer(shares_limit))
        .route(mpc::SESSION_PATH, get(mpc::get_session))
        .route("/api/v1/accounts", get(accounts::list_accounts))
        .route("/api/v1/accounts/{account_id}", get(accounts::get_account))
        .route(
            "/api/v1/accounts/{account_id}/suspend",
            post(accounts::suspend),
        )
        .route(
            "/api/v1/accounts/{account_id}/activate",
            post(accounts::activate),
        )
        .route(
            "/api/v1/accounts/{account_id}/refresh",
            post(accounts::refresh),
        )
        .route(
            "/api/v1/accounts/{account_id}/recover",
            post(accounts::recover),
        )
        .route(
            "/api/v1/accounts/{account_id}/access-tokens",
            post(accounts::create_access_token),
        )
        .route(
            "/api/v1/admin/api-keys",
            post(admin::create_api_key).get(admin::list_api_keys),
        )
        .route(
            "/api/v1/admin/api-keys/{key_id}",
            delete(admin::revoke_api_key),
        )
        .route(
            "/api/v1/webhooks",
            post(webhooks::create_webhook).get(webhooks::list_webhooks),
        )
        .route(
            "/api/v1/webhooks/{webhook_id}",
            delete(webhooks::delete_webhook),
        )
        .route(
            "/api/v1/webhooks/{webhook_id}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route("/api/v1/audit-logs", get(admin::audit_logs))
        .route("/api/v1/parties", get(parties::list_parties))
        .route("/api/v1/api-keys/self", get(parties::api_key_self))
        .merge(admin_console::routes())
        .with_state(state.clone())
        // Only matched routes need a key: an unknown path is a 404 for everyone.
        .route_layer(from_fn_with_state(keys, require_api_key))
        .merge(relayed)
        // Outside the key check, so that refused requests are audited too.
        .layer(from_fn_with_state(audit, audit_requests))
        // Outside the audit: a throttled address's refusals are recorded once per window (by
        // the throttle's sink), not once per request.
        .layer(from_fn_with_state(throttle, throttle_auth_failures));
    let public = Router::new()
        .route("/api/v1/access-token-key", get(accounts::access_token_key))
        .with_state(state)
        .merge(console_assets::routes())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::ApiDoc::openapi()));
    let app = api
        .merge(public)
        .merge(ops_routes(metrics.clone(), readiness))
        .fallback(not_found_fallback);
    let deadline = move |req: &axum::extract::Request| {
        let template = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|p| p.as_str());
        match template {
            Some(mpc::SESSION_PATH) => {
                request_deadline + Duration::from_secs(u64::from(mpc::MAX_WAIT_SECONDS))
            }
            t if crate::audit::carries_share(t) => relay_deadline + request_deadline,
            _ => request_deadline,
        }
    };
    with_deadline(with_body_limit(app, body_limit), Arc::new(deadline))
        .layer(catch_panic_layer())
        .layer(http_metrics_layer(metrics))
}
