//! The OpenAPI document (`/openapi.json`, browsable at `/docs/`).
//!
//! The operations are described on the stubs below rather than on the handlers in `http.rs`, so
//! that the contract reads in one place; `tests/openapi.rs` checks that every documented path is
//! routed and that the bodies the API returns match their schemas (and `.ci/run` runs
//! schemathesis against it).

use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::api::{
    GenerateUserShareRequest, IdentityResponse, RecoveryNewUserShareRequest,
    RefreshWithUserShareRequest, SignWithUserShareRequest, SignatureResponse, UserShareResponse,
};

/// Every error: `{"error": {"code": "session_not_found", "message": "session not found"}}`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_join_token`, `session_not_found`, `protocol_failed`,
    /// `overloaded`, …
    #[schema(example = "session_not_found")]
    pub code: String,
    /// The guide's wording where it has one.
    #[schema(example = "session not found")]
    pub message: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MPC-System Server Party API",
        description = "Takes part in keygen, sign, refresh and recovery sessions for a user device \
                       and hands the device's share back (wrapped, optionally sealed to the \
                       device); stores nothing. Every operation is synchronous: it answers when \
                       the session has completed. `X-API-Key` or `Authorization: Bearer <access \
                       token>`. Errors are `{\"error\": {\"code\", \"message\"}}`. Wallet back \
                       ends usually call these through the Account Service (same paths)."
    ),
    paths(
        generate_user_share,
        sign_with_user_share,
        refresh_with_user_share,
        recovery_new_user_share,
        identity
    ),
    components(schemas(
        GenerateUserShareRequest,
        SignWithUserShareRequest,
        RefreshWithUserShareRequest,
        RecoveryNewUserShareRequest,
        UserShareResponse,
        SignatureResponse,
        IdentityResponse,
        ErrorResponse,
        ErrorDetail,
    )),
    modifiers(&SecuritySchemes),
    tags((name = "device", description = "Sessions on behalf of a user device (guide §5.1 step 2, §5.2 step 3)"))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
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
                        "A scoped access token from the Account Service \
                         (POST /api/v1/accounts/{id}/access-tokens): only for that account's \
                         sessions",
                    ))
                    .build(),
            ),
        );
    }
}

/// The device's part of a keygen (guide §5.1 step 2): answers when the key exists.
#[utoipa::path(
    post,
    path = "/api/v1/keygen/generate-user-share",
    tag = "device",
    request_body = GenerateUserShareRequest,
    responses(
        (status = 200, description = "The key exists; the device's share", body = UserShareResponse),
        (status = 400, description = "invalid_argument (body, session id, party id, user_public_key); a join token of another session type", body = ErrorResponse),
        (status = 401, description = "invalid_api_key (key or access token); invalid_join_token", body = ErrorResponse),
        (status = 403, description = "permission_denied: the access token is for another account", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the session has started, or the party has joined", body = ErrorResponse),
        (status = 410, description = "session_expired", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "protocol_failed: keygen failed (reason, blamed party)", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the coordinator or router is unreachable, or the API is stopping", body = ErrorResponse),
        (status = 504, description = "timeout: the session did not finish within the request's bound", body = ErrorResponse),
    ),
    security(("api_key" = []), ("access_token" = []))
)]
#[allow(dead_code)]
fn generate_user_share() {}

/// The device's part of a signature (guide §5.2 step 3): answers with the signature once the
/// coordinator has verified it.
#[utoipa::path(
    post,
    path = "/api/v1/sign/with-user-share",
    tag = "device",
    request_body = SignWithUserShareRequest,
    responses(
        (status = 200, description = "The session completed: the signature", body = SignatureResponse),
        (status = 400, description = "invalid_argument (body, ids, share_data that does not open as this party's share); invalid_message_hash; a join token of another session type", body = ErrorResponse),
        (status = 401, description = "invalid_api_key (key or access token); invalid_join_token", body = ErrorResponse),
        (status = 403, description = "permission_denied: the access token is for another account", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the session has started, or the party has joined", body = ErrorResponse),
        (status = 410, description = "session_expired", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "protocol_failed: sign failed (reason, blamed party)", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the coordinator or router is unreachable, or the API is stopping", body = ErrorResponse),
        (status = 504, description = "timeout: the session did not finish within the request's bound", body = ErrorResponse),
    ),
    security(("api_key" = []), ("access_token" = []))
)]
#[allow(dead_code)]
fn sign_with_user_share() {}

/// The device's part of a refresh: new shares for the same key.
#[utoipa::path(
    post,
    path = "/api/v1/refresh/with-user-share",
    tag = "device",
    request_body = RefreshWithUserShareRequest,
    responses(
        (status = 200, description = "The session completed: the device's new share", body = UserShareResponse),
        (status = 400, description = "invalid_argument (body, ids, share_data, user_public_key); a join token of another session type", body = ErrorResponse),
        (status = 401, description = "invalid_api_key (key or access token); invalid_join_token", body = ErrorResponse),
        (status = 403, description = "permission_denied: the access token is for another account", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the session has started, or the party has joined", body = ErrorResponse),
        (status = 410, description = "session_expired", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "protocol_failed", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the coordinator or router is unreachable, or the API is stopping", body = ErrorResponse),
        (status = 504, description = "timeout: the session did not finish within the request's bound", body = ErrorResponse),
    ),
    security(("api_key" = []), ("access_token" = []))
)]
#[allow(dead_code)]
fn refresh_with_user_share() {}

/// The device's part of a recovery: without `share_data` the device is the new holder of the
/// lost index; with it, the device holds a share and helps. Same public key either way.
#[utoipa::path(
    post,
    path = "/api/v1/recovery/new-user-share",
    tag = "device",
    request_body = RecoveryNewUserShareRequest,
    responses(
        (status = 200, description = "The session completed: the device's new share", body = UserShareResponse),
        (status = 400, description = "invalid_argument (body, ids, share_data, user_public_key); a join token of another session type", body = ErrorResponse),
        (status = 401, description = "invalid_api_key (key or access token); invalid_join_token", body = ErrorResponse),
        (status = 403, description = "permission_denied: the access token is for another account", body = ErrorResponse),
        (status = 404, description = "session not found", body = ErrorResponse),
        (status = 409, description = "failed_precondition: the session has started, or the party has joined", body = ErrorResponse),
        (status = 410, description = "session_expired", body = ErrorResponse),
        (status = 413, description = "payload_too_large", body = ErrorResponse),
        (status = 422, description = "protocol_failed", body = ErrorResponse),
        (status = 429, description = "overloaded: retry after `Retry-After` seconds", body = ErrorResponse),
        (status = 503, description = "unavailable: the coordinator or router is unreachable, or the API is stopping", body = ErrorResponse),
        (status = 504, description = "timeout: the session did not finish within the request's bound", body = ErrorResponse),
    ),
    security(("api_key" = []), ("access_token" = []))
)]
#[allow(dead_code)]
fn recovery_new_user_share() {}

/// The API's Ed25519 identity key, which the server parties pin as a delegate. Public.
#[utoipa::path(
    get,
    path = "/api/v1/identity",
    tag = "device",
    responses((status = 200, description = "The identity key", body = IdentityResponse)),
)]
#[allow(dead_code)]
fn identity() {}
