//! Request and response bodies of the HTTP API, in the integration guide's JSON shapes
//! (§3, §5.1, §5.2), with their OpenAPI schemas.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A party of a new key (guide §5.1 step 1). `device_id` and `platform` are accepted and
/// ignored: the service records the device type only.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct KeygenParticipant {
    #[schema(example = "user_device_12345")]
    pub party_id: String,
    /// `server` (a server party), `recovery` (an offline backup), or the device's platform
    /// (`android`, `ios`, …).
    #[serde(default)]
    #[schema(example = "android")]
    pub device_type: Option<String>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct KeygenRequest {
    #[schema(example = 3)]
    pub threshold_n: u64,
    #[schema(example = 2)]
    pub threshold_t: u64,
    /// Exactly `threshold_n` parties; indices are assigned in this order (0, 1, …).
    pub participants: Vec<KeygenParticipant>,
    /// Optional; unique when given.
    #[serde(default)]
    pub username: Option<String>,
    /// Optional; unique when given.
    #[serde(default)]
    pub email: Option<String>,
}

/// Guide §5.1 step 1, plus `account_id` and `expires_at`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct KeygenResponse {
    pub session_id: Uuid,
    #[schema(example = "keygen")]
    pub session_type: String,
    pub threshold_n: u16,
    pub threshold_t: u16,
    /// party id → join token. Secret: hand each token to its party only.
    pub join_tokens: BTreeMap<String, String>,
    #[schema(example = "created")]
    pub status: String,
    /// The new account (`pending` until the keygen completes).
    pub account_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// A signer (guide §3.2, §5.2 step 2). With `share_data` (a device's stored share, as in the
/// guide's SDK examples) the Account Service runs this party's part through the Server Party
/// API and answers with the signature in one call; the share is never stored or logged.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct SignParticipant {
    #[schema(example = "user_device_12345")]
    pub party_id: String,
    #[serde(default)]
    pub device_type: Option<String>,
    /// The device's `share_data` (hex) from `generate-user-share`. Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub share_data: Option<ShareData>,
}

/// A device's wrapped share in a request: passed on, never logged (`Debug` shows
/// `[REDACTED]`).
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct ShareData(pub String);

impl std::fmt::Debug for ShareData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// `GET /api/v1/mpc/sessions/{id}?wait=SECONDS`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Long poll: answer as soon as the session is final (completed, failed, expired), or with
    /// its current state after this many seconds (0 to 60; default 0, at once).
    #[param(minimum = 0, maximum = 60)]
    pub wait: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct SignRequest {
    pub account_id: String,
    /// 32 bytes as 64 hex characters; a `0x` prefix is accepted and stripped.
    #[schema(example = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90")]
    pub message_hash: String,
    /// Exactly `threshold_t` parties of the account.
    pub participants: Vec<SignParticipant>,
}

