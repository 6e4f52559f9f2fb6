//! The party registry's announcements: what a server party (or the Server Party API) signs with
//! its identity key when it announces itself to the coordinator, and how the coordinator checks
//! it. Signing and checking build the statement here, so the two cannot drift apart.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::error::ApiError;

/// The context of an announcement signature (see `IdentityKey::sign_statement`, which signs
/// `context || 0x00 || message`).
pub const ANNOUNCEMENT_CONTEXT: &[u8] = b"mpc-system/announce/v2";

/// The statement signed: `party_id || 0x00 || kind || identity_public_key || announced_at_ms
/// || instance_id` (kind as the protobuf enum value, one byte; time as 8 bytes big-endian).
/// The instance id is last, so its length needs no prefix.
pub fn announcement_message(
    party_id: &str,
    kind: u8,
    identity_public_key: &[u8; 32],
    announced_at_ms: i64,
    instance_id: &str,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(party_id.len() + 1 + 1 + 32 + 8 + instance_id.len());
    m.extend_from_slice(party_id.as_bytes());
    m.push(0);
    m.push(kind);
    m.extend_from_slice(identity_public_key);
    m.extend_from_slice(&announced_at_ms.to_be_bytes());
    m.extend_from_slice(instance_id.as_bytes());
    m
}

/// Checks an announcement's signature by `identity_public_key`.
pub fn verify_announcement(
    identity_public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8],
) -> Result<(), ApiError> {
    let invalid = |what: &str| ApiError::invalid_argument(format!("invalid announcement: {what}"));
    let key = VerifyingKey::from_bytes(identity_public_key)
        .map_err(|_| invalid("the identity public key is not an Ed25519 key"))?;
    let signature =
        Signature::from_slice(signature).map_err(|_| invalid("the signature is not 64 bytes"))?;
    let mut signed = Vec::with_capacity(ANNOUNCEMENT_CONTEXT.len() + 1 + message.len());
    signed.extend_from_slice(ANNOUNCEMENT_CONTEXT);
    signed.push(0);
    signed.extend_from_slice(message);
    key.verify(&signed, &signature)
        .map_err(|_| invalid("the signature does not verify with the identity key"))
}
