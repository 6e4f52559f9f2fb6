//! The coordinator's roster, checked: the session parameters, and every participant with the
//! identity key this party trusts for it (after the trust policy) and its session-key
//! announcement.

use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{JoinClaims, PartyId, SessionId, SessionType, Threshold};
use mpc_protocol::{IdentityPublicKey, MessageHash, PartyIndex, PublicKey, RosterEntry};

use super::error::PartyError;
use super::trust::TrustPolicy;

/// One participant as this party will talk to it.
#[derive(Clone, Debug)]
pub struct RosterParty {
    pub party_id: PartyId,
    pub index: PartyIndex,
    pub device_type: Option<String>,
    /// The key the trust policy accepted (the pinned key for a pinned party).
    pub identity: IdentityPublicKey,
    pub announcement: Vec<u8>,
}

/// A recovery's roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryRoles {
    pub target: PartyId,
    pub helpers: Vec<PartyId>,
}

/// The session as the roster describes it, checked against the join token and the trust policy.
#[derive(Clone, Debug)]
pub struct Roster {
    pub session_id: SessionId,
    pub session_type: SessionType,
    pub threshold: Threshold,
    /// The account id: the key the session creates or uses.
    pub key_id: String,
    /// Sign sessions.
    pub message_hash: Option<MessageHash>,
    /// Sign, refresh and recovery sessions (and keygen once reported).
    pub public_key: Option<PublicKey>,
    pub recovery: Option<RecoveryRoles>,
    /// Ordered by party index.
    pub parties: Vec<RosterParty>,
    pub me: PartyId,
    pub my_index: PartyIndex,
    /// When the coordinator created the session (ms since the epoch): the order in which
    /// every party gives its steps the CPU.
    pub created_at_ms: i64,
}

pub(crate) fn session_type_from_pb(value: i32) -> Option<SessionType> {
    match pb::SessionType::try_from(value).ok()? {
        pb::SessionType::Keygen => Some(SessionType::Keygen),
        pb::SessionType::Sign => Some(SessionType::Sign),
        pb::SessionType::Refresh => Some(SessionType::Refresh),
        pb::SessionType::Recovery => Some(SessionType::Recovery),
        pb::SessionType::Unspecified => None,
    }
}

fn bad(what: impl Into<String>) -> PartyError {
    PartyError::Mismatch(format!(
        "the coordinator's roster is inconsistent: {}",
        what.into()
    ))
}

