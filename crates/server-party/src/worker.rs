//! Consuming session events and running sessions.
//!
//! - `session.created` naming this party with a token for it: the session runs in its own task
//!   at once. Joining and waiting for the other parties hold nothing scarce (only the engine's
//!   CPU steps are bounded, by the process's `ComputePool`), so sessions never wait on each
//!   other in a cycle. Memory is bounded by `max_concurrent_sessions`: beyond it the party
//!   declines at once as busy (the session fails as `overloaded`, nobody is blamed) instead of
//!   letting it wait out its lifetime. The delivery is acknowledged only when the session is
//!   finished and recorded, so a crash leaves it in the durable queue. A redelivery of a session already handled is acknowledged and ignored;
//!   one the previous process left half-done is reported as failed (its engine state is gone,
//!   and the coordinator would refuse new session keys anyway).
//! - `session.completed` activates this party's pending share of the session (retiring and
//!   erasing the key's previous share after a refresh or recovery); `session.failed` and
//!   `session.expired` delete it. The store makes this independent of the order in which the
//!   share and the outcome arrive.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use mpc_bus::{Delivery, EventBus, EventKind, SessionEvent, Subscription};
use mpc_client::{
    PartyContext, PartyError, PartyOutput, PartyWork, Roster, SessionHooks, SignExpectation,
};
use mpc_proto::{PartyId, SessionId, SessionStatus, SessionType};
use mpc_protocol::{MessageHash, SealingKey};
use mpc_service::Shutdown;
use mpc_store::party::{KeyBan, LocalState, PartyStore, PendingOutcome, SessionOutcome};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::keys::{open_active_share, seal_share};
use crate::metrics::{LocalOutcome, PartyMetrics};

/// Everything the party's tasks share.
pub(crate) struct Party {
    pub(crate) party_id: PartyId,
    pub(crate) store: Arc<dyn PartyStore>,
    pub(crate) ctx: PartyContext,
    pub(crate) kek: SealingKey,
    /// Sessions held at once at most (memory); more are declined as busy.
    pub(crate) max_sessions: usize,
    /// Sessions running in this process (a redelivery of one of these is a duplicate, not a
    /// leftover of a crash).
    pub(crate) running: Mutex<HashSet<SessionId>>,
    pub(crate) metrics: PartyMetrics,
}

impl Party {
    /// Sessions running here now (for the registry's heartbeat).
    pub(crate) fn active_sessions(&self) -> u32 {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        u32::try_from(running.len()).unwrap_or(u32::MAX)
    }
}

const PATTERNS: [&str; 1] = ["session.*"];
const BUS_RETRY: Duration = Duration::from_secs(1);

/// Sleeps; true when `stop` came first.
async fn pause(stop: &Shutdown, d: Duration) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(d) => false,
    }
}

/// Consumes the party's queue until `stop`; then lets running sessions report and end, for up
/// to `grace`.
pub(crate) async fn consume(
    party: Arc<Party>,
    bus: Arc<dyn EventBus>,
    queue: String,
    stop: Shutdown,
    grace: Duration,
) {
    let mut tasks = JoinSet::new();
    // Kept until the tasks are done: their acknowledgements go through it.
    let mut subscription: Option<Box<dyn Subscription>> = None;
    loop {
        let Some(sub) = subscription.as_mut() else {
            match bus.subscribe(&queue, &PATTERNS).await {
                Ok(sub) => subscription = Some(sub),
                Err(e) => {
                    tracing::warn!(party_id = %party.party_id, error = %e, "cannot subscribe to session events; retrying");
                    if pause(&stop, BUS_RETRY).await {
                        break;
                    }
                }
            }
            continue;
        };
        tokio::select! {
            () = stop.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    tracing::error!(party_id = %party.party_id, "a session task panicked");
                }
            }
            next = sub.next() => match next {
                Some(Ok(delivery)) => dispatch(&party, delivery, &mut tasks).await,
                Some(Err(e)) => {
                    tracing::warn!(party_id = %party.party_id, error = %e, "event bus error");
                    if pause(&stop, BUS_RETRY).await {
                        break;
                    }
                }
                None => {
                    tracing::warn!(party_id = %party.party_id, "event subscription ended; re-subscribing");
                    subscription = None;
                    if pause(&stop, BUS_RETRY).await {
                        break;
                    }
                }
            },
        }
    }
    party.ctx.cancel.cancel();
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(party_id = %party.party_id, "sessions still running after the shutdown grace; abandoning them");
    }
    drop(tasks);
    drop(subscription);
}

