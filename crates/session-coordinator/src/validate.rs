//! CreateSession input, as it arrives over gRPC or HTTP ([`CreateRequest`], unchecked), and its
//! validation into a [`NewSession`] the store accepts. Nothing unchecked gets past [`validate`].

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mpc_proto::{ApiError, ErrorCode, PartyId, SessionId, SessionType, Threshold};
use mpc_store::coordinator::{NewParticipant, NewSession, RecoverySpec};

/// A participant as requested.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParticipantInput {
    pub party_id: String,
    pub device_type: String,
    pub party_index: Option<u32>,
}

/// A recovery spec as requested.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryInput {
    pub target_party_id: String,
    pub helper_party_ids: Vec<String>,
}

/// CreateSession as requested (decoded from protobuf or JSON, not yet checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    pub session_type: SessionType,
    pub threshold_t: u32,
    pub threshold_n: u32,
    pub participants: Vec<ParticipantInput>,
    pub key_id: String,
    pub message_hash: Vec<u8>,
    pub public_key: Vec<u8>,
    pub recovery: Option<RecoveryInput>,
    /// 0 = the configured default.
    pub lifetime_seconds: u32,
}

/// Session lifetimes the coordinator grants.
#[derive(Clone, Copy, Debug)]
pub struct Lifetimes {
    pub default: Duration,
    pub max: Duration,
    /// A session whose parties have not all joined this long after its creation fails: a
    /// party that never comes (its process died, its event was lost) should not hold the
    /// others for the whole lifetime.
    pub join: Duration,
}

const MAX_KEY_ID_LEN: usize = 255;
const MAX_DEVICE_TYPE_LEN: usize = 50;
/// Uncompressed SEC1 secp256k1 point: `04 || x || y`.
pub const PUBLIC_KEY_LEN: usize = 65;
pub use mpc_proto::MESSAGE_HASH_LEN;

/// Checks everything and assigns party indices (keygen: request order).
pub fn validate(
    req: &CreateRequest,
    lifetimes: Lifetimes,
    now: DateTime<Utc>,
) -> Result<NewSession, ApiError> {
    let ty = req.session_type;
    let threshold = Threshold::checked(u64::from(req.threshold_t), u64::from(req.threshold_n))?;
    let key_id = validate_key_id(&req.key_id)?;

    let mut seen = HashSet::new();
    let mut parties = Vec::with_capacity(req.participants.len());
    for p in &req.participants {
        let party_id = PartyId::parse(&p.party_id)?;
        if !seen.insert(party_id.clone()) {
            return Err(ApiError::new(
                ErrorCode::DuplicatePartyId,
                format!("duplicate party id {party_id}"),
            ));
        }
        parties.push((
            party_id,
            validate_device_type(&p.device_type)?,
            p.party_index,
        ));
    }

    let needed = if ty == SessionType::Sign {
        threshold.t
    } else {
        threshold.n
    };
    let got = parties.len();
    let what = if ty == SessionType::Sign {
        format!(
            "a sign session of a {}-of-{} key needs exactly {needed} participants (threshold_t)",
            threshold.t, threshold.n
        )
    } else {
        format!("a {ty} session needs all {needed} participants (threshold_n)")
    };
    if got < usize::from(needed) {
        return Err(ApiError::new(
            ErrorCode::InsufficientParticipants,
            format!("insufficient participants: {what}, got {got}"),
        ));
    }
    if got > usize::from(needed) {
        return Err(ApiError::invalid_argument(format!(
            "too many participants: {what}, got {got}"
        )));
    }

    let participants = assign_indices(ty, threshold, parties)?;
    let message_hash = validate_message_hash(ty, &req.message_hash)?;
    let public_key = validate_public_key(ty, &req.public_key)?;
    let recovery = validate_recovery(ty, threshold, req.recovery.as_ref(), &participants)?;
    let lifetime = lifetime(req.lifetime_seconds, lifetimes)?;
    let lifetime = chrono::Duration::from_std(lifetime)
        .map_err(|_| ApiError::invalid_argument("lifetime_seconds is out of range"))?;

    Ok(NewSession {
        id: SessionId::new_random(),
        session_type: ty,
        threshold,
        key_id,
        message_hash,
        public_key,
        recovery,
        participants,
        created_at: now,
        expires_at: now + lifetime,
    })
}

fn validate_key_id(key_id: &str) -> Result<String, ApiError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN || !key_id.chars().all(ok_char) {
        return Err(ApiError::invalid_argument(format!(
            "key_id (the account id) is required: 1 to {MAX_KEY_ID_LEN} characters from \
             A-Z a-z 0-9 _ - . :"
        )));
    }
    Ok(key_id.to_owned())
}

