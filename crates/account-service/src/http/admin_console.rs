//! The operator console's read-only admin endpoints: the overview, sessions under filters, and
//! account search. Admin keys only. Nothing here returns a share or a join token.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{AccountId, ApiError, SessionType};
use mpc_service::ApiJson;
use mpc_store::account::{
    AccountSearch, AccountSessionRecord, AccountSessionStatus, AccountStatus, SessionFilter,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{ApiQuery, SharedState};
use crate::api::{AccountList, ErrorResponse};
use crate::console::figures::Figures;
use crate::keys::Caller;
use crate::service::AccountService;

/// The overview counts sessions created this long ago or since.
const OVERVIEW_HOURS: i64 = 24;
/// At most this many running sessions are shown (and asked about) on the overview.
const LIVE_LIMIT: u32 = 50;
/// A coordinator that does not answer in time leaves a session's live status unknown.
const LIVE_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/admin/overview", get(overview))
        .route("/api/v1/admin/sessions", get(list_sessions))
        .route("/api/v1/admin/accounts", get(search_accounts))
}

/// A session the Account Service started, as the console lists it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionRow {
    pub session_id: Uuid,
    pub account_id: Uuid,
    /// `keygen`, `sign`, `refresh`, `recovery`.
    pub session_type: String,
    /// As far as the account is concerned: `pending`, `completed`, `failed`, `expired`.
    pub status: String,
    /// While pending, the coordinator's status (`created`, `waiting`, `in_progress`, or already
    /// `completed`/`failed`/`expired` when its outcome is on the way); `null` when unknown.
    pub live_status: Option<String>,
    pub failure_reason: Option<String>,
    pub blamed_party_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When its outcome was applied (or it was created, while pending).
    pub updated_at: DateTime<Utc>,
    /// Recovery: whose share was rebuilt, and for whom.
    pub lost_party_id: Option<String>,
    pub new_party_id: Option<String>,
}

fn row(s: &AccountSessionRecord) -> SessionRow {
    SessionRow {
        session_id: s.session_id.0,
        account_id: s.account_id.0,
        session_type: s.session_type.as_str().to_owned(),
        status: s.status.to_string(),
        live_status: None,
        failure_reason: s.failure_reason.clone(),
        blamed_party_id: s.blamed_party.as_ref().map(ToString::to_string),
        created_at: s.created_at,
        updated_at: s.updated_at,
        lost_party_id: s.recovery.as_ref().map(|r| r.lost_party_id.to_string()),
        new_party_id: s.recovery.as_ref().map(|r| r.new_party_id.to_string()),
    }
}

