//! How session outcomes reach accounts: from the bus (`session.completed/failed/expired` on the
//! durable queue `mpc.account` unless configured otherwise), and, in case an event was missed, from the coordinator itself
//! (`GetSession`) when a client reads a session or account and in a periodic reconciliation.
//!
//! All paths end in [`AccountService::observe`], which applies an outcome with the store's
//! compare-and-set: whichever path comes first wins, the others change nothing. Event ids already
//! handled are remembered (a bounded set) so that a redelivery does not even reach the database.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use mpc_bus::{EventBus, EventKind, SessionEvent};
use mpc_proto::SessionType;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{PartyId, SessionId};
use mpc_service::Shutdown;
use mpc_store::StoreError;
use mpc_store::account::{
    AccountSessionRecord, AccountSessionStatus, NewAuditEntry, NewShare, SessionOutcome,
};

use crate::service::AccountService;
use crate::validate;

/// The Account Service's durable queue by default (`AccountConfig::bus_queue`).
pub const QUEUE: &str = "mpc.account";
const PATTERNS: [&str; 3] = ["session.completed", "session.failed", "session.expired"];
const RECENT_EVENTS: usize = 4096;

/// Event ids handled lately, oldest evicted first.
#[derive(Debug, Default)]
pub struct RecentEvents {
    order: VecDeque<uuid::Uuid>,
    seen: HashSet<uuid::Uuid>,
}

impl RecentEvents {
    /// Whether `id` was seen; records it if not.
    pub fn check_and_insert(&mut self, id: uuid::Uuid) -> bool {
        if !self.seen.insert(id) {
            return true;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_EVENTS
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        false
    }
}

/// A terminal session, as an event or the coordinator describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub session_id: SessionId,
    pub status: AccountSessionStatus,
    pub public_key: Option<Vec<u8>>,
    /// (party, index, device type)
    pub participants: Vec<(PartyId, u16, Option<String>)>,
    pub failure_reason: Option<String>,
    pub blamed_party: Option<PartyId>,
}

impl Observed {
    pub fn from_event(event: &SessionEvent) -> Option<Self> {
        let status = match event.kind {
            EventKind::Completed => AccountSessionStatus::Completed,
            EventKind::Failed => AccountSessionStatus::Failed,
            EventKind::Expired => AccountSessionStatus::Expired,
            EventKind::Created | EventKind::Started => return None,
        };
        Some(Self {
            session_id: event.session_id,
            status,
            public_key: event
                .public_key
                .as_deref()
                .and_then(|k| hex::decode(k).ok()),
            participants: event
                .participants
                .iter()
                .map(|p| (p.party_id.clone(), p.party_index, p.device_type.clone()))
                .collect(),
            failure_reason: event.failure_reason.clone(),
            blamed_party: event.blamed_party.clone(),
        })
    }

    /// `None` while the session is still running.
    pub fn from_info(info: &pb::SessionInfo) -> Option<Self> {
        let status = match pb::SessionStatus::try_from(info.status).ok()? {
            pb::SessionStatus::Completed => AccountSessionStatus::Completed,
            pb::SessionStatus::Failed => AccountSessionStatus::Failed,
            pb::SessionStatus::Expired => AccountSessionStatus::Expired,
            _ => return None,
        };
        Some(Self {
            session_id: SessionId::parse(&info.session_id).ok()?,
            status,
            public_key: (!info.public_key.is_empty()).then(|| info.public_key.clone()),
            participants: info
                .participants
                .iter()
                .filter_map(|p| {
                    Some((
                        PartyId::parse(&p.party_id).ok()?,
                        u16::try_from(p.party_index).ok()?,
                        (!p.device_type.is_empty()).then(|| p.device_type.clone()),
                    ))
                })
                .collect(),
            failure_reason: (!info.failure_reason.is_empty()).then(|| info.failure_reason.clone()),
            blamed_party: PartyId::parse(&info.blamed_party_id).ok(),
        })
    }
}

fn share_for(party: &PartyId, index: u16, device_type: Option<&str>) -> NewShare {
    let share_type = validate::share_type(device_type);
    NewShare {
        party_id: party.clone(),
        party_index: index,
        share_type,
        device_type: device_type.map(str::to_owned),
        storage_location: Some(validate::storage_location(party, share_type, device_type)),
    }
}

