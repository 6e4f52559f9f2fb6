//! Session events: built from the stored session, queued in the outbox in the same transaction as
//! the state change, published right after the commit by the replica that made the change, and
//! retried by the outbox relay when the broker was unreachable. Delivery is at least once;
//! consumers de-duplicate on `event_id`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use mpc_bus::{EventBus, EventKind, EventParticipant, SessionEvent};
use mpc_proto::PartyId;
use mpc_service::Shutdown;
use mpc_store::coordinator::{CoordinatorStore, OutboxEvent, SessionRecord};

use mpc_proto::ApiError;

/// The writer of an outbox row publishes it itself; the relay leaves it alone for this long.
const WRITER_LEASE: TimeDelta = TimeDelta::seconds(30);
/// How long a relay keeps the rows it claimed before another replica may take them.
const RELAY_LEASE: TimeDelta = TimeDelta::seconds(30);
/// An unreachable broker must not hold a client request for long.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
const RELAY_BATCH: u32 = 100;

/// The event describing `session` after a change of kind `kind`.
pub fn session_event(
    kind: EventKind,
    session: &SessionRecord,
    join_tokens: BTreeMap<PartyId, String>,
) -> SessionEvent {
    SessionEvent {
        event_id: uuid::Uuid::new_v4(),
        kind,
        session_id: session.id,
        session_type: session.session_type,
        threshold: session.threshold,
        participants: session
            .participants
            .iter()
            .map(|p| EventParticipant {
                party_id: p.party_id.clone(),
                party_index: p.party_index,
                device_type: p.device_type.clone(),
            })
            .collect(),
        join_tokens,
        key_id: Some(session.key_id.clone()),
        message_hash: session.message_hash.as_deref().map(hex::encode),
        public_key: session.public_key.as_deref().map(hex::encode),
        failure_reason: session.failure_reason.clone(),
        blamed_party: session.blamed_party.clone(),
        expires_at: session.expires_at,
        occurred_at: Utc::now(),
    }
}

/// The outbox row for `event`.
pub fn outbox_row(event: &SessionEvent) -> Result<OutboxEvent, ApiError> {
    Ok(OutboxEvent {
        event_id: event.event_id,
        session_id: event.session_id,
        routing_key: event.routing_key().to_owned(),
        payload: serde_json::to_string(event).map_err(|e| ApiError::internal(&e))?,
        claimed_until: Utc::now() + WRITER_LEASE,
    })
}

/// Publishes events and keeps the outbox drained.
#[derive(Clone)]
pub struct Publisher {
    store: Arc<dyn CoordinatorStore>,
    bus: Arc<dyn EventBus>,
}

impl Publisher {
    pub fn new(store: Arc<dyn CoordinatorStore>, bus: Arc<dyn EventBus>) -> Self {
        Self { store, bus }
    }

    /// Publishes an event whose outbox row `outbox_id` was just committed. On failure the row
    /// stays queued and the relay retries it; the state change itself is never lost.
    pub async fn publish_committed(&self, outbox_id: i64, event: &SessionEvent) {
        if self.try_publish(event).await {
            if let Err(e) = self.store.delete_outbox(outbox_id).await {
                // Published but still queued: the relay publishes it again (consumers de-duplicate).
                tracing::warn!(error = %e, event_id = %event.event_id, "cannot remove published event from the outbox");
            }
        } else if let Err(e) = self.store.retry_outbox_at(outbox_id, Utc::now()).await {
            tracing::warn!(error = %e, "cannot hand event to the outbox relay; it retries after its lease");
        }
    }

    async fn try_publish(&self, event: &SessionEvent) -> bool {
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.bus.publish(event)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, session_id = %event.session_id, event = event.routing_key(), "event publish failed; queued for retry");
                false
            }
            Err(_) => {
                tracing::warn!(session_id = %event.session_id, event = event.routing_key(), "event publish timed out; queued for retry");
                false
            }
        }
    }

    /// One pass of the relay: publishes every claimable outbox row. Returns how many it published.
    pub async fn relay_once(&self) -> usize {
        let now = Utc::now();
        let rows = match self
            .store
            .claim_outbox(now, now + RELAY_LEASE, RELAY_BATCH)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event outbox");
                return 0;
            }
        };
        let mut published = 0;
        for row in rows {
            let event: SessionEvent = match serde_json::from_str(&row.payload) {
                Ok(event) => event,
                Err(e) => {
                    tracing::error!(error = %e, outbox_id = row.id, "dropping unreadable outbox event");
                    let _ = self.store.delete_outbox(row.id).await;
                    continue;
                }
            };
            if self.try_publish(&event).await {
                published += 1;
                if let Err(e) = self.store.delete_outbox(row.id).await {
                    tracing::warn!(error = %e, "cannot remove published event from the outbox");
                }
            } else {
                // Back off: 1 s, 2 s, 4 s, … up to a minute.
                let delay = TimeDelta::seconds(1_i64 << row.attempts.min(6));
                let _ = self.store.retry_outbox_at(row.id, Utc::now() + delay).await;
                // The broker is down: leave the rest for the next pass.
                break;
            }
        }
        published
    }

    /// Runs the relay every `interval` until shutdown.
    pub async fn run_relay(self, interval: Duration, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    self.relay_once().await;
                }
            }
        }
    }
}
