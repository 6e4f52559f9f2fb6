//! Session and participant state machines (DESIGN.md §4). Every transition in the system goes
//! through [`SessionStatus::transition`] or [`ParticipantStatus::transition`]: an illegal transition
//! is an error, never a silent overwrite.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// What a session computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    Keygen,
    Sign,
    Refresh,
    Recovery,
}

/// `created → waiting → in_progress → completed | failed | expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Tokens issued, nobody has joined yet.
    Created,
    /// At least one party joined; waiting for the others.
    Waiting,
    /// Everyone joined; the roster is published and the protocol runs.
    InProgress,
    Completed,
    Failed,
    Expired,
}

/// `invited → joined → ready → computing → completed | failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantStatus {
    /// A join token was issued for the party.
    Invited,
    /// The party presented its token and registered its signed session key.
    Joined,
    /// The session started: the party can fetch the complete roster.
    Ready,
    /// The party fetched the roster and is running the protocol.
    Computing,
    Completed,
    Failed,
}

/// An attempted transition that the state machine does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal {kind} transition: {from} -> {to}")]
pub struct IllegalTransition {
    pub kind: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

impl From<IllegalTransition> for ApiError {
    fn from(e: IllegalTransition) -> Self {
        ApiError::new(ErrorCode::FailedPrecondition, e.to_string())
    }
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 6] = [
        Self::Created,
        Self::Waiting,
        Self::InProgress,
        Self::Completed,
        Self::Failed,
        Self::Expired,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Expired)
    }

    /// The one place that says which session transitions exist.
    pub fn can_transition_to(self, to: SessionStatus) -> bool {
        use SessionStatus::*;
        matches!(
            (self, to),
            (Created, Waiting)
                | (Created, InProgress)
                | (Waiting, InProgress)
                | (InProgress, Completed)
                | (Created | Waiting | InProgress, Failed)
                | (Created | Waiting | InProgress, Expired)
        )
    }

    pub fn transition(self, to: SessionStatus) -> Result<SessionStatus, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition {
                kind: "session",
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Waiting => "waiting",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

impl ParticipantStatus {
    pub const ALL: [ParticipantStatus; 6] = [
        Self::Invited,
        Self::Joined,
        Self::Ready,
        Self::Computing,
        Self::Completed,
        Self::Failed,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }

    /// The one place that says which participant transitions exist.
    pub fn can_transition_to(self, to: ParticipantStatus) -> bool {
        use ParticipantStatus::*;
        matches!(
            (self, to),
            (Invited, Joined)
                | (Joined, Ready)
                | (Ready, Computing)
                | (Computing, Completed)
                | (Invited | Joined | Ready | Computing, Failed)
        )
    }

    pub fn transition(self, to: ParticipantStatus) -> Result<ParticipantStatus, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition {
                kind: "participant",
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Joined => "joined",
            Self::Ready => "ready",
            Self::Computing => "computing",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

impl SessionType {
    pub const ALL: [SessionType; 4] = [Self::Keygen, Self::Sign, Self::Refresh, Self::Recovery];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keygen => "keygen",
            Self::Sign => "sign",
            Self::Refresh => "refresh",
            Self::Recovery => "recovery",
        }
    }
}

macro_rules! str_enum_impls {
    ($name:ident, $what:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ApiError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let all: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        ApiError::new(
                            ErrorCode::InvalidArgument,
                            format!(
                                concat!("unknown ", $what, " {:?}: expected one of {}"),
                                s,
                                all.join(", ")
                            ),
                        )
                    })
            }
        }
    };
}

str_enum_impls!(SessionType, "session type");
str_enum_impls!(SessionStatus, "session status");
str_enum_impls!(ParticipantStatus, "participant status");

/// The failure reason of a session a party declined for lack of capacity:
/// `<type> failed: overloaded: …`. The prefix is stable: entrances map it back to the
/// `overloaded` code (429), so that a caller retries instead of reporting a fault.
pub fn overloaded_failure(ty: SessionType, party: &crate::PartyId) -> String {
    format!("{ty} failed: overloaded: party {party} is at capacity; retry later")
}

/// Whether a session's failure reason says it was declined for lack of capacity.
pub fn is_overloaded_failure(reason: &str) -> bool {
    reason
        .split_once(" failed: ")
        .is_some_and(|(_, rest)| rest.starts_with("overloaded:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn happy_paths_are_legal() {
        use SessionStatus::*;
        let mut s = Created;
        for next in [Waiting, InProgress, Completed] {
            s = s.transition(next).unwrap_or(s);
            assert_eq!(s, next);
        }
        use ParticipantStatus as P;
        let mut p = P::Invited;
        for next in [P::Joined, P::Ready, P::Computing, P::Completed] {
            p = p.transition(next).unwrap_or(p);
            assert_eq!(p, next);
        }
    }

    #[test]
    fn terminal_states_are_final() {
        for from in SessionStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in SessionStatus::ALL {
                assert!(from.transition(to).is_err(), "{from} -> {to}");
            }
        }
        for from in ParticipantStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
        {
            for to in ParticipantStatus::ALL {
                assert!(from.transition(to).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in SessionStatus::ALL {
            assert_eq!(s.as_str().parse::<SessionStatus>().ok(), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::json!(s.as_str()))
            );
        }
        for s in ParticipantStatus::ALL {
            assert_eq!(s.as_str().parse::<ParticipantStatus>().ok(), Some(s));
        }
        for s in SessionType::ALL {
            assert_eq!(s.as_str().parse::<SessionType>().ok(), Some(s));
        }
        assert!("done".parse::<SessionStatus>().is_err());
    }

    fn session_status() -> impl Strategy<Value = SessionStatus> {
        proptest::sample::select(SessionStatus::ALL.to_vec())
    }

    fn participant_status() -> impl Strategy<Value = ParticipantStatus> {
        proptest::sample::select(ParticipantStatus::ALL.to_vec())
    }

    proptest! {
        /// Any sequence of attempted transitions never leaves a terminal state, never goes
        /// backwards, and takes at most 3 successful steps.
        #[test]
        fn session_walks_are_monotone(steps in proptest::collection::vec(session_status(), 0..40)) {
            let rank = |s: SessionStatus| match s {
                SessionStatus::Created => 0,
                SessionStatus::Waiting => 1,
                SessionStatus::InProgress => 2,
                _ => 3,
            };
            let mut state = SessionStatus::Created;
            let mut moves = 0;
            for to in steps {
                let before = state;
                match state.transition(to) {
                    Ok(next) => {
                        prop_assert!(!before.is_terminal());
                        prop_assert!(rank(next) > rank(before));
                        state = next;
                        moves += 1;
                    }
                    Err(e) => {
                        prop_assert_eq!(e.from, before.as_str());
                        prop_assert_eq!(state, before);
                    }
                }
            }
            prop_assert!(moves <= 3);
        }

        #[test]
        fn participant_walks_are_monotone(steps in proptest::collection::vec(participant_status(), 0..40)) {
            let rank = |s: ParticipantStatus| match s {
                ParticipantStatus::Invited => 0,
                ParticipantStatus::Joined => 1,
                ParticipantStatus::Ready => 2,
                ParticipantStatus::Computing => 3,
                _ => 4,
            };
            let mut state = ParticipantStatus::Invited;
            for to in steps {
                if let Ok(next) = state.transition(to) {
                    prop_assert!(!state.is_terminal());
                    prop_assert!(rank(next) > rank(state));
                    state = next;
                }
            }
        }
    }
}