/// What the account store should record for `observed`, a session of `session`'s kind.
fn outcome_for(
    session: &AccountSessionRecord,
    observed: &Observed,
) -> Result<SessionOutcome, String> {
    let reason = || {
        observed
            .failure_reason
            .clone()
            .unwrap_or_else(|| format!("{} failed", session.session_type))
    };
    match observed.status {
        AccountSessionStatus::Failed => Ok(SessionOutcome::Failed {
            reason: reason(),
            blamed_party: observed.blamed_party.clone(),
        }),
        AccountSessionStatus::Expired | AccountSessionStatus::Pending => {
            Ok(SessionOutcome::Expired { reason: reason() })
        }
        AccountSessionStatus::Completed => match session.session_type {
            SessionType::Keygen => {
                let public_key = observed
                    .public_key
                    .clone()
                    .ok_or("completed keygen without a public key")?;
                mpc_protocol::PublicKey::from_sec1(&public_key)
                    .map_err(|_| "completed keygen with an invalid public key")?;
                let shares = observed
                    .participants
                    .iter()
                    .map(|(p, i, d)| share_for(p, *i, d.as_deref()))
                    .collect();
                Ok(SessionOutcome::KeygenCompleted { public_key, shares })
            }
            SessionType::Recovery => {
                let plan = session.recovery.as_ref().ok_or("recovery without a plan")?;
                let (party, index, _) = observed
                    .participants
                    .iter()
                    .find(|(p, _, _)| p == &plan.new_party_id)
                    .ok_or("the new party is not a participant of the recovery")?;
                Ok(SessionOutcome::RecoveryCompleted {
                    new_share: share_for(party, *index, plan.new_device_type.as_deref()),
                })
            }
            SessionType::Sign | SessionType::Refresh => Ok(SessionOutcome::Completed),
        },
    }
}

impl AccountService {
    /// Applies a terminal session to its account (once), and audits the outcome. Sessions the
    /// service did not create are ignored.
    pub async fn observe(&self, observed: &Observed) -> Result<(), StoreError> {
        // Ended: its admission slot is free, whether or not this replica applies the outcome.
        self.in_flight.release(observed.session_id);
        let Some(session) = self.store.get_session(observed.session_id).await? else {
            return Ok(());
        };
        if session.status != AccountSessionStatus::Pending {
            return Ok(());
        }
        let outcome = match outcome_for(&session, observed) {
            Ok(o) => o,
            Err(why) => {
                tracing::error!(session_id = %observed.session_id, why, "cannot apply session outcome");
                return Ok(());
            }
        };
        // Before the outcome is applied: a crash in between enqueues again on the next
        // observation (a no-op for what is there), never loses the event.
        self.enqueue_webhooks(&session, observed, &outcome).await?;
        if !self
            .store
            .finish_session(observed.session_id, &outcome, Utc::now())
            .await?
        {
            return Ok(());
        }
        tracing::info!(
            session_id = %observed.session_id,
            account_id = %session.account_id,
            session_type = %session.session_type,
            status = %observed.status,
            "session outcome applied"
        );
        let (status, body) = match &outcome {
            SessionOutcome::Failed {
                reason,
                blamed_party,
            } => (
                422,
                serde_json::json!({
                    "session_type": session.session_type,
                    "failure_reason": reason,
                    "blamed_party_id": blamed_party,
                }),
            ),
            SessionOutcome::Expired { reason } => (
                410,
                serde_json::json!({ "session_type": session.session_type, "failure_reason": reason }),
            ),
            _ => (
                200,
                serde_json::json!({
                    "session_type": session.session_type,
                    "public_key": observed.public_key.as_deref().map(hex::encode),
                }),
            ),
        };
        let entry = NewAuditEntry {
            session_id: Some(observed.session_id),
            account_id: Some(session.account_id),
            operation: format!("session.{}", observed.status),
            user_id: None,
            ip_address: None,
            user_agent: None,
            request_body: Some(body),
            response_status: Some(status),
            created_at: Utc::now(),
        };
        if let Err(e) = self.store.insert_audit(&entry).await {
            tracing::warn!(error = %e, "could not write the audit log");
        }
        if session.session_type == SessionType::Keygen {
            self.metrics.refresh(&*self.store).await;
        }
        Ok(())
    }

