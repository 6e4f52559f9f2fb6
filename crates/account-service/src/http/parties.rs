//! INTERIM `GET /api/v1/parties`: the parties and their health, from probing each one
//! ([`crate::console::parties`]). The party registry of the hardening work answers the same
//! shape from the coordinator's registrations and replaces this file.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use mpc_service::ApiJson;

use super::SharedState;
use crate::api::ErrorResponse;
use crate::console::parties::PartyList;

pub(crate) fn routes() -> Router<SharedState> {
    Router::new().route("/api/v1/parties", get(list_parties))
}

/// The server parties and the Server Party API: live, last seen, sessions running, identity key.
#[utoipa::path(
    get,
    path = "/api/v1/parties",
    tag = "console",
    responses(
        (status = 200, description = "The parties", body = PartyList),
        (status = 401, description = "Missing or invalid API key", body = ErrorResponse),
    ),
    security(("api_key" = []))
)]
pub async fn list_parties(State(state): State<SharedState>) -> ApiJson<PartyList> {
    ApiJson(state.console.parties.parties().await)
}
