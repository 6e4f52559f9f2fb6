//! Helpers for tests of this crate and of the services that use the bus.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use mpc_proto::{PartyId, SessionId, SessionType, Threshold};
use uuid::Uuid;

use crate::{EventKind, EventParticipant, SessionEvent};

/// `AMQP_URL`, or `None` (RabbitMQ tests skip with a notice) when it is unset outside CI.
/// Under CI (`CI` set) a missing URL panics: the RabbitMQ tests may not be skipped there.
pub fn amqp_url() -> Option<String> {
    match std::env::var("AMQP_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("AMQP_URL must be set under CI: RabbitMQ tests may not be skipped")
        }
        _ => {
            eprintln!("note: AMQP_URL is not set; skipping the RabbitMQ run of this test");
            None
        }
    }
}

/// A plausible event of `kind` for a new 2-of-3 keygen session, with a fresh `event_id`.
pub fn sample_event(kind: EventKind) -> SessionEvent {
    let participants = ["server-party-1", "server-party-2", "user-device"]
        .iter()
        .zip(0u16..)
        .filter_map(|(id, index)| {
            Some(EventParticipant {
                party_id: PartyId::parse(id).ok()?,
                party_index: index,
                device_type: Some(if index < 2 { "server" } else { "android" }.to_owned()),
            })
        })
        .collect();
    let now = Utc::now();
    SessionEvent {
        event_id: Uuid::new_v4(),
        kind,
        session_id: SessionId::new_random(),
        session_type: SessionType::Keygen,
        threshold: Threshold { t: 2, n: 3 },
        participants,
        join_tokens: BTreeMap::new(),
        key_id: None,
        message_hash: None,
        public_key: None,
        failure_reason: None,
        blamed_party: None,
        expires_at: now + Duration::minutes(10),
        occurred_at: now,
    }
}
