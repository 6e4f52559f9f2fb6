//! The OpenAPI document (`/openapi.json`), generated from the handlers' annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, admin, admin_console, mpc, parties, relay, webhooks};
use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MPC-System Account Service",
        description = "The public entry of MPC-System: accounts, keygen and sign orchestration, \
                       API keys, audit log, and the device operations of the Server Party API \
                       under the same paths: one base URL for a wallet back end. Every call but \
                       `/api/v1/access-token-key` needs `X-API-Key` (the device operations also \
                       take a scoped access token as `Authorization: Bearer`). Errors are \
                       `{\"error\": {\"code\", \"message\"}}`."
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
        relay::generate_user_share,
        relay::sign_with_user_share,
        relay::refresh_with_user_share,
        relay::recovery_new_user_share,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::delete_webhook,
        webhooks::list_deliveries,
    ),
    components(schemas(
        api::KeygenRequest,
        api::KeygenParticipant,
        api::KeygenResponse,
        api::SignRequest,
        api::SignParticipant,
        api::SignResponse,
        api::SignOutcome,
        server_party_api::GenerateUserShareRequest,
        server_party_api::SignWithUserShareRequest,
        server_party_api::RefreshWithUserShareRequest,
        server_party_api::RecoveryNewUserShareRequest,
        server_party_api::UserShareResponse,
        server_party_api::SignatureResponse,
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
        webhooks::CreateWebhookRequest,
        webhooks::WebhookView,
        webhooks::CreatedWebhook,
        webhooks::WebhookList,
        webhooks::AttemptView,
        webhooks::DeliveryView,
        webhooks::DeliveryList,
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
        (name = "device", description = "A user device's part of a session, relayed to the Server Party API (same paths and answers; guide §5.1 step 2, §5.2 step 3)"),
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
        components.add_security_scheme(
            "access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A scoped access token (POST /api/v1/accounts/{id}/access-tokens): the \
                         device operations of that account's sessions only",
                    ))
                    .build(),
            ),
        );
    }
}
