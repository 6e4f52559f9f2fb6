//! Requests and answers, in the integration guide's JSON shapes and names. `Debug` never shows a
//! share or a join token.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

const REDACTED: &str = "[REDACTED]";

/// A party of a new key (guide §5.1): `device_type` is `server`, `recovery`, or the device's
/// platform (`android`, `ios`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub party_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
}

impl Participant {
    pub fn new(party_id: impl Into<String>, device_type: impl Into<String>) -> Self {
        Self {
            party_id: party_id.into(),
            device_type: Some(device_type.into()),
        }
    }
}

/// `POST /api/v1/mpc/keygen`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeygenRequest {
    pub threshold_n: u16,
    pub threshold_t: u16,
    pub participants: Vec<Participant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The keygen session just created, and the new (pending) account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeygenResponse {
    pub session_id: String,
    pub session_type: String,
    pub threshold_n: u16,
    pub threshold_t: u16,
    /// party id → join token. Secret: hand each to its party only.
    pub join_tokens: BTreeMap<String, String>,
    pub status: String,
    pub account_id: String,
    pub expires_at: String,
}

/// `POST /api/v1/keygen/generate-user-share`: the device's part of a keygen.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateUserShareRequest {
    pub session_id: String,
    pub party_id: String,
    pub join_token: String,
    /// The device's P-256 public key (SEC1 hex): the share comes back sealed to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_public_key: Option<String>,
}

/// The device's share (keygen, refresh, recovery): keep `share_data` on the device.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserShare {
    pub success: bool,
    pub session_id: String,
    pub party_id: String,
    pub party_index: u16,
    /// Hex: the wrapped share (or sealed to `user_public_key`). Secret.
    pub share_data: String,
    /// The group key, uncompressed (`04…`), hex.
    pub public_key: String,
}

impl UserShare {
    /// The EIP-55 Ethereum address of the group key.
    pub fn address(&self) -> Option<String> {
        crate::eth::address_of(&self.public_key)
    }
}

/// A signer. With `share_data` (the device's stored share) the Account Service signs in one call.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignParticipant {
    pub party_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
}

impl SignParticipant {
    /// A server party (it signs by itself).
    pub fn server(party_id: impl Into<String>) -> Self {
        Self {
            party_id: party_id.into(),
            ..Self::default()
        }
    }

    /// A device that brings its share.
    pub fn with_share(party_id: impl Into<String>, share_data: impl Into<String>) -> Self {
        Self {
            party_id: party_id.into(),
            share_data: Some(share_data.into()),
            device_type: None,
        }
    }
}

/// `POST /api/v1/mpc/sign`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    pub account_id: String,
    /// 32 bytes as 64 hex characters (`0x` accepted).
    pub message_hash: String,
    pub participants: Vec<SignParticipant>,
}

/// A sign session just created; with a participant's `share_data`, completed and signed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignSession {
    pub session_id: String,
    pub session_type: String,
    pub account_id: String,
    pub message_hash: String,
    pub threshold_t: u16,
    pub join_tokens: BTreeMap<String, String>,
    pub status: String,
    pub expires_at: String,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub r: Option<String>,
    #[serde(default)]
    pub s: Option<String>,
    #[serde(default)]
    pub v: Option<u8>,
}

/// A signature (guide §3.2): DER hex, `r` and `s` (32 bytes hex, low-s), `v` (0/1) so that
/// `ecrecover(hash, r, s, v)` is the group key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub session_id: String,
    pub signature: String,
    pub r: String,
    pub s: String,
    pub v: u8,
}

/// `POST /api/v1/sign/with-user-share`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignWithUserShareRequest {
    pub session_id: String,
    pub party_id: String,
    pub join_token: String,
    pub share_data: String,
    pub message_hash: String,
}

/// `POST /api/v1/refresh/with-user-share`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshWithUserShareRequest {
    pub session_id: String,
    pub party_id: String,
    pub join_token: String,
    pub share_data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_public_key: Option<String>,
}

/// `POST /api/v1/recovery/new-user-share`: without `share_data` the device is the new holder.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryNewUserShareRequest {
    pub session_id: String,
    pub party_id: String,
    pub join_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_public_key: Option<String>,
}

/// The answer of `sign/with-user-share`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSignature {
    pub success: bool,
    pub session_id: String,
    pub party_id: String,
    pub signature: String,
    pub r: String,
    pub s: String,
    pub v: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionParticipant {
    pub party_id: String,
    pub party_index: u32,
    pub device_type: Option<String>,
    /// `invited`, `joined`, `ready`, `computing`, `completed`, `failed`.
    pub status: String,
    pub joined_at: Option<String>,
}

/// `GET /api/v1/mpc/sessions/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub session_type: String,
    /// `created`, `waiting`, `in_progress`, `completed`, `failed`, `expired`.
    pub status: String,
    pub threshold_n: u32,
    pub threshold_t: u32,
    pub account_id: Option<String>,
    pub participants: Vec<SessionParticipant>,
    pub message_hash: Option<String>,
    pub public_key: Option<String>,
    pub ethereum_address: Option<String>,
    pub signature: Option<String>,
    pub r: Option<String>,
    pub s: Option<String>,
    pub v: Option<u8>,
    pub failure_reason: Option<String>,
    pub blamed_party_id: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
    pub completed_at: Option<String>,
}

