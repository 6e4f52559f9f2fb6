//! The OpenAPI document (`/openapi.json`), generated from the handlers' annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, admin, admin_console, mpc, parties};
use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MPC-System Account Service",
        description = "The public entry of MPC-System: accounts, keygen and sign orchestration, \
                       API keys, audit log. Every call but `/api/v1/access-token-key` needs \
                       `X-API-Key`. Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        mpc::keygen,
        mpc::sign,
        mpc::get_session,
        accounts::list_accounts,
        accounts::get_account,
        accounts::suspend,
        accounts::activate,
        accounts::refresh,
        accounts::recover,
        accounts::create_access_token,
        accounts::access_token_key,
        admin::create_api_key,
        admin::list_api_keys,
        admin::revoke_api_key,
        admin::audit_logs,
        parties::list_parties,
        parties::api_key_self,
        admin_console::overview,
        admin_console::list_sessions,
        admin_console::search_accounts,
    ),
    components(schemas(
        api::KeygenRequest,
        api::KeygenParticipant,
        api::KeygenResponse,
        api::SignRequest,
        api::SignParticipant,
        api::SignResponse,
        api::RecoverRequest,
        api::SessionCreatedResponse,
        api::SessionView,
        api::ParticipantView,
        api::AccountView,
        api::ShareView,
        api::AccountList,
        api::AccessTokenResponse,
        api::AccessTokenKey,
        api::CreateApiKeyRequest,
        api::CreatedApiKey,
        api::ApiKeyView,
        api::ApiKeyList,
        api::AuditEntryView,
        api::AuditLogPage,
        api::ErrorResponse,
        api::ErrorDetail,
        parties::PartyView,
        parties::PartyList,
        parties::ApiKeySelf,
        admin_console::Overview,
        admin_console::SessionRow,
        admin_console::SessionPage,
        admin_console::SessionCountView,
        admin_console::AccountCountView,
        crate::console::figures::Figures,
        crate::console::figures::Latency,
        crate::console::figures::SourceStatus,
    )),
    modifiers(&ApiKeyHeader),
    tags(
        (name = "mpc", description = "Keygen and sign sessions (integration guide §5)"),
        (name = "accounts", description = "Accounts, share metadata, refresh, recovery, access tokens"),
        (name = "admin", description = "API keys and the audit log (admin keys only)"),
        (name = "parties", description = "The server parties registered with the coordinator"),
        (name = "console", description = "What the operator console (/admin) reads: overview, sessions, account search (admin keys only), parties"),
    )
)]
pub struct ApiDoc;

struct ApiKeyHeader;

impl Modify for ApiKeyHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}