impl Roster {
    /// Checks the roster against `claims` (our token) and `trust`, and that our own entry holds
    /// our identity key and the announcement we registered.
    pub(crate) fn check(
        response: pb::GetRosterResponse,
        claims: &JoinClaims,
        my_identity: &IdentityPublicKey,
        my_announcement: &[u8],
        trust: &TrustPolicy,
    ) -> Result<Roster, PartyError> {
        let session = response.session.ok_or_else(|| bad("no session"))?;
        if session.session_id != claims.sid.to_string() {
            return Err(bad("another session id"));
        }
        let session_type = session_type_from_pb(session.session_type)
            .ok_or_else(|| bad("unknown session type"))?;
        if session_type != claims.typ {
            return Err(bad(format!(
                "session type {session_type}, the join token says {}",
                claims.typ
            )));
        }
        let threshold = Threshold::new(
            u16::try_from(session.threshold_t).unwrap_or(u16::MAX),
            u16::try_from(session.threshold_n).unwrap_or(u16::MAX),
        )
        .map_err(|e| bad(e.message))?;
        let message_hash = match session.message_hash.len() {
            0 => None,
            32 => {
                let mut h = [0u8; 32];
                h.copy_from_slice(&session.message_hash);
                Some(MessageHash::new(h))
            }
            _ => return Err(bad("message hash is not 32 bytes")),
        };
        let public_key = if session.public_key.is_empty() {
            None
        } else {
            Some(PublicKey::from_sec1(&session.public_key).map_err(|_| bad("invalid public key"))?)
        };
        let recovery = match session.recovery {
            Some(r) if session_type == SessionType::Recovery => Some(RecoveryRoles {
                target: PartyId::parse(&r.target_party_id).map_err(|e| bad(e.message))?,
                helpers: r
                    .helper_party_ids
                    .iter()
                    .map(|h| PartyId::parse(h).map_err(|e| bad(e.message)))
                    .collect::<Result<_, _>>()?,
            }),
            None if session_type == SessionType::Recovery => {
                return Err(bad("a recovery session without roles"));
            }
            _ => None,
        };

        let mut parties = Vec::with_capacity(response.parties.len());
        for entry in response.parties {
            let party_id = PartyId::parse(&entry.party_id).map_err(|e| bad(e.message))?;
            let index = u16::try_from(entry.party_index)
                .ok()
                .and_then(|i| PartyIndex::new(i).ok())
                .ok_or_else(|| bad(format!("party {party_id} has an invalid index")))?;
            let presented =
                IdentityPublicKey::from_bytes(&entry.identity_public_key).map_err(|_| {
                    PartyError::Untrusted {
                        party: party_id.clone(),
                        why: "it registered no valid identity key".into(),
                    }
                })?;
            let identity = if party_id == claims.pid {
                if index.get() != claims.idx
                    || presented != *my_identity
                    || entry.session_key != my_announcement
                {
                    return Err(bad(
                        "our own entry is not what we registered (index, identity or session key)",
                    ));
                }
                presented
            } else {
                trust
                    .check(
                        &party_id,
                        &presented,
                        mpc_proto::is_server_device_type(&entry.device_type),
                    )
                    .map_err(|why| PartyError::Untrusted {
                        party: party_id.clone(),
                        why: why.to_string(),
                    })?
            };
            parties.push(RosterParty {
                party_id,
                index,
                device_type: (!entry.device_type.is_empty()).then_some(entry.device_type),
                identity,
                announcement: entry.session_key,
            });
        }
        parties.sort_by_key(|p| p.index);
        let ids: Vec<&PartyId> = parties.iter().map(|p| &p.party_id).collect();
        let mut expected: Vec<&PartyId> = claims.parties.iter().collect();
        let mut listed = ids.clone();
        expected.sort();
        listed.sort();
        if expected != listed {
            return Err(bad("its parties differ from the join token's"));
        }
        if parties.windows(2).any(|w| w[0].index == w[1].index) {
            return Err(bad("two parties share an index"));
        }
        let my_index = PartyIndex::new(claims.idx).map_err(|_| bad("our index is invalid"))?;
        if !parties.iter().any(|p| p.party_id == claims.pid) {
            return Err(bad("we are not in it"));
        }
        Ok(Roster {
            session_id: claims.sid,
            session_type,
            threshold,
            key_id: session.key_id,
            message_hash,
            public_key,
            recovery,
            parties,
            me: claims.pid.clone(),
            my_index,
            created_at_ms: session.created_at_ms,
        })
    }

    /// This session's place in the CPU's queue (oldest first, the same in every party).
    pub fn priority(&self) -> crate::compute::Priority {
        crate::compute::Priority {
            created_at_ms: self.created_at_ms,
            session: self.session_id.0.as_u128(),
        }
    }

    pub fn party_at(&self, index: PartyIndex) -> Option<&RosterParty> {
        self.parties.iter().find(|p| p.index == index)
    }

    pub fn party(&self, id: &PartyId) -> Option<&RosterParty> {
        self.parties.iter().find(|p| &p.party_id == id)
    }

    pub fn indices(&self) -> Vec<PartyIndex> {
        self.parties.iter().map(|p| p.index).collect()
    }

    /// The party ids at `indices`, for reports (unknown indices are skipped).
    pub fn names(&self, indices: &[PartyIndex]) -> Vec<PartyId> {
        indices
            .iter()
            .filter_map(|i| self.party_at(*i).map(|p| p.party_id.clone()))
            .collect()
    }

    pub(crate) fn engine_entries(&self) -> Vec<RosterEntry> {
        self.parties
            .iter()
            .map(|p| RosterEntry {
                index: p.index,
                identity: p.identity,
                announcement: p.announcement.clone(),
            })
            .collect()
    }
}

/// The engine's session id: the coordinator session UUID's 16 bytes.
pub(crate) fn engine_session_id(id: SessionId) -> Result<mpc_protocol::SessionId, PartyError> {
    mpc_protocol::SessionId::new(id.as_uuid().as_bytes().to_vec())
        .map_err(|e| PartyError::Internal(e.to_string()))
}
