//! Session-level transitions: start, completion, failure and expiry. Each is a compare-and-set
//! on the session row; only the caller whose change was applied logs, counts and publishes.

use std::collections::BTreeMap;

use mpc_bus::EventKind;
use mpc_proto::{ApiError, ParticipantStatus, PartyId, SessionId, SessionStatus, SessionType};
use mpc_store::coordinator::{Cas, PartyReport, SessionRecord, SessionUpdate, StoredSignature};

use crate::events::{outbox_row, session_event};
use crate::metrics::Outcome;
use crate::service::{Coordinator, now, short};
use crate::verify::verify_signature;

/// Every compare-and-set that loses re-reads and tries again; a session changes state at most
/// three times, so a few rounds always suffice.
const MAX_ROUNDS: usize = 5;
/// Sessions expired per sweep; the rest wait for the next tick.
const EXPIRY_BATCH: u32 = 100;

impl Coordinator {
    /// After a join: `created → waiting` for the first, `→ in_progress` once everyone joined.
    pub(crate) async fn start_when_everyone_joined(&self, id: SessionId) -> Result<(), ApiError> {
        for _ in 0..MAX_ROUNDS {
            let session = self.get(id).await?;
            if !matches!(
                session.status,
                SessionStatus::Created | SessionStatus::Waiting
            ) {
                return Ok(());
            }
            let everyone_joined = session
                .participants
                .iter()
                .all(|p| p.status == ParticipantStatus::Joined);
            if !everyone_joined {
                if session.status == SessionStatus::Waiting {
                    return Ok(());
                }
                let next = session.status.transition(SessionStatus::Waiting)?;
                let update = SessionUpdate::new(id, session.status, next, now());
                self.store.update_session(&update).await?;
                continue; // re-check: others may have joined meanwhile
            }
            let next = session.status.transition(SessionStatus::InProgress)?;
            let mut update = SessionUpdate::new(id, session.status, next, now());
            let ready = ParticipantStatus::Joined.transition(ParticipantStatus::Ready)?;
            update.participants = vec![(ParticipantStatus::Joined, ready)];
            let event = session_event(EventKind::Started, &session, BTreeMap::new());
            update.event = Some(outbox_row(&event)?);
            if let Cas::Applied { outbox_id } = self.store.update_session(&update).await? {
                tracing::info!(session_id = %id, "Session {} started: all parties ready", short(id));
                if let Some(outbox_id) = outbox_id {
                    self.publisher.publish_committed(outbox_id, &event).await;
                }
                return Ok(());
            }
        }
        Ok(())
    }

