//! The request and response bodies (integration guide §5.1 step 2 and §5.2 step 3; refresh and
//! recovery have the keygen response's shape). `Debug` never shows a join token or a share.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/keygen/generate-user-share`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct GenerateUserShareRequest {
    pub session_id: String,
    pub party_id: String,
    pub join_token: String,
    /// The device's P-256 public key (SEC1 hex, 33 or 65 bytes): seal the share to it.
    #[serde(default)]
    pub user_public_key: Option<String>,
}

/// `POST /api/v1/sign/with-user-share`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct SignWithUserShareRequest {
    pub session_id: String,
    pub party_id: String,
    pub join_token: String,
    /// The wrapped share (hex) the device stored.
    pub share_data: String,
    /// 32 bytes as 64 hex characters (a `0x` prefix is accepted): must be the session's.
    pub message_hash: String,
}

/// `POST /api/v1/refresh/with-user-share`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct RefreshWithUserShareRequest {
    pub session_id: String,
    pub party_id: String,
    pub join_token: String,
    pub share_data: String,
    #[serde(default)]
    pub user_public_key: Option<String>,
}

/// `POST /api/v1/recovery/new-user-share`. Without `share_data` the device is the recovery's
/// target (the new holder of its lost index); with it, the device takes part as a holder (a lost
/// *server* share is being rebuilt). Either way every participant's share is renewed, and the
/// answer is the device's new share.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoveryNewUserShareRequest {
    pub session_id: String,
    pub party_id: String,
    pub join_token: String,
    #[serde(default)]
    pub share_data: Option<String>,
    #[serde(default)]
    pub user_public_key: Option<String>,
}

/// The answer to keygen, refresh and recovery: the device's (new) share.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserShareResponse {
    pub success: bool,
    pub session_id: String,
    pub party_id: String,
    pub party_index: u16,
    /// Hex: the wrapped share, or the HPKE-sealed wrapped share when `user_public_key` was given.
    pub share_data: String,
    /// The group key, uncompressed (`04…`, 65 bytes) in hex.
    pub public_key: String,
}

/// The answer to a sign: the signature the session produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignatureResponse {
    pub success: bool,
    pub session_id: String,
    pub party_id: String,
    /// ASN.1 DER, hex.
    pub signature: String,
    /// 32 bytes hex each; `s` is low (EIP-2).
    pub r: String,
    pub s: String,
    /// Recovery id, 0 or 1.
    pub v: u8,
}

/// `GET /api/v1/identity`: the key the server parties pin as a delegate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IdentityResponse {
    /// Hex of the 32-byte Ed25519 public key.
    pub identity_public_key: String,
}

const REDACTED: &str = "[REDACTED]";

impl fmt::Debug for GenerateUserShareRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerateUserShareRequest")
            .field("session_id", &self.session_id)
            .field("party_id", &self.party_id)
            .field("join_token", &REDACTED)
            .field("user_public_key", &self.user_public_key)
            .finish()
    }
}

impl fmt::Debug for SignWithUserShareRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignWithUserShareRequest")
            .field("session_id", &self.session_id)
            .field("party_id", &self.party_id)
            .field("join_token", &REDACTED)
            .field("share_data", &REDACTED)
            .field("message_hash", &self.message_hash)
            .finish()
    }
}

impl fmt::Debug for RefreshWithUserShareRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshWithUserShareRequest")
            .field("session_id", &self.session_id)
            .field("party_id", &self.party_id)
            .field("join_token", &REDACTED)
            .field("share_data", &REDACTED)
            .field("user_public_key", &self.user_public_key)
            .finish()
    }
}

impl fmt::Debug for RecoveryNewUserShareRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryNewUserShareRequest")
            .field("session_id", &self.session_id)
            .field("party_id", &self.party_id)
            .field("join_token", &REDACTED)
            .field("share_data", &self.share_data.as_ref().map(|_| REDACTED))
            .field("user_public_key", &self.user_public_key)
            .finish()
    }
}

impl fmt::Debug for UserShareResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserShareResponse")
            .field("success", &self.success)
            .field("session_id", &self.session_id)
            .field("party_id", &self.party_id)
            .field("party_index", &self.party_index)
            .field("share_data", &REDACTED)
            .field("public_key", &self.public_key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_tokens_and_shares() {
        let sign = SignWithUserShareRequest {
            session_id: "s".into(),
            party_id: "p".into(),
            join_token: "eyJ.secret.token".into(),
            share_data: "4d5043534541".into(),
            message_hash: "00".into(),
        };
        let shown = format!("{sign:?}");
        assert!(!shown.contains("secret") && !shown.contains("4d5043534541"));
        let response = UserShareResponse {
            success: true,
            session_id: "s".into(),
            party_id: "p".into(),
            party_index: 0,
            share_data: "4d5043534541".into(),
            public_key: "04ab".into(),
        };
        assert!(!format!("{response:?}").contains("4d5043534541"));
    }

    #[test]
    fn the_guides_bodies_parse() {
        let keygen: GenerateUserShareRequest = serde_json::from_str(
            r#"{"session_id":"550e8400-e29b-41d4-a716-446655440000","party_id":"user_device_12345",
                "join_token":"eyJhbGciOiJIUzI1NiIs...","user_public_key":"optional_hex_for_e2e_encryption"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keygen.party_id, "user_device_12345");
        let without: GenerateUserShareRequest =
            serde_json::from_str(r#"{"session_id":"a","party_id":"b","join_token":"c"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(without.user_public_key, None);
        let sign: SignWithUserShareRequest = serde_json::from_str(
            r#"{"session_id":"a","party_id":"b","join_token":"c","share_data":"a1b2","message_hash":"a1b2c3d4"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sign.message_hash, "a1b2c3d4");
    }
}