    /// Enqueues the webhook events of an outcome for the key that started the session.
    async fn enqueue_webhooks(
        &self,
        session: &AccountSessionRecord,
        observed: &Observed,
        outcome: &SessionOutcome,
    ) -> Result<(), StoreError> {
        let subscribed = self.webhooks.subscribed(observed.session_id).await?;
        if subscribed.is_empty() {
            return Ok(());
        }
        let wants = |e: &str| subscribed.iter().any(|s| s == e);
        let kind = session.session_type;
        let mut events = Vec::new();
        match outcome {
            SessionOutcome::Failed {
                reason,
                blamed_party,
            } if wants("session.failed") => events.push((
                "session.failed",
                serde_json::json!({
                    "session_type": kind,
                    "failure_reason": reason,
                    "blamed_party_id": blamed_party,
                }),
            )),
            SessionOutcome::Expired { reason } if wants("session.expired") => events.push((
                "session.expired",
                serde_json::json!({ "session_type": kind, "failure_reason": reason }),
            )),
            SessionOutcome::KeygenCompleted { public_key, .. } => {
                let key = serde_json::json!({
                    "session_type": kind,
                    "public_key": hex::encode(public_key),
                    "ethereum_address": mpc_store::account::ethereum_address(public_key),
                });
                if wants("session.completed") {
                    events.push(("session.completed", key.clone()));
                }
                if wants("account.activated") {
                    events.push(("account.activated", key));
                }
            }
            SessionOutcome::Completed
                if wants("session.completed") && kind == SessionType::Sign =>
            {
                // The bus event does not carry the signature: the coordinator has it.
                let info = self
                    .coordinator
                    .get_session(observed.session_id)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("coordinator: {}", e.message)))?;
                let view = crate::http::mpc_session_view(&info)
                    .map_err(|e| StoreError::Corrupt(e.message))?;
                events.push((
                    "session.completed",
                    serde_json::json!({
                        "session_type": kind,
                        "public_key": view.public_key,
                        "ethereum_address": view.ethereum_address,
                        "message_hash": view.message_hash,
                        "signature": view.signature,
                        "r": view.r,
                        "s": view.s,
                        "v": view.v,
                    }),
                ));
            }
            SessionOutcome::Completed | SessionOutcome::RecoveryCompleted { .. }
                if wants("session.completed") =>
            {
                events.push((
                    "session.completed",
                    serde_json::json!({
                        "session_type": kind,
                        "public_key": observed.public_key.as_deref().map(hex::encode),
                    }),
                ));
            }
            _ => {}
        }
        self.webhooks
            .enqueue(observed.session_id, session.account_id, &events)
            .await
    }

    /// Asks the coordinator about a session still pending here and applies its outcome if it
    /// has one. Failures only cost freshness: they are logged, not returned.
    pub async fn reconcile(&self, session_id: SessionId) -> Option<pb::SessionInfo> {
        match self.coordinator.get_session(session_id).await {
            Ok(info) => {
                if let Some(observed) = Observed::from_info(&info)
                    && let Err(e) = self.observe(&observed).await
                {
                    tracing::warn!(error = %e, %session_id, "could not apply session outcome");
                }
                Some(info)
            }
            Err(e) => {
                tracing::debug!(error = %e, %session_id, "could not ask the coordinator");
                None
            }
        }
    }

    async fn handle_event(&self, event: &SessionEvent) -> Result<(), StoreError> {
        let seen = self
            .recent_events
            .lock()
            .map(|mut r| r.check_and_insert(event.event_id))
            .unwrap_or(false);
        if seen {
            return Ok(());
        }
        match Observed::from_event(event) {
            Some(observed) => self.observe(&observed).await.inspect_err(|_| {
                // Not handled after all: let the redelivery through.
                if let Ok(mut r) = self.recent_events.lock() {
                    r.seen.remove(&event.event_id);
                }
            }),
            None => Ok(()),
        }
    }
}

/// Consumes session outcomes from the durable queue `queue` until `stop`; (re)subscribes with
/// backoff when the broker is unavailable.
pub async fn run_consumer(
    service: Arc<AccountService>,
    bus: Arc<dyn EventBus>,
    queue: String,
    stop: Shutdown,
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let mut subscription = match bus.subscribe(&queue, &PATTERNS).await {
            Ok(s) => {
                backoff = Duration::from_millis(100);
                s
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to session events; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                next = subscription.next() => next,
            };
            let delivery = match next {
                None => return,
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "event subscription failed; resubscribing");
                    break;
                }
            };
            match service.handle_event(&delivery.event).await {
                Ok(()) => {
                    if let Err(e) = delivery.ack().await {
                        tracing::warn!(error = %e, "could not acknowledge an event");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, session_id = %delivery.event.session_id, "could not apply an event; requeueing");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    if let Err(e) = delivery.nack(true).await {
                        tracing::warn!(error = %e, "could not requeue an event");
                    }
                }
            }
        }
    }
}

/// Periodically asks the coordinator about sessions still pending here (older than `after`),
/// refreshes the account gauge, and drops idempotency keys older than a day.
pub async fn run_reconciler(
    service: Arc<AccountService>,
    interval: Duration,
    after: Duration,
    stop: Shutdown,
) {
    let after = TimeDelta::from_std(after).unwrap_or(TimeDelta::seconds(5));
    loop {
        service.metrics.refresh(&*service.store).await;
        match service
            .store
            .pending_sessions(Utc::now() - after, 100)
            .await
        {
            Ok(pending) => {
                for session in pending {
                    service.reconcile(session.session_id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list pending sessions"),
        }
        if let Err(e) = service
            .store
            .purge_idempotency_keys(Utc::now() - TimeDelta::days(1))
            .await
        {
            tracing::warn!(error = %e, "could not purge idempotency keys");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_events_forget_the_oldest() {
        let mut r = RecentEvents::default();
        let first = uuid::Uuid::new_v4();
        assert!(!r.check_and_insert(first));
        assert!(r.check_and_insert(first));
        for _ in 0..RECENT_EVENTS {
            r.check_and_insert(uuid::Uuid::new_v4());
        }
        assert!(
            !r.check_and_insert(first),
            "evicted after {RECENT_EVENTS} newer ids"
        );
        assert!(r.order.len() <= RECENT_EVENTS + 1);
    }
}