impl Session {
    /// Completed, failed or expired: it will not change any more.
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "expired")
    }

    /// The signature of a completed sign session.
    pub fn signature(&self) -> Option<Signature> {
        match (&self.signature, &self.r, &self.s, self.v) {
            (Some(signature), Some(r), Some(s), Some(v)) if self.status == "completed" => {
                Some(Signature {
                    session_id: self.session_id.clone(),
                    signature: signature.clone(),
                    r: r.clone(),
                    s: s.clone(),
                    v,
                })
            }
            _ => None,
        }
    }
}

/// Where a share lives; never the share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareInfo {
    pub party_id: String,
    pub party_index: u16,
    /// `user_device`, `server`, `recovery`.
    pub share_type: String,
    pub device_type: Option<String>,
    pub storage_location: Option<String>,
    pub is_active: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account_id: String,
    pub username: Option<String>,
    pub email: Option<String>,
    /// `pending`, `active`, `suspended`, `failed`.
    pub status: String,
    pub threshold_n: u16,
    pub threshold_t: u16,
    pub public_key: Option<String>,
    pub ethereum_address: Option<String>,
    pub keygen_session_id: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub shares: Option<Vec<ShareInfo>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountList {
    pub accounts: Vec<Account>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// `POST /api/v1/accounts/{id}/recover`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverRequest {
    pub lost_party_id: String,
    pub new_party_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpers: Option<Vec<String>>,
}

/// A refresh or recovery session just created.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub session_id: String,
    pub session_type: String,
    pub account_id: String,
    pub threshold_n: u16,
    pub threshold_t: u16,
    pub join_tokens: BTreeMap<String, String>,
    pub status: String,
    pub expires_at: String,
}

/// A scoped access token for one account's device operations.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: String,
    pub scope: String,
    pub account_id: String,
    pub expires_at: String,
}

fn tokens(t: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    t.keys().map(|k| (k.as_str(), REDACTED)).collect()
}

impl fmt::Debug for KeygenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeygenResponse")
            .field("session_id", &self.session_id)
            .field("account_id", &self.account_id)
            .field("threshold", &(self.threshold_t, self.threshold_n))
            .field("join_tokens", &tokens(&self.join_tokens))
            .field("status", &self.status)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for SignSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignSession")
            .field("session_id", &self.session_id)
            .field("account_id", &self.account_id)
            .field("message_hash", &self.message_hash)
            .field("join_tokens", &tokens(&self.join_tokens))
            .field("status", &self.status)
            .field("r", &self.r)
            .field("s", &self.s)
            .field("v", &self.v)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SessionCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCreated")
            .field("session_id", &self.session_id)
            .field("session_type", &self.session_type)
            .field("account_id", &self.account_id)
            .field("join_tokens", &tokens(&self.join_tokens))
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for UserShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserShare")
            .field("session_id", &self.session_id)
            .field("party_id", &self.party_id)
            .field("party_index", &self.party_index)
            .field("share_data", &REDACTED)
            .field("public_key", &self.public_key)
            .finish()
    }
}

impl fmt::Debug for SignParticipant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignParticipant")
            .field("party_id", &self.party_id)
            .field("share_data", &self.share_data.as_ref().map(|_| REDACTED))
            .field("device_type", &self.device_type)
            .finish()
    }
}

macro_rules! debug_ids_only {
    ($($ty:ident),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("session_id", &self.session_id)
                    .field("party_id", &self.party_id)
                    .finish_non_exhaustive()
            }
        }
    )*};
}
debug_ids_only!(
    GenerateUserShareRequest,
    SignWithUserShareRequest,
    RefreshWithUserShareRequest,
    RecoveryNewUserShareRequest
);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &REDACTED)
            .field("account_id", &self.account_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_shares_and_tokens() {
        let share = UserShare {
            success: true,
            session_id: "s".into(),
            party_id: "p".into(),
            party_index: 0,
            share_data: "a1b2c3secret".into(),
            public_key: "04".into(),
        };
        let sign = SignParticipant::with_share("p", "a1b2c3secret");
        let request = SignWithUserShareRequest {
            session_id: "s".into(),
            party_id: "p".into(),
            join_token: "eyJsecret".into(),
            share_data: "a1b2c3secret".into(),
            message_hash: "00".into(),
        };
        for shown in [
            format!("{share:?}"),
            format!("{sign:?}"),
            format!("{request:?}"),
        ] {
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn the_guides_json_parses() {
        let keygen: KeygenResponse = serde_json::from_str(
            r#"{"session_id":"550e8400-e29b-41d4-a716-446655440000","session_type":"keygen",
                "threshold_n":3,"threshold_t":2,"join_tokens":{"user_device_12345":"eyJ"},
                "status":"created","account_id":"a","expires_at":"2025-01-01T00:00:00Z"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keygen.join_tokens["user_device_12345"], "eyJ");
        assert!(!format!("{keygen:?}").contains("eyJ"));
        let body = serde_json::to_value(SignParticipant::server("server_party_1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body, serde_json::json!({"party_id": "server_party_1"}));
    }
}
