//! Why a party's session failed, and how that is told to the coordinator: a reason in the
//! guide's style (`keygen failed: party server_party_2 sent an invalid message (…)`) and the
//! blamed party, when one is known.

use std::fmt;

use mpc_proto::{ApiError, ErrorCode, PartyId, SessionStatus, SessionType};
use mpc_protocol::{Misbehaviour, ProtocolError};

/// Which service a failed call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Coordinator,
    Router,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Coordinator => "session coordinator",
            Service::Router => "message router",
        })
    }
}

/// A failed session, from this party's point of view.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PartyError {
    /// The join token does not verify, or is expired. Nothing can be reported with it.
    #[error("invalid join token")]
    InvalidToken,
    /// A call failed for good (or kept failing until the deadline).
    #[error("{service} call failed: {error}")]
    Service { service: Service, error: ApiError },
    /// The trust policy rejects a participant's identity key (DESIGN.md §5).
    #[error("party {party} is not trusted: {why}")]
    Untrusted { party: PartyId, why: String },
    /// The session is not what this party was asked to do (another hash, key, type, …).
    #[error("{0}")]
    Mismatch(String),
    /// The engine failed; `blamed` names the party it proved guilty.
    #[error("protocol error: {error}")]
    Protocol {
        error: ProtocolError,
        blamed: Option<PartyId>,
    },
    /// The deadline passed while waiting for these parties (to join, when `round` is `None`).
    #[error("timeout waiting for {}", waiting_phrase(waiting_for, *round))]
    Timeout {
        waiting_for: Vec<PartyId>,
        round: Option<u16>,
    },
    /// The session ended without us: another party reported a failure, or it expired.
    #[error("session {status}: {reason}")]
    SessionEnded {
        status: SessionStatus,
        reason: String,
    },
    /// The coordinator refused this party's result (another party reported something else).
    #[error("result rejected: {0}")]
    Rejected(String),
    /// A problem of this party's own (no share for the key, storing the share failed). The
    /// text follows "party <id> " in the report: `holds no share for key acct-1`.
    #[error("{0}")]
    Local(String),
    /// This party is shutting down.
    #[error("party stopped before the session finished")]
    Cancelled,
    /// A bug in this party.
    #[error("internal error: {0}")]
    Internal(String),
}

fn waiting_phrase(parties: &[PartyId], round: Option<u16>) -> String {
    let names: Vec<&str> = parties.iter().map(PartyId::as_str).collect();
    let who = match names.len() {
        0 => "the other parties".to_owned(),
        1 => format!("party {}", names[0]),
        _ => format!("parties {}", names.join(", ")),
    };
    match round {
        Some(r) => format!("{who} in round {r}"),
        None => format!("{who} to join"),
    }
}

impl PartyError {
    pub(crate) fn coordinator(error: ApiError) -> Self {
        PartyError::Service {
            service: Service::Coordinator,
            error,
        }
    }

    pub(crate) fn router(error: ApiError) -> Self {
        PartyError::Service {
            service: Service::Router,
            error,
        }
    }

    /// The party to name in the failure report.
    pub fn blamed_party(&self) -> Option<&PartyId> {
        match self {
            PartyError::Untrusted { party, .. } => Some(party),
            PartyError::Protocol { blamed, .. } => blamed.as_ref(),
            // Only one silent party is a culprit; several could be the network.
            PartyError::Timeout { waiting_for, .. } if waiting_for.len() == 1 => {
                waiting_for.first()
            }
            _ => None,
        }
    }

    /// Whether a failure report is worth sending: not when the session is over anyway, or when
    /// the token cannot authenticate one.
    pub fn should_report(&self) -> bool {
        !matches!(
            self,
            PartyError::InvalidToken | PartyError::SessionEnded { .. } | PartyError::Rejected(_)
        )
    }

    /// Whether the protocol requires freezing the key for the blamed party (DKLs23: a failed
    /// multiplication check would leak key material if signing went on with it).
    pub fn requires_ban(&self) -> bool {
        matches!(self, PartyError::Protocol { error, .. } if error.requires_ban())
    }

    /// The reason to report, in the guide's style: `<type> failed: …`. Never carries secrets;
    /// our own internal errors are not spelled out.
    pub fn failure_reason(&self, ty: SessionType, me: &PartyId) -> String {
        let detail = match self {
            PartyError::Protocol { error, blamed } => protocol_reason(error, blamed.as_ref()),
            PartyError::Service { service, error } => match error.code {
                ErrorCode::Unavailable | ErrorCode::Timeout => {
                    format!("party {me} cannot reach the {service}")
                }
                _ => format!(
                    "party {me}: the {service} refused a call ({})",
                    error.message
                ),
            },
            PartyError::Internal(_) => format!("internal error in party {me}"),
            PartyError::Cancelled => format!("party {me} stopped before the session finished"),
            PartyError::Local(why) => format!("party {me} {why}"),
            other => other.to_string(),
        };
        format!("{ty} failed: {detail}")
    }