/// Asks the coordinator about every pending row at once; an outcome found on the way is applied
/// (as a session read would), so the next poll shows it.
async fn with_live_status(service: &Arc<AccountService>, rows: &mut [SessionRow]) {
    let mut asks = JoinSet::new();
    for (i, r) in rows.iter().enumerate() {
        if r.status != AccountSessionStatus::Pending.as_str() {
            continue;
        }
        let service = service.clone();
        let id = mpc_proto::SessionId(r.session_id);
        asks.spawn(async move {
            let info =
                tokio::time::timeout(LIVE_STATUS_TIMEOUT, service.coordinator.get_session(id))
                    .await
                    .ok()?
                    .ok()?;
            if let Some(observed) = crate::outcomes::Observed::from_info(&info)
                && let Err(e) = service.observe(&observed).await
            {
                tracing::warn!(error = %e, session_id = %id, "could not apply session outcome");
            }
            let view = super::mpc::session_view(&info).ok()?;
            Some((i, view.status))
        });
    }
    while let Some(done) = asks.join_next().await {
        if let Ok(Some((i, status))) = done
            && let Some(r) = rows.get_mut(i)
        {
            r.live_status = Some(status);
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionPage {
    pub sessions: Vec<SessionRow>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// `keygen`, `sign`, `refresh` or `recovery`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub session_type: Option<String>,
    /// `pending`, `completed`, `failed` or `expired`.
    pub status: Option<String>,
    pub account_id: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created at or before (RFC 3339).
    pub until: Option<String>,
    /// 1 to 200; default 50.
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

fn non_blank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn parse_time(raw: Option<&str>, what: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    non_blank(raw)
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

/// Sessions the Account Service started, newest first; pending ones with the coordinator's
/// live status.
#[utoipa::path(
    get,
    path = "/api/v1/admin/sessions",
    tag = "console",
    params(SessionQuery),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 400, description = "Bad filter", body = ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorResponse),
        (status = 403, description = "Not an admin key", body = ErrorResponse),
        (status = 503, description = "A service it needs is unavailable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn list_sessions(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> Result<ApiJson<SessionPage>, ApiError> {
    caller.require_admin()?;
    let session_type = non_blank(q.session_type.as_deref())
        .map(|t| {
            t.parse::<SessionType>().map_err(|_| {
                ApiError::invalid_argument("type must be one of keygen, sign, refresh, recovery")
            })
        })
        .transpose()?;
    let status = non_blank(q.status.as_deref())
        .map(|s| {
            s.parse::<AccountSessionStatus>().map_err(|_| {
                ApiError::invalid_argument(
                    "status must be one of pending, completed, failed, expired",
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let offset = q.offset.unwrap_or(0);
    let filter = SessionFilter {
        session_type,
        status,
        account_id: non_blank(q.account_id.as_deref())
            .map(AccountId::parse)
            .transpose()?,
        since: parse_time(q.since.as_deref(), "since")?,
        until: parse_time(q.until.as_deref(), "until")?,
        limit,
        offset,
    };
    let (sessions, total) = state.service.store.list_sessions(&filter).await?;
    let mut sessions: Vec<SessionRow> = sessions.iter().map(row).collect();
    with_live_status(&state.service, &mut sessions).await;
    Ok(ApiJson(SessionPage {
        sessions,
        total,
        limit,
        offset,
    }))
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountSearchQuery {
    /// An account id, part of a username or email, or an Ethereum address (any case, `0x`
    /// optional). Blank lists every account.
    pub q: Option<String>,
    /// `pending`, `active`, `suspended` or `failed`.
    pub status: Option<String>,
    /// 1 to 200; default 50.
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Find accounts by id, username, email or address, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/accounts",
    tag = "console",
    params(AccountSearchQuery),
    responses(
        (status = 200, description = "A page of accounts", body = AccountList),
        (status = 400, description = "Bad query", body = ErrorResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorResponse),
        (status = 403, description = "Not an admin key", body = ErrorResponse),
        (status = 503, description = "A service it needs is unavailable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn search_accounts(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<AccountSearchQuery>,
) -> Result<ApiJson<AccountList>, ApiError> {
    caller.require_admin()?;
    let text = non_blank(q.q.as_deref()).map(str::to_owned);
    if text.as_ref().is_some_and(|t| t.chars().count() > 255) {
        return Err(ApiError::invalid_argument(
            "q must be at most 255 characters",
        ));
    }
    let status = non_blank(q.status.as_deref())
        .map(|s| {
            s.parse::<AccountStatus>().map_err(|_| {
                ApiError::invalid_argument(
                    "status must be one of pending, active, suspended, failed",
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let offset = q.offset.unwrap_or(0);
    let (accounts, total) = state
        .service
        .store
        .search_accounts(&AccountSearch {
            text,
            status,
            limit,
            offset,
        })
        .await?;
    Ok(ApiJson(AccountList {
        accounts: accounts
            .iter()
            .map(|a| super::accounts::account_view(a, None))
            .collect(),
        total,
        limit,
        offset,
    }))
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionCountView {
    pub session_type: String,
    pub status: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountCountView {
    pub status: String,
    pub count: u64,
}

/// `GET /api/v1/admin/overview`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Overview {
    pub generated_at: DateTime<Utc>,
    /// `session_counts` cover sessions created in the last this many hours.
    pub window_hours: i64,
    pub session_counts: Vec<SessionCountView>,
    /// Pending sessions (newest first, at most 50) with the coordinator's live status.
    pub live_sessions: Vec<SessionRow>,
    /// All pending sessions.
    pub live_total: u64,
    pub accounts: Vec<AccountCountView>,
    /// From the coordinator's metrics (`MPC_CONSOLE_METRICS_URLS`).
    pub figures: Figures,
}

/// What the console's overview shows: sessions by type and status, the running ones, accounts
/// by status, and the services' figures (signatures per minute, success rate, p50/p95 latency).
#[utoipa::path(
    get,
    path = "/api/v1/admin/overview",
    tag = "console",
    responses(
        (status = 200, description = "The overview", body = Overview),
        (status = 401, description = "Missing or invalid API key", body = ErrorResponse),
        (status = 403, description = "Not an admin key", body = ErrorResponse),
        (status = 503, description = "A service it needs is unavailable", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn overview(
    State(state): State<SharedState>,
    Extension(caller): Extension<Caller>,
) -> Result<ApiJson<Overview>, ApiError> {
    caller.require_admin()?;
    let now = Utc::now();
    let store = &state.service.store;
    let counts = store
        .count_sessions(now - TimeDelta::hours(OVERVIEW_HOURS))
        .await?;
    let (pending, live_total) = store
        .list_sessions(&SessionFilter {
            status: Some(AccountSessionStatus::Pending),
            limit: LIVE_LIMIT,
            ..Default::default()
        })
        .await?;
    let mut live_sessions: Vec<SessionRow> = pending.iter().map(row).collect();
    let (_, figures) = tokio::join!(
        with_live_status(&state.service, &mut live_sessions),
        state.console.figures.figures()
    );
    let accounts = store.count_accounts_by_status().await?;
    Ok(ApiJson(Overview {
        generated_at: now,
        window_hours: OVERVIEW_HOURS,
        session_counts: counts
            .iter()
            .map(|c| SessionCountView {
                session_type: c.session_type.as_str().to_owned(),
                status: c.status.to_string(),
                count: c.count,
            })
            .collect(),
        live_sessions,
        live_total,
        accounts: accounts
            .iter()
            .map(|(status, count)| AccountCountView {
                status: status.to_string(),
                count: *count,
            })
            .collect(),
        figures,
    }))
}
