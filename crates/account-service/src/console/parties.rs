//! INTERIM party registry: the health of the parties the Account Service was told about
//! (`MPC_CONSOLE_PARTIES`, `MPC_CONSOLE_PARTY_API`), found by asking each one.
//!
//! The hardening work adds a real registry (parties register with the coordinator and heartbeat)
//! behind the same `GET /api/v1/parties` answer; this probe stands in for it until then and goes
//! when it lands. Per party: `/readyz` (live), `/api/v1/identity` (its identity key) and
//! `/metrics` (sessions running), each bounded by [`super::PROBE_TIMEOUT`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use utoipa::ToSchema;

use super::config::{PartyEndpoint, PartyKind};
use super::prom_text;

/// Answers younger than this are served again (several consoles polling share them).
const CACHE_FOR: Duration = Duration::from_secs(2);

/// One party, as `GET /api/v1/parties` describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartyView {
    pub party_id: String,
    /// `server` or `party_api`.
    pub kind: String,
    pub live: bool,
    /// The last time it answered.
    pub last_seen: Option<DateTime<Utc>>,
    pub active_sessions: u64,
    /// Hex of its Ed25519 identity key.
    pub identity_public_key: Option<String>,
    pub version: Option<String>,
}

/// `GET /api/v1/parties`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartyList {
    pub parties: Vec<PartyView>,
}

#[derive(Deserialize)]
struct Identity {
    identity_public_key: String,
}

#[derive(Default)]
struct State {
    answered_at: Option<Instant>,
    answer: Vec<PartyView>,
    last_seen: HashMap<String, DateTime<Utc>>,
    identities: HashMap<String, String>,
}

pub struct PartyProbe {
    client: super::HttpGet,
    parties: Vec<PartyEndpoint>,
    state: Mutex<State>,
}

impl PartyProbe {
    pub(crate) fn new(client: super::HttpGet, parties: Vec<PartyEndpoint>) -> Self {
        Self {
            client,
            parties,
            state: Mutex::new(State::default()),
        }
    }

    async fn active_sessions(&self, party: &PartyEndpoint) -> u64 {
        let gauge = match party.kind {
            PartyKind::Server => "mpc_party_active_sessions",
            PartyKind::PartyApi => "mpc_party_api_active_sessions",
        };
        let Ok(text) = self.client.get(&format!("{}/metrics", party.url)).await else {
            return 0;
        };
        let running: f64 = prom_text::parse(&text)
            .iter()
            .filter(|s| s.name == gauge)
            .map(|s| s.value)
            .sum();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let running = running.round().max(0.0) as u64;
        running
    }

    /// Every configured party, asked now (or a moment ago).
    pub async fn parties(&self) -> PartyList {
        let mut state = self.state.lock().await;
        if state.answered_at.is_some_and(|at| at.elapsed() < CACHE_FOR) {
            return PartyList {
                parties: state.answer.clone(),
            };
        }
        let mut answer = Vec::with_capacity(self.parties.len());
        for party in &self.parties {
            let live = self
                .client
                .get(&format!("{}/readyz", party.url))
                .await
                .is_ok();
            if live {
                state.last_seen.insert(party.party_id.clone(), Utc::now());
                if !state.identities.contains_key(&party.party_id)
                    && let Ok(body) = self
                        .client
                        .get(&format!("{}/api/v1/identity", party.url))
                        .await
                    && let Ok(identity) = serde_json::from_str::<Identity>(&body)
                {
                    state
                        .identities
                        .insert(party.party_id.clone(), identity.identity_public_key);
                }
            }
            answer.push(PartyView {
                party_id: party.party_id.clone(),
                kind: match party.kind {
                    PartyKind::Server => "server",
                    PartyKind::PartyApi => "party_api",
                }
                .into(),
                live,
                last_seen: state.last_seen.get(&party.party_id).copied(),
                active_sessions: if live {
                    self.active_sessions(party).await
                } else {
                    0
                },
                identity_public_key: state.identities.get(&party.party_id).cloned(),
                version: None,
            });
        }
        state.answered_at = Some(Instant::now());
        state.answer = answer.clone();
        PartyList { parties: answer }
    }
}