    /// After a report: fails the session when two reports disagree, completes it once every
    /// participant reported the same result. Returns the failure reason when it failed.
    pub(crate) async fn complete_when_everyone_agrees(
        &self,
        id: SessionId,
    ) -> Result<Option<String>, ApiError> {
        for _ in 0..MAX_ROUNDS {
            let session = self.get(id).await?;
            if session.status != SessionStatus::InProgress {
                return Ok(session
                    .failure_reason
                    .filter(|_| session.status == SessionStatus::Failed));
            }
            let reports: Vec<&PartyReport> = session
                .participants
                .iter()
                .filter_map(|p| p.report.as_ref())
                .collect();
            if reports.windows(2).any(|w| w[0] != w[1]) {
                let what = match session.session_type {
                    SessionType::Sign => "signature",
                    _ => "public key",
                };
                let reason = format!("{} failed: {what} mismatch", session.session_type);
                self.end_session(session, SessionStatus::Failed, reason.clone(), None)
                    .await?;
                return Ok(Some(reason));
            }
            let everyone_reported = session
                .participants
                .iter()
                .all(|p| p.status == ParticipantStatus::Completed);
            let Some(result) = reports.first().copied().cloned() else {
                return Ok(None);
            };
            if !everyone_reported {
                return Ok(None);
            }
            let next = session.status.transition(SessionStatus::Completed)?;
            let mut update = SessionUpdate::new(id, session.status, next, now());
            update.completed = true;
            let mut done = session.clone();
            match result {
                PartyReport::PublicKey(key) => {
                    update.public_key = Some(key.clone());
                    done.public_key = Some(key);
                }
                PartyReport::Signature { r, s, v } => {
                    let key = session.public_key.as_deref().unwrap_or_default();
                    let hash = session.message_hash.as_deref().unwrap_or_default();
                    // Verified when reported; the DER encoding comes from the same check.
                    let der = verify_signature(key, hash, &r, &s, v)
                        .map_err(|e| ApiError::internal(&e))?;
                    update.signature = Some(StoredSignature { r, s, v, der });
                }
            }
            let event = session_event(EventKind::Completed, &done, BTreeMap::new());
            update.event = Some(outbox_row(&event)?);
            if let Cas::Applied { outbox_id } = self.store.update_session(&update).await? {
                let seconds = (update.at - session.created_at).as_seconds_f64();
                self.metrics.ended(
                    session.session_type,
                    session.threshold,
                    Outcome::Completed,
                    Some(seconds),
                );
                let kind = capitalised(session.session_type);
                tracing::info!(session_id = %id, session_type = %session.session_type, duration_seconds = seconds, "{kind} completed: session={}, duration={seconds:.1}s", short(id));
                if let Some(outbox_id) = outbox_id {
                    self.publisher.publish_committed(outbox_id, &event).await;
                }
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Fails or expires a session that is not terminal; non-terminal participants fail with it.
    /// Returns whether this call made the change (false: it had ended already).
    pub(crate) async fn end_session(
        &self,
        mut session: SessionRecord,
        to: SessionStatus,
        reason: String,
        blamed: Option<PartyId>,
    ) -> Result<bool, ApiError> {
        let (kind, outcome) = if to == SessionStatus::Expired {
            (EventKind::Expired, Outcome::Expired)
        } else {
            (EventKind::Failed, Outcome::Failed)
        };
        let moves: Vec<_> = ParticipantStatus::ALL
            .into_iter()
            .filter(|p| p.can_transition_to(ParticipantStatus::Failed))
            .map(|p| (p, ParticipantStatus::Failed))
            .collect();
        for _ in 0..MAX_ROUNDS {
            if session.status.is_terminal() {
                return Ok(false);
            }
            let next = session.status.transition(to)?;
            let mut update = SessionUpdate::new(session.id, session.status, next, now());
            update.participants = moves.clone();
            update.failure_reason = Some(reason.clone());
            update.blamed_party = blamed.clone();
            let mut ended = session.clone();
            ended.failure_reason = Some(reason.clone());
            ended.blamed_party = blamed.clone();
            let event = session_event(kind, &ended, BTreeMap::new());
            update.event = Some(outbox_row(&event)?);
            if let Cas::Applied { outbox_id } = self.store.update_session(&update).await? {
                self.metrics
                    .ended(session.session_type, session.threshold, outcome, None);
                tracing::warn!(
                    session_id = %session.id,
                    blamed_party = blamed.as_ref().map(|p| p.as_str()),
                    "Session {} {}: {reason}",
                    short(session.id),
                    next
                );
                if let Some(outbox_id) = outbox_id {
                    self.publisher.publish_committed(outbox_id, &event).await;
                }
                return Ok(true);
            }
            session = self.get(session.id).await?;
        }
        Err(ApiError::internal(&"session kept changing while ending it"))
    }

    /// Expires every session past its deadline. Returns how many this replica expired.
    pub async fn expire_due(&self) -> usize {
        let now = now();
        let ids = match self.store.expired_sessions(now, EXPIRY_BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "expiry sweep cannot read sessions");
                return 0;
            }
        };
        let mut expired = 0;
        for id in ids {
            let session = match self.get(id).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(session_id = %id, error = %e, "expiry sweep cannot read session");
                    continue;
                }
            };
            let reason = format!("{} failed: timeout", session.session_type);
            match self
                .end_session(session, SessionStatus::Expired, reason, None)
                .await
            {
                Ok(true) => expired += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(session_id = %id, error = %e, "cannot expire session"),
            }
        }
        expired
    }

    /// Expiry sweep and gauge refresh every `interval` until shutdown; the first sweep runs at
    /// once, catching sessions that expired while no coordinator was running.
    pub async fn run_expiry(
        self: std::sync::Arc<Self>,
        interval: std::time::Duration,
        shutdown: mpc_service::Shutdown,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    self.expire_due().await;
                    self.fail_unjoined().await;
                    self.sweep_silent_hosts().await;
                    match self.store.count_active_sessions().await {
                        Ok(n) => self.metrics.set_active(n),
                        Err(e) => tracing::debug!(error = %e, "cannot count active sessions"),
                    }
                }
            }
        }
    }
}

/// `Keygen`, `Sign`, … as the guide's log lines start.
fn capitalised(ty: SessionType) -> String {
    let name = ty.as_str();
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}