/// Guide §5.2 step 2, plus `expires_at`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct SignResponse {
    pub session_id: Uuid,
    #[schema(example = "sign")]
    pub session_type: String,
    pub account_id: Uuid,
    /// Hex, without `0x`.
    pub message_hash: String,
    pub threshold_t: u16,
    /// party id → join token. Secret: hand each token to its party only.
    pub join_tokens: BTreeMap<String, String>,
    pub status: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/mpc/sign`: the session (guide §5.2 step 2); when a participant brought
/// `share_data`, the session has completed and the signature comes with it (guide §3.2 output).
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct SignOutcome {
    #[serde(flatten)]
    pub session: SignResponse,
    /// With `share_data`: the signature, DER hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// With `share_data`: 32 bytes hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r: Option<String>,
    /// With `share_data`: 32 bytes hex, low-s (EIP-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<String>,
    /// With `share_data`: the recovery id (0 or 1): `ecrecover(message_hash, r, s, v)` is the
    /// account's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
}

/// `POST /api/v1/accounts/{id}/recover`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct RecoverRequest {
    /// The party whose share is lost.
    pub lost_party_id: String,
    /// Who gets the rebuilt share, at the lost party's index (may be the same id).
    pub new_party_id: String,
    /// The new party's device type; default: the lost party's.
    #[serde(default)]
    pub device_type: Option<String>,
    /// At least `threshold_t` of the other parties; default: the first `threshold_t` of them.
    #[serde(default)]
    pub helpers: Option<Vec<String>>,
}

/// A refresh or recovery session just created.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct SessionCreatedResponse {
    pub session_id: Uuid,
    #[schema(example = "refresh")]
    pub session_type: String,
    pub account_id: Uuid,
    pub threshold_n: u16,
    pub threshold_t: u16,
    /// party id → join token. Secret: hand each token to its party only.
    pub join_tokens: BTreeMap<String, String>,
    pub status: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ParticipantView {
    pub party_id: String,
    pub party_index: u32,
    pub device_type: Option<String>,
    /// `invited`, `joined`, `ready`, `computing`, `completed`, `failed`.
    pub status: String,
    pub joined_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/mpc/sessions/{id}`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct SessionView {
    pub session_id: Uuid,
    /// `keygen`, `sign`, `refresh`, `recovery`.
    pub session_type: String,
    /// `created`, `waiting`, `in_progress`, `completed`, `failed`, `expired`.
    pub status: String,
    pub threshold_n: u32,
    pub threshold_t: u32,
    /// The account whose key the session creates or uses.
    pub account_id: Option<String>,
    pub participants: Vec<ParticipantView>,
    pub message_hash: Option<String>,
    /// Uncompressed SEC1 (`04…`), hex.
    pub public_key: Option<String>,
    /// EIP-55 checksummed.
    pub ethereum_address: Option<String>,
    /// Sign, once completed: DER, hex.
    pub signature: Option<String>,
    pub r: Option<String>,
    pub s: Option<String>,
    /// Recovery id (0 or 1): `ecrecover(message_hash, r, s, v)` is the group key.
    pub v: Option<u32>,
    pub failure_reason: Option<String>,
    pub blamed_party_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Where a share lives; never the share.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ShareView {
    pub party_id: String,
    pub party_index: u16,
    /// `user_device`, `server`, `recovery`.
    pub share_type: String,
    pub device_type: Option<String>,
    #[schema(example = "server_party_1 (encrypted, party database)")]
    pub storage_location: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AccountView {
    pub account_id: Uuid,
    pub username: Option<String>,
    pub email: Option<String>,
    /// `pending` (keygen running), `active`, `suspended`, `failed`.
    pub status: String,
    pub threshold_n: u16,
    pub threshold_t: u16,
    pub public_key: Option<String>,
    pub ethereum_address: Option<String>,
    pub keygen_session_id: Option<Uuid>,
    /// Why the keygen failed.
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Active shares (and, with `?include_inactive=true`, retired ones). Only on a single
    /// account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<Vec<ShareView>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<AccountView>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountListQuery {
    /// `pending`, `active`, `suspended` or `failed`.
    pub status: Option<String>,
    /// 1 to 1000; default 50.
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// Also list retired shares (e.g. the lost party's after a recovery).
    pub include_inactive: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AccessTokenResponse {
    /// EdDSA JWT for the Server Party API (`Authorization: Bearer …`).
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    #[schema(example = "party-api")]
    pub scope: String,
    pub account_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AccessTokenKey {
    #[schema(example = "Ed25519")]
    pub algorithm: String,
    /// 32 bytes, hex.
    pub public_key: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct CreateApiKeyRequest {
    #[schema(example = "wallet-service")]
    pub name: String,
    /// `operator` (default) or `admin`.
    #[serde(default)]
    pub scope: Option<String>,
    /// When the key stops working; e.g. 90 days for the guide's rotation (§7.1).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Alternative to `expires_at`.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The key itself is in `api_key`, shown this once; only its hash is stored.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub api_key: String,
    pub key: ApiKeyView,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKeyView>,
}

#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only statuses at least this (e.g. 400 for failures).
    pub status_min: Option<u16>,
    pub status_max: Option<u16>,
    /// e.g. `keygen`, `sign`, `session.failed`, `api_key.create`.
    pub operation: Option<String>,
    pub session_id: Option<String>,
    pub account_id: Option<String>,
    /// RFC 3339, e.g. `2025-12-05T10:00:00Z`.
    pub since: Option<String>,
    pub until: Option<String>,
    /// The `next_before_id` of the previous page.
    pub before_id: Option<i64>,
    /// 1 to 1000; default 100.
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub session_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub operation: String,
    /// The caller's API key id (or `bootstrap`).
    pub user_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// Secrets (shares, tokens, keys) redacted.
    pub request_body: Option<serde_json::Value>,
    pub response_status: Option<u16>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct AuditLogPage {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `before_id` for the next (older) page; absent on the last page.
    pub next_before_id: Option<i64>,
}

/// Every error: `{"error": {"code": "session_not_found", "message": "session not found"}}`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `session_not_found`, `insufficient_participants`,
    /// `invalid_join_token`, `account_not_found`, `invalid_api_key`, `invalid_threshold`,
    /// `duplicate_party_id`, `invalid_message_hash`, `account_suspended`, …
    #[schema(example = "session_not_found")]
    pub code: String,
    /// The guide's wording where it has one.
    #[schema(example = "session not found")]
    pub message: String,
}