    /// The error as a client of the party driver sees it (e.g. the Server Party API's caller).
    pub fn to_api_error(&self, ty: SessionType, me: &PartyId) -> ApiError {
        let code = match self {
            PartyError::InvalidToken => return ApiError::invalid_join_token(),
            PartyError::Service { error, .. } => match error.code {
                ErrorCode::Unavailable | ErrorCode::Timeout => error.code,
                _ => ErrorCode::ProtocolFailed,
            },
            PartyError::Timeout { .. } => ErrorCode::Timeout,
            PartyError::SessionEnded {
                status: SessionStatus::Expired,
                ..
            } => ErrorCode::SessionExpired,
            // A party declined for lack of capacity: retry, nobody is at fault.
            PartyError::SessionEnded { reason, .. }
                if mpc_proto::status::is_overloaded_failure(reason) =>
            {
                return ApiError::new(ErrorCode::Overloaded, reason.clone()).with_retry_after(1);
            }
            PartyError::Mismatch(_) => ErrorCode::FailedPrecondition,
            PartyError::Internal(why) => return ApiError::internal(why),
            PartyError::Cancelled => ErrorCode::Unavailable,
            _ => ErrorCode::ProtocolFailed,
        };
        let message = match self {
            PartyError::SessionEnded { reason, .. } if !reason.is_empty() => reason.clone(),
            _ => self.failure_reason(ty, me),
        };
        ApiError::new(code, message)
    }
}

fn protocol_reason(error: &ProtocolError, blamed: Option<&PartyId>) -> String {
    let name = |fallback: &dyn fmt::Display| match blamed {
        Some(p) => p.to_string(),
        None => format!("at index {fallback}"),
    };
    match error {
        ProtocolError::Misbehaviour { party, kind } => {
            let who = name(party);
            match kind {
                Misbehaviour::BadSessionKey(why) => {
                    format!("party {who} registered an invalid session key ({why})")
                }
                Misbehaviour::ProtocolAbort { reason, ban: true } => format!(
                    "party {who} failed a protocol check ({reason}); the key is frozen for it"
                ),
                Misbehaviour::ProtocolAbort { reason, ban: false } => {
                    format!("party {who} failed a protocol check ({reason})")
                }
                other => format!("party {who} sent an invalid message ({other})"),
            }
        }
        ProtocolError::Aborted(why) => format!("protocol aborted ({why})"),
        ProtocolError::InvalidInput(why) => format!("invalid input ({why})"),
        ProtocolError::Misuse(_) | ProtocolError::Internal(_) => "internal protocol error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> PartyId {
        PartyId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn timeout_reasons_name_the_parties_and_the_round() {
        let me = pid("server_party_1");
        let one = PartyError::Timeout {
            waiting_for: vec![pid("user_device_1")],
            round: Some(2),
        };
        assert_eq!(
            one.failure_reason(SessionType::Sign, &me),
            "sign failed: timeout waiting for party user_device_1 in round 2"
        );
        assert_eq!(one.blamed_party(), Some(&pid("user_device_1")));
        let two = PartyError::Timeout {
            waiting_for: vec![pid("a"), pid("b")],
            round: None,
        };
        assert_eq!(
            two.failure_reason(SessionType::Keygen, &me),
            "keygen failed: timeout waiting for parties a, b to join"
        );
        assert_eq!(two.blamed_party(), None);
    }

    #[test]
    fn protocol_reasons_follow_the_guide() {
        let me = pid("server_party_1");
        let index = mpc_protocol::PartyIndex::new(2).unwrap_or_else(|e| panic!("{e}"));
        let e = PartyError::Protocol {
            error: ProtocolError::Misbehaviour {
                party: index,
                kind: Misbehaviour::Undecryptable,
            },
            blamed: Some(pid("server_party_2")),
        };
        let reason = e.failure_reason(SessionType::Keygen, &me);
        assert!(
            reason.starts_with("keygen failed: party server_party_2 sent an invalid message ("),
            "{reason}"
        );
        assert_eq!(e.blamed_party(), Some(&pid("server_party_2")));
        assert!(e.should_report());
        assert!(!e.requires_ban());
    }

    #[test]
    fn internal_details_stay_local() {
        let me = pid("p");
        let e = PartyError::Internal("postgres://user:secret@db".into());
        assert_eq!(
            e.failure_reason(SessionType::Sign, &me),
            "sign failed: internal error in party p"
        );
        assert_eq!(
            e.to_api_error(SessionType::Sign, &me).code,
            ErrorCode::Internal
        );
        assert!(
            !e.to_api_error(SessionType::Sign, &me)
                .message
                .contains("secret")
        );
    }
}
