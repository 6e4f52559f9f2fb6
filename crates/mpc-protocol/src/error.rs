//! Errors of the engine. A failure caused by another party names that party, so the session can
//! report whom to blame; a failure caused by the caller or by our own state never blames anyone.

use std::fmt;

use crate::PartyIndex;

/// Why a session or an operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The caller passed something invalid (parameters, roster, share, hash). Nobody else is at
    /// fault; fix the input.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Another party misbehaved (or its messages were tampered with on the way).
    #[error("party {party} misbehaved: {kind}")]
    Misbehaviour {
        party: PartyIndex,
        kind: Misbehaviour,
    },
    /// The protocol failed without a provable culprit (for example a final check over everybody's
    /// contributions). Safe to retry with a new session.
    #[error("protocol aborted: {0}")]
    Aborted(String),
    /// The session was used out of order (a message after the end, output taken twice).
    #[error("session misuse: {0}")]
    Misuse(String),
    /// A bug: our own state is inconsistent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProtocolError {
    /// The party to blame, if the failure proves one.
    pub fn blamed_party(&self) -> Option<PartyIndex> {
        match self {
            ProtocolError::Misbehaviour { party, .. } => Some(*party),
            _ => None,
        }
    }

    /// True when the protocol requires excluding the blamed party from all future signing and
    /// refresh sessions of this key (a failed OT/multiplication check: continuing would leak key
    /// material, see the DKLs23 paper). The key should be frozen for that party until an operator
    /// clears it.
    pub fn requires_ban(&self) -> bool {
        matches!(
            self,
            ProtocolError::Misbehaviour {
                kind: Misbehaviour::ProtocolAbort { ban: true, .. },
                ..
            }
        )
    }

    pub(crate) fn blame(party: PartyIndex, kind: Misbehaviour) -> Self {
        ProtocolError::Misbehaviour { party, kind }
    }

    pub(crate) fn malformed(party: PartyIndex, what: impl fmt::Display) -> Self {
        Self::blame(party, Misbehaviour::Malformed(what.to_string()))
    }

    pub(crate) fn internal(what: impl fmt::Display) -> Self {
        ProtocolError::Internal(what.to_string())
    }
}

/// What a misbehaving party did.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    /// The ciphertext does not authenticate: tampered, forged, or sealed for another session,
    /// party or round.
    #[error("message does not decrypt (tampered, forged or replayed)")]
    Undecryptable,
    /// The decrypted content is not a valid message of this protocol round.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message for a round the party should not send in, or one that no longer exists.
    #[error("message for unexpected round {round}")]
    WrongRound { round: u16 },
    /// A second message from the same party for the same round.
    #[error("duplicate message for round {round}")]
    Duplicate { round: u16 },
    /// The message is addressed to another party.
    #[error("message addressed to party {to}, not to us")]
    Misaddressed { to: PartyIndex },
    /// The sender is not part of this session.
    #[error("sender is not a participant of this session")]
    UnknownSender,
    /// The party sent different broadcast content to different recipients, as shown by the echo
    /// of `reported_by`.
    #[error("equivocation in round {round} (reported by party {reported_by})")]
    Equivocation { round: u16, reported_by: PartyIndex },
    /// The party's session key announcement is not signed by its identity key, or is for another
    /// session or index.
    #[error("invalid session key announcement: {0}")]
    BadSessionKey(String),
    /// The DKLs23 library aborted because of this party.
    #[error("protocol check failed: {reason}{}", if *ban { " (this party must be excluded from this key)" } else { "" })]
    ProtocolAbort { reason: String, ban: bool },
}