async fn dispatch(party: &Arc<Party>, delivery: Delivery, tasks: &mut JoinSet<()>) {
    let event = &delivery.event;
    if !event.involves(&party.party_id) {
        ack(delivery).await;
        return;
    }
    match event.kind {
        EventKind::Created => match event.join_tokens.get(&party.party_id) {
            // Not ours to join by ourselves (a device party with our id would be a mistake).
            None => ack(delivery).await,
            Some(token) => {
                let span = tracing::info_span!(
                    "session",
                    session_id = %event.session_id,
                    party_id = %party.party_id,
                    session_type = %event.session_type,
                );
                let token = token.clone();
                tasks.spawn(run_created(party.clone(), delivery, token).instrument(span));
            }
        },
        EventKind::Completed => record(party, delivery, SessionOutcome::Completed).await,
        EventKind::Failed => record(party, delivery, SessionOutcome::Failed).await,
        EventKind::Expired => record(party, delivery, SessionOutcome::Expired).await,
        EventKind::Started => ack(delivery).await,
    }
}

async fn ack(delivery: Delivery) {
    if let Err(e) = delivery.ack().await {
        // The delivery goes back to the queue and comes again: handling is idempotent.
        tracing::debug!(error = %e, "acknowledgement failed");
    }
}

/// Applies a session's end to this party's shares.
async fn record(party: &Party, delivery: Delivery, outcome: SessionOutcome) {
    let event = &delivery.event;
    let key_id = event.key_id.clone().unwrap_or_default();
    match party
        .store
        .record_outcome(
            event.session_id,
            event.session_type,
            &key_id,
            outcome,
            Utc::now(),
        )
        .await
    {
        Ok(effect) => {
            if effect.activated.is_some() || effect.retired.is_some() || effect.deleted > 0 {
                tracing::info!(
                    session_id = %event.session_id,
                    party_id = %party.party_id,
                    key_id = %key_id,
                    %outcome,
                    activated = effect.activated.is_some(),
                    retired = effect.retired.is_some(),
                    deleted = effect.deleted,
                    "applied the session's end to the party's shares"
                );
            }
            ack(delivery).await;
        }
        Err(e) => {
            tracing::error!(session_id = %event.session_id, party_id = %party.party_id, error = %e, "cannot record the session's end; it will be redelivered");
            tokio::time::sleep(BUS_RETRY).await;
            if let Err(e) = delivery.nack(true).await {
                tracing::debug!(error = %e, "nack failed");
            }
        }
    }
}

/// Removes the session from the running set when dropped.
struct Running<'a> {
    party: &'a Party,
    session_id: SessionId,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.party
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.session_id);
    }
}

async fn run_created(party: Arc<Party>, delivery: Delivery, token: String) {
    let event = delivery.event.clone();
    let session_id = event.session_id;
    let inserted = party
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(session_id);
    if !inserted {
        tracing::info!("session.created delivered again while the session runs here; ignored");
        ack(delivery).await;
        return;
    }
    let _running = Running {
        party: &party,
        session_id,
    };
    if party.active_sessions() as usize > party.max_sessions {
        decline_busy(&party, &event, &token).await;
        ack(delivery).await;
        return;
    }
    let finished = handle(&party, &event, &token).await;
    if finished {
        ack(delivery).await;
    } else if let Err(e) = delivery.nack(true).await {
        tracing::debug!(error = %e, "nack failed");
    }
}