fn validate_device_type(device_type: &str) -> Result<Option<String>, ApiError> {
    if device_type.is_empty() {
        return Ok(None);
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if device_type.len() > MAX_DEVICE_TYPE_LEN || !device_type.chars().all(ok_char) {
        return Err(ApiError::invalid_argument(format!(
            "invalid device_type: at most {MAX_DEVICE_TYPE_LEN} characters from A-Z a-z 0-9 _ - ."
        )));
    }
    Ok(Some(device_type.to_owned()))
}

fn assign_indices(
    ty: SessionType,
    threshold: Threshold,
    parties: Vec<(PartyId, Option<String>, Option<u32>)>,
) -> Result<Vec<NewParticipant>, ApiError> {
    let mut used = HashSet::new();
    let mut out = Vec::with_capacity(parties.len());
    for (position, (party_id, device_type, index)) in parties.into_iter().enumerate() {
        let party_index = if ty == SessionType::Keygen {
            // Keygen creates the key: indices are ours to give, in request order.
            u16::try_from(position).map_err(|_| ApiError::invalid_argument("too many parties"))?
        } else {
            let index = index.ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "party_index is required for every participant of a {ty} session \
                     (missing for {party_id})"
                ))
            })?;
            match u16::try_from(index) {
                Ok(i) if i < threshold.n => i,
                _ => {
                    return Err(ApiError::invalid_argument(format!(
                        "party_index {index} of {party_id} is out of range: the key has \
                         {} parties (0..{})",
                        threshold.n,
                        threshold.n - 1
                    )));
                }
            }
        };
        if !used.insert(party_index) {
            return Err(ApiError::invalid_argument(format!(
                "duplicate party_index {party_index}"
            )));
        }
        out.push(NewParticipant {
            party_id,
            party_index,
            device_type,
        });
    }
    Ok(out)
}

fn validate_message_hash(ty: SessionType, hash: &[u8]) -> Result<Option<Vec<u8>>, ApiError> {
    match ty {
        SessionType::Sign => mpc_proto::check_message_hash(hash).map(|h| Some(h.to_vec())),
        _ if hash.is_empty() => Ok(None),
        _ => Err(ApiError::invalid_argument(format!(
            "message_hash is only for sign sessions, not {ty}"
        ))),
    }
}

fn validate_public_key(ty: SessionType, key: &[u8]) -> Result<Option<Vec<u8>>, ApiError> {
    match ty {
        SessionType::Keygen if key.is_empty() => Ok(None),
        SessionType::Keygen => Err(ApiError::invalid_argument(
            "public_key must be empty for keygen: the session creates the key",
        )),
        _ => {
            crate::verify::parse_public_key(key).map_err(|_| {
                ApiError::invalid_argument(format!(
                    "a {ty} session needs public_key: the group key as a {PUBLIC_KEY_LEN}-byte \
                     uncompressed secp256k1 point (04…)"
                ))
            })?;
            Ok(Some(key.to_vec()))
        }
    }
}

fn validate_recovery(
    ty: SessionType,
    threshold: Threshold,
    spec: Option<&RecoveryInput>,
    participants: &[NewParticipant],
) -> Result<Option<RecoverySpec>, ApiError> {
    let spec = match (ty, spec) {
        (SessionType::Recovery, Some(spec)) => spec,
        (SessionType::Recovery, None) => {
            return Err(ApiError::invalid_argument(
                "a recovery session needs recovery: target_party_id and helper_party_ids",
            ));
        }
        (_, None) => return Ok(None),
        (_, Some(_)) => {
            return Err(ApiError::invalid_argument(format!(
                "recovery is only for recovery sessions, not {ty}"
            )));
        }
    };
    let is_participant = |p: &PartyId| participants.iter().any(|q| &q.party_id == p);
    let target = PartyId::parse(&spec.target_party_id)?;
    if !is_participant(&target) {
        return Err(ApiError::invalid_argument(format!(
            "recovery target {target} is not a participant"
        )));
    }
    let mut helpers = Vec::with_capacity(spec.helper_party_ids.len());
    for raw in &spec.helper_party_ids {
        let helper = PartyId::parse(raw)?;
        if helper == target {
            return Err(ApiError::invalid_argument(format!(
                "recovery target {target} cannot also be a helper"
            )));
        }
        if !is_participant(&helper) {
            return Err(ApiError::invalid_argument(format!(
                "recovery helper {helper} is not a participant"
            )));
        }
        if helpers.contains(&helper) {
            return Err(ApiError::new(
                ErrorCode::DuplicatePartyId,
                format!("duplicate recovery helper {helper}"),
            ));
        }
        helpers.push(helper);
    }
    if helpers.len() < usize::from(threshold.t) {
        return Err(ApiError::new(
            ErrorCode::InsufficientParticipants,
            format!(
                "insufficient participants: recovery needs at least threshold_t ({}) helpers, \
                 got {}",
                threshold.t,
                helpers.len()
            ),
        ));
    }
    Ok(Some(RecoverySpec { target, helpers }))
}

fn lifetime(seconds: u32, lifetimes: Lifetimes) -> Result<Duration, ApiError> {
    if seconds == 0 {
        return Ok(lifetimes.default);
    }
    let requested = Duration::from_secs(u64::from(seconds));
    if requested > lifetimes.max {
        return Err(ApiError::invalid_argument(format!(
            "lifetime_seconds must be at most {}",
            lifetimes.max.as_secs()
        )));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests;
