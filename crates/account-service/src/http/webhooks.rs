//! `POST/GET /api/v1/webhooks`, `DELETE /api/v1/webhooks/{id}`,
//! `GET /api/v1/webhooks/{id}/deliveries`: a key's webhooks, only ever its own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mpc_proto::{ApiError, ErrorCode};
use mpc_service::ApiJson;
use mpc_store::webhook::WebhookRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{ApiPath, SharedState};
use crate::api::ErrorResponse;
use crate::keys::Caller;

/// Deliveries listed per webhook, newest first.
const DELIVERIES_SHOWN: u32 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// Where deliveries are POSTed: an http or https URL.
    #[schema(example = "https://wallet.example.com/mpc-events")]
    pub url: String,
    /// Any of `session.completed`, `session.failed`, `session.expired`, `account.activated`.
    pub events: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The new webhook with its `secret`, shown this once: deliveries are signed with it
/// (`X-MPC-Signature: v1=` hex HMAC-SHA256 of `X-MPC-Timestamp` + `.` + body).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    /// The receiver's status; absent when it did not answer (timeout, refused).
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Also the `event_id` of the body.
    pub id: Uuid,
    pub event: String,
    pub session_id: Uuid,
    pub account_id: Uuid,
    /// `pending`, `delivered` or `failed` (given up after the retry window).
    pub status: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

fn view(w: &WebhookRecord) -> WebhookView {
    WebhookView {
        id: w.id,
        url: w.url.clone(),
        events: w.events.clone(),
        created_at: w.created_at,
    }
}

fn webhook_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "webhook not found")
}

/// Register a webhook for the sessions this API key starts.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Registered; `secret` is shown this once", body = CreatedWebhook),
        (status = 400, description = "invalid_argument: invalid webhook url (not http/https, no host, credentials), unknown or no events", body = ErrorResponse),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 429, description = "resource_exhausted: the key has the most webhooks allowed (MPC_WEBHOOK_MAX_PER_KEY)", body = ErrorResponse),
        (status = 503, description = "unavailable: the database is unreachable", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn create_webhook(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<CreateWebhookRequest>,
) -> Result<Response, ApiError> {
    let (hook, secret) = state
        .service
        .webhooks
        .register(&caller.key_id, &req.url, &req.events)
        .await?;
    let body = CreatedWebhook {
        webhook: view(&hook),
        secret: secret.to_string(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// This API key's webhooks (never their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The key's webhooks, oldest first", body = WebhookList),
        (status = 401, description = "invalid_api_key", body = ErrorResponse),
        (status = 503, description = "A service it needs is unavailable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn list_webhooks(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<WebhookList>, ApiError> {
    let hooks = state
        .service
        .webhooks
        .store
        .list_webhooks(&caller.key_id)
        .await?;
    Ok(Json(WebhookList {
        webhooks: hooks.iter().map(view).collect(),
    }))
}

/// Remove one of this key's webhooks, with its pending deliveries.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{webhook_id}",
    tag = "webhooks",
    params(("webhook_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "not_found: no such webhook of this key", body = ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorResponse),
        (status = 503, description = "A service it needs is unavailable", body = ErrorResponse),
        (status = 400, description = "Malformed path parameter", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn delete_webhook(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = webhook_id(&raw)?;
    if state
        .service
        .webhooks
        .store
        .delete_webhook(id, &caller.key_id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// The webhook's latest deliveries (at most 100, newest first), each with its attempts.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{webhook_id}/deliveries",
    tag = "webhooks",
    params(("webhook_id" = Uuid, Path)),
    responses(
        (status = 200, description = "Deliveries and their attempts", body = DeliveryList),
        (status = 404, description = "not_found: no such webhook of this key", body = ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorResponse),
        (status = 503, description = "A service it needs is unavailable", body = ErrorResponse),
        (status = 400, description = "Malformed path parameter", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn list_deliveries(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    let id = webhook_id(&raw)?;
    let store = &state.service.webhooks.store;
    if store.get_webhook(id, &caller.key_id).await?.is_none() {
        return Err(not_found());
    }
    let deliveries = store.deliveries(id, DELIVERIES_SHOWN).await?;
    Ok(Json(DeliveryList {
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                event: d.event,
                session_id: d.session_id.0,
                account_id: d.account_id.0,
                status: d.status.as_str().to_owned(),
                next_attempt_at: d.next_attempt_at,
                created_at: d.created_at,
                updated_at: d.updated_at,
                attempts: d
                    .attempts
                    .into_iter()
                    .map(|a| AttemptView {
                        attempt: a.attempt,
                        attempted_at: a.attempted_at,
                        status_code: a.status_code,
                        error: a.error,
                        duration_ms: a.duration_ms,
                    })
                    .collect(),
            })
            .collect(),
    }))
}