/// Declines a session for lack of room: it fails at once as `overloaded`, nobody blamed.
async fn decline_busy(party: &Party, event: &SessionEvent, token: &str) {
    tracing::warn!(
        max_sessions = party.max_sessions,
        "declining a session: this party holds as many sessions as it may"
    );
    if let Err(e) = party.ctx.coordinator.report_busy(token).await {
        tracing::info!(error = %e, "cannot report the session as declined");
    }
    party
        .metrics
        .ended(event.session_type, LocalOutcome::Skipped, None);
}

/// Runs one session from its `session.created` event. False when nothing could be recorded
/// (the database is away): the event is then redelivered.
async fn handle(party: &Party, event: &SessionEvent, token: &str) -> bool {
    let ty = event.session_type;
    let key_id = event.key_id.clone().unwrap_or_default();
    let me = &party.party_id;
    match party
        .store
        .begin_session(event.session_id, ty, &key_id, Utc::now())
        .await
    {
        Ok(None) => {}
        Ok(Some(seen)) => {
            if seen.local_state == LocalState::Running {
                // A previous process of this party stopped in the middle of it.
                let reason = format!("{ty} failed: party {me} restarted during the session");
                tracing::warn!(%reason, "session left unfinished by a previous run");
                if let Err(e) = party
                    .ctx
                    .coordinator
                    .report_failure(token, &reason, None)
                    .await
                {
                    tracing::info!(error = %e, "cannot report the interrupted session");
                }
                if let Err(e) = party
                    .store
                    .finish_session(event.session_id, Utc::now())
                    .await
                {
                    tracing::warn!(error = %e, "cannot record the interrupted session as finished");
                }
            } else {
                tracing::info!("session already handled; event ignored");
            }
            party.metrics.ended(ty, LocalOutcome::Skipped, None);
            return true;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record the session; it will be redelivered");
            tokio::time::sleep(BUS_RETRY).await;
            return false;
        }
    }

    if let Some(error) = frozen(party, ty, &key_id, event).await {
        let reason = error.failure_reason(ty, me);
        tracing::warn!(%reason, "refusing a session with a frozen key");
        let blamed = error.blamed_party().cloned();
        if let Err(e) = party
            .ctx
            .coordinator
            .report_failure(token, &reason, blamed.as_ref())
            .await
        {
            tracing::info!(error = %e, "cannot report the refusal");
        }
        finish(party, event.session_id).await;
        party.metrics.ended(ty, LocalOutcome::Skipped, None);
        return true;
    }

    let started = Instant::now();
    let running = party.metrics.running();
    let mut hooks = Hooks {
        party,
        session_id: event.session_id,
        event_key_id: key_id.clone(),
        message_hash: event
            .message_hash
            .as_deref()
            .and_then(|h| MessageHash::from_hex(h).ok()),
    };
    let result = mpc_client::run_session_with(&party.ctx, token, &mut hooks).await;
    drop(running);
    match result {
        Ok(_) => {
            tracing::info!(
                duration_ms = started.elapsed().as_millis() as u64,
                "session done; result reported"
            );
            party.metrics.ended(
                ty,
                LocalOutcome::Reported,
                Some(started.elapsed().as_secs_f64()),
            );
        }
        Err(error) => {
            tracing::warn!(%error, "session failed");
            if error.requires_ban()
                && let Some(blamed) = error.blamed_party()
            {
                let ban = KeyBan {
                    key_id: key_id.clone(),
                    party_id: blamed.clone(),
                    reason: error.failure_reason(ty, me),
                    session_id: event.session_id,
                    created_at: Utc::now(),
                };
                match party.store.ban(&ban).await {
                    Ok(()) => {
                        tracing::error!(key_id = %key_id, banned = %blamed, "key frozen for a party that failed a protocol check; an operator must clear it")
                    }
                    Err(e) => tracing::error!(error = %e, "cannot record the key freeze"),
                }
            }
            party.metrics.ended(ty, LocalOutcome::Failed, None);
        }
    }
    finish(party, event.session_id).await;
    true
}

