//! The events the coordinator publishes about sessions.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use mpc_proto::{PartyId, SessionId, SessionType, Threshold};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a session. The routing key is `session.<kind>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Started,
    Completed,
    Failed,
    Expired,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        Self::Created,
        Self::Started,
        Self::Completed,
        Self::Failed,
        Self::Expired,
    ];

    /// `session.created`, `session.started`, …
    pub fn routing_key(self) -> &'static str {
        match self {
            Self::Created => "session.created",
            Self::Started => "session.started",
            Self::Completed => "session.completed",
            Self::Failed => "session.failed",
            Self::Expired => "session.expired",
        }
    }
}

/// One participant as the event describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventParticipant {
    pub party_id: PartyId,
    pub party_index: u16,
    /// `server`, `android`, `ios`, … as given at session creation.
    pub device_type: Option<String>,
}

/// A session event. Serialised as JSON on the wire.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// Unique per event; consumers de-duplicate redeliveries on it.
    pub event_id: Uuid,
    pub kind: EventKind,
    pub session_id: SessionId,
    pub session_type: SessionType,
    pub threshold: Threshold,
    pub participants: Vec<EventParticipant>,
    /// `session.created` only: the join tokens of the parties that join by themselves (the server
    /// parties). The bus is internal to the system; these never leave it, and `Debug` hides them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub join_tokens: BTreeMap<PartyId, String>,
    /// The key the session uses (sign, refresh, recovery): the account id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Sign sessions: the 32-byte hash to sign, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_hash: Option<String>,
    /// The group public key, hex `04…` (known for sign/refresh/recovery; keygen: once completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// `session.failed` / `session.expired`: why, in the guide's wording (`keygen failed: timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// `session.failed`: the party the protocol blamed, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blamed_party: Option<PartyId>,
    pub expires_at: DateTime<Utc>,
    pub occurred_at: DateTime<Utc>,
}

impl SessionEvent {
    pub fn routing_key(&self) -> &'static str {
        self.kind.routing_key()
    }

    /// Whether `party` takes part in the session.
    pub fn involves(&self, party: &PartyId) -> bool {
        self.participants.iter().any(|p| &p.party_id == party)
    }
}

impl fmt::Debug for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionEvent")
            .field("event_id", &self.event_id)
            .field("kind", &self.kind)
            .field("session_id", &self.session_id)
            .field("session_type", &self.session_type)
            .field("threshold", &self.threshold)
            .field("participants", &self.participants)
            .field(
                "join_tokens",
                &format_args!("[{} REDACTED]", self.join_tokens.len()),
            )
            .field("key_id", &self.key_id)
            .field("failure_reason", &self.failure_reason)
            .field("blamed_party", &self.blamed_party)
            .finish_non_exhaustive()
    }
}