async fn finish(party: &Party, session_id: SessionId) {
    if let Err(e) = party.store.finish_session(session_id, Utc::now()).await {
        tracing::warn!(error = %e, "cannot record the session as finished");
    }
}

/// A refusal when the key is frozen for one of the session's parties.
async fn frozen(
    party: &Party,
    ty: SessionType,
    key_id: &str,
    event: &SessionEvent,
) -> Option<PartyError> {
    if ty == SessionType::Keygen {
        return None;
    }
    let bans = match party.store.bans(key_id).await {
        Ok(bans) => bans,
        Err(e) => return Some(PartyError::Internal(format!("reading key bans: {e}"))),
    };
    let ban = bans.into_iter().find(|b| event.involves(&b.party_id))?;
    Some(PartyError::Untrusted {
        party: ban.party_id,
        why: format!(
            "key {key_id} is frozen for it after a failed protocol check (session {}); an operator must clear the freeze",
            ban.session_id
        ),
    })
}

/// The server party's part of the driver: its share in, its new share out (pending).
struct Hooks<'a> {
    party: &'a Party,
    session_id: SessionId,
    event_key_id: String,
    message_hash: Option<MessageHash>,
}

#[async_trait]
impl SessionHooks for Hooks<'_> {
    async fn work(&mut self, roster: &Roster) -> Result<PartyWork, PartyError> {
        if roster.key_id != self.event_key_id {
            return Err(PartyError::Mismatch(
                "the roster names another key than the session's event".into(),
            ));
        }
        let store = self.party.store.as_ref();
        let kek = &self.party.kek;
        let key_id = roster.key_id.as_str();
        Ok(match roster.session_type {
            SessionType::Keygen => {
                let existing = store
                    .active_share(key_id)
                    .await
                    .map_err(|e| PartyError::Internal(format!("reading the share: {e}")))?;
                if existing.is_some() {
                    return Err(PartyError::Local(format!(
                        "already holds a share for key {key_id}; a keygen would replace it"
                    )));
                }
                PartyWork::Keygen
            }
            SessionType::Sign => PartyWork::Sign {
                share: open_active_share(store, kek, key_id, &roster.me).await?,
                expected: SignExpectation {
                    key_id: Some(self.event_key_id.clone()),
                    message_hash: self.message_hash,
                },
            },
            SessionType::Refresh => PartyWork::Refresh {
                share: open_active_share(store, kek, key_id, &roster.me).await?,
            },
            SessionType::Recovery => {
                let target = roster.recovery.as_ref().map(|r| &r.target);
                if target == Some(&roster.me) {
                    PartyWork::Recovery { share: None }
                } else {
                    PartyWork::Recovery {
                        share: Some(open_active_share(store, kek, key_id, &roster.me).await?),
                    }
                }
            }
        })
    }

    async fn keep(&mut self, roster: &Roster, output: &PartyOutput) -> Result<(), PartyError> {
        let PartyOutput::Share(share) = output else {
            return Ok(());
        };
        let new = seal_share(&self.party.kek, roster, share, self.session_id)?;
        match self.party.store.put_pending_share(&new).await {
            Ok(PendingOutcome::Pending | PendingOutcome::Activated { .. }) => Ok(()),
            Ok(PendingOutcome::Discarded(outcome)) => Err(PartyError::SessionEnded {
                status: match outcome {
                    SessionOutcome::Expired => SessionStatus::Expired,
                    _ => SessionStatus::Failed,
                },
                reason: "the session ended before this party stored its share".into(),
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot store the share");
                Err(PartyError::Local("cannot store its share".into()))
            }
        }
    }
}
