//! Storage of the Session Coordinator: sessions (`mpc_sessions`), their participants
//! (`session_participants`) and the event outbox (`coordinator_outbox`).
//!
//! Every state change is a compare-and-set (`… WHERE status = $expected`): when two coordinator
//! replicas share a database, exactly one of them wins each transition, and only the winner
//! publishes the event. The store does not decide which transitions are legal — the caller computes
//! them with `SessionStatus::transition` / `ParticipantStatus::transition` — it only applies them
//! atomically, together with the event that announces them (the outbox row is written in the same
//! transaction, so a state change is never lost even when the broker is down).
//!
//! Change notification: [`CoordinatorStore::subscribe_changes`] yields the id of every session that
//! changed, also when another replica changed it (PostgreSQL `LISTEN/NOTIFY`; SQLite is used by
//! one process, so an in-process channel suffices there).

#[macro_use]
mod sql;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mpc_proto::{ParticipantStatus, PartyId, SessionId, SessionStatus, SessionType, Threshold};
use sqlx::migrate::Migrator;
use tokio::sync::broadcast;

use crate::db::Db;
use crate::error::StoreError;
use crate::values::party_from_db;

pub use postgres::PgCoordinatorStore;
pub use sqlite::SqliteCoordinatorStore;

/// PostgreSQL migrations of the coordinator.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/coordinator/postgres");
/// SQLite migrations of the coordinator.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/coordinator/sqlite");

/// Applies the coordinator's migrations and opens its store on `db`.
pub async fn open(db: &Db) -> Result<Arc<dyn CoordinatorStore>, StoreError> {
    db.migrate("coordinator", &POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS)
        .await?;
    Ok(match db {
        Db::Postgres(pool) => Arc::new(PgCoordinatorStore::open(pool.clone()).await?),
        Db::Sqlite(pool) => Arc::new(SqliteCoordinatorStore::new(pool.clone())),
    })
}

/// The statuses a session can still leave (the expiry sweep looks at these).
pub const ACTIVE_SESSION_STATUSES: [SessionStatus; 3] = [
    SessionStatus::Created,
    SessionStatus::Waiting,
    SessionStatus::InProgress,
];

/// Recovery: the `helpers` rebuild the share of `target` at its index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoverySpec {
    pub target: PartyId,
    pub helpers: Vec<PartyId>,
}

/// A participant as the session is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewParticipant {
    pub party_id: PartyId,
    pub party_index: u16,
    pub device_type: Option<String>,
}

/// A validated session, ready to be stored with status `created` and every participant `invited`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    pub session_type: SessionType,
    pub threshold: Threshold,
    pub key_id: String,
    pub message_hash: Option<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
    pub recovery: Option<RecoverySpec>,
    pub participants: Vec<NewParticipant>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A completed signature as stored on the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSignature {
    pub r: [u8; 32],
    pub s: [u8; 32],
    /// Recovery id, 0 or 1.
    pub v: u8,
    pub der: Vec<u8>,
}

/// What one party reported when it finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartyReport {
    /// Keygen, refresh, recovery: the group public key it computed.
    PublicKey(Vec<u8>),
    /// Sign: the signature it computed.
    Signature { r: [u8; 32], s: [u8; 32], v: u8 },
}

/// A stored participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantRecord {
    pub party_id: PartyId,
    pub party_index: u16,
    pub device_type: Option<String>,
    pub status: ParticipantStatus,
    pub joined_at: Option<DateTime<Utc>>,
    /// Ed25519 identity public key, registered on join.
    pub identity_public_key: Option<Vec<u8>>,
    /// The party's signed session-key announcement, registered on join; opaque here.
    pub session_key: Option<Vec<u8>>,
    /// The registered process running its protocol, registered on join.
    pub host: Option<Host>,
    pub report: Option<PartyReport>,
    pub updated_at: DateTime<Utc>,
}

/// The registered process (party id and instance) that runs a participant's protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub party_id: PartyId,
    pub instance_id: String,
}

/// A joined participant of a session that is not over, as [`CoordinatorStore::hosted_by`]
/// finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostedParticipant {
    pub session_id: SessionId,
    pub party_id: PartyId,
    pub session_status: SessionStatus,
    pub instance_id: String,
}

/// A stored session with its participants, ordered by party index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub session_type: SessionType,
    pub threshold: Threshold,
    pub status: SessionStatus,
    pub key_id: String,
    pub message_hash: Option<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
    pub signature: Option<StoredSignature>,
    pub recovery: Option<RecoverySpec>,
    pub failure_reason: Option<String>,
    pub blamed_party: Option<PartyId>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub participants: Vec<ParticipantRecord>,
}

impl SessionRecord {
    pub fn participant(&self, party: &PartyId) -> Option<&ParticipantRecord> {
        self.participants.iter().find(|p| &p.party_id == party)
    }
}

/// An event to publish once the transaction that caused it has committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    pub event_id: uuid::Uuid,
    pub session_id: SessionId,
    /// `session.created`, …
    pub routing_key: String,
    /// The serialised event; opaque to the store. May hold join tokens: deleted once published.
    pub payload: String,
    /// The writer publishes the event itself right after the commit; until this time the relay
    /// leaves the row alone so the event is not published twice.
    pub claimed_until: DateTime<Utc>,
}

/// An outbox row waiting to be published.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: i64,
    pub event_id: uuid::Uuid,
    pub session_id: SessionId,
    pub routing_key: String,
    pub payload: String,
    pub attempts: u32,
}

impl std::fmt::Debug for OutboxRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload of `session.created` carries join tokens.
        f.debug_struct("OutboxRecord")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("session_id", &self.session_id)
            .field("routing_key", &self.routing_key)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// A compare-and-set on one participant: `from → to`, optionally registering the join keys or the
/// party's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantUpdate {
    pub session_id: SessionId,
    pub party_id: PartyId,
    pub from: ParticipantStatus,
    pub to: ParticipantStatus,
    pub at: DateTime<Utc>,
    /// On join: (identity public key, session key); also sets `joined_at` and `host`.
    pub join_keys: Option<(Vec<u8>, Vec<u8>)>,
    /// On join: the process running the participant's protocol.
    pub host: Option<Host>,
    pub report: Option<PartyReport>,
}

impl ParticipantUpdate {
    pub fn new(
        session_id: SessionId,
        party_id: PartyId,
        from: ParticipantStatus,
        to: ParticipantStatus,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            session_id,
            party_id,
            from,
            to,
            at,
            join_keys: None,
            host: None,
            report: None,
        }
    }
}

/// A compare-and-set on a session: `from → to`, in the same transaction every participant in
/// `participants.0` moves to `participants.1`, the given fields are set, and `event` is queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionUpdate {
    pub session_id: SessionId,
    pub from: SessionStatus,
    pub to: SessionStatus,
    pub at: DateTime<Utc>,
    /// Participant moves `(from, to)`, applied in order to every participant in `from`.
    pub participants: Vec<(ParticipantStatus, ParticipantStatus)>,
    pub failure_reason: Option<String>,
    pub blamed_party: Option<PartyId>,
    pub public_key: Option<Vec<u8>>,
    pub signature: Option<StoredSignature>,
    /// Sets `completed_at` to `at`.
    pub completed: bool,
    pub event: Option<OutboxEvent>,
}

impl SessionUpdate {
    pub fn new(
        session_id: SessionId,
        from: SessionStatus,
        to: SessionStatus,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            session_id,
            from,
            to,
            at,
            participants: Vec::new(),
            failure_reason: None,
            blamed_party: None,
            public_key: None,
            signature: None,
            completed: false,
            event: None,
        }
    }
}

/// The result of a compare-and-set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cas {
    /// This caller's change was applied; `outbox_id` is the queued event, if any.
    Applied { outbox_id: Option<i64> },
    /// The row was not in the expected state (another replica or request got there first).
    Conflict,
}

impl Cas {
    pub fn applied(self) -> bool {
        matches!(self, Cas::Applied { .. })
    }
}

/// The coordinator's storage interface, implemented for PostgreSQL and SQLite.
#[async_trait]
pub trait CoordinatorStore: Send + Sync + 'static {
    /// Stores a new session (status `created`, participants `invited`) and queues `event`.
    /// Returns the outbox id. A session id that exists already is a `Conflict`.
    async fn create_session(
        &self,
        session: &NewSession,
        event: &OutboxEvent,
    ) -> Result<i64, StoreError>;

    /// The session with its participants, or `None`.
    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError>;

    /// Compare-and-set on one participant. `Ok(false)` when it was not in `update.from` (or does
    /// not exist).
    async fn update_participant(&self, update: &ParticipantUpdate) -> Result<bool, StoreError>;

    /// Compare-and-set on a session (see [`SessionUpdate`]).
    async fn update_session(&self, update: &SessionUpdate) -> Result<Cas, StoreError>;

    /// Sessions not yet terminal whose deadline is at or before `now`, oldest deadline first.
    async fn expired_sessions(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// How many sessions are not terminal yet.
    async fn count_active_sessions(&self) -> Result<u64, StoreError>;

    /// Sessions still `created` or `waiting` that were created at or before `before`, oldest
    /// first: the ones whose parties did not all join in time.
    async fn unstarted_sessions(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Joined participants of sessions not over yet whose protocol runs in `host_party`, in
    /// any instance but `except_instance`.
    async fn hosted_by(
        &self,
        host_party: &PartyId,
        except_instance: Option<&str>,
    ) -> Result<Vec<HostedParticipant>, StoreError>;

    /// Undoes a join whose host is gone, so the party may join again: the participant goes back
    /// to `invited` (keys and host cleared) if it is still `joined` in `instance_id` and its
    /// session has not started. Returns whether it did.
    async fn reset_join(
        &self,
        session_id: SessionId,
        party_id: &PartyId,
        instance_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` outbox rows whose claim has lapsed, until `claim_until`, oldest first.
    /// A row claimed by one caller is not returned to another before `claim_until`.
    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, StoreError>;

    /// Removes a published event.
    async fn delete_outbox(&self, id: i64) -> Result<(), StoreError>;

    /// Records a failed publication; the row becomes claimable again at `retry_at`.
    async fn retry_outbox_at(&self, id: i64, retry_at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Sessions that changed (through any replica) from now on. A lagging receiver misses
    /// changes; callers that must not miss a change also re-read periodically.
    fn subscribe_changes(&self) -> broadcast::Receiver<SessionChanged>;
}

/// A session changed: its change was committed before `noticed`, so any read of the session
/// that begins after `noticed` sees it (watchers of one session share such reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionChanged {
    pub id: SessionId,
    pub noticed: std::time::Instant,
}

impl SessionChanged {
    pub fn now(id: SessionId) -> Self {
        Self {
            id,
            noticed: std::time::Instant::now(),
        }
    }
}

// ---- helpers shared by both backends ----

/// Capacity of the change channel; a watcher that lags behind re-reads its session.
const CHANGE_CHANNEL_CAPACITY: usize = 1024;

/// Signatures are stored as `r || s || v` (65 bytes) plus the DER encoding.
fn encode_signature(r: &[u8; 32], s: &[u8; 32], v: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(65);
    out.extend_from_slice(r);
    out.extend_from_slice(s);
    out.push(v);
    out
}

fn decode_signature(bytes: &[u8]) -> Result<([u8; 32], [u8; 32], u8), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("signature of {} bytes", bytes.len()));
    if bytes.len() != 65 {
        return Err(corrupt());
    }
    let r: [u8; 32] = bytes[..32].try_into().map_err(|_| corrupt())?;
    let s: [u8; 32] = bytes[32..64].try_into().map_err(|_| corrupt())?;
    Ok((r, s, bytes[64]))
}

/// The session's signature columns (`signature`, `signature_der`).
fn signature_from_db(
    signature: Option<Vec<u8>>,
    der: Option<Vec<u8>>,
) -> Result<Option<StoredSignature>, StoreError> {
    let Some(signature) = signature else {
        return Ok(None);
    };
    let (r, s, v) = decode_signature(&signature)?;
    Ok(Some(StoredSignature {
        r,
        s,
        v,
        der: der.unwrap_or_default(),
    }))
}

/// The recovery columns of a new session: (target, JSON array of helpers).
fn recovery_to_db(
    recovery: Option<&RecoverySpec>,
) -> Result<(Option<&str>, Option<String>), StoreError> {
    let Some(r) = recovery else {
        return Ok((None, None));
    };
    let helpers =
        serde_json::to_string(&r.helpers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((Some(r.target.as_str()), Some(helpers)))
}

fn recovery_from_db(
    target: Option<String>,
    helpers: Option<String>,
) -> Result<Option<RecoverySpec>, StoreError> {
    match (target, helpers) {
        (Some(target), Some(helpers)) => Ok(Some(RecoverySpec {
            target: party_from_db(&target)?,
            helpers: serde_json::from_str(&helpers)
                .map_err(|e| StoreError::Corrupt(format!("recovery helpers: {e}")))?,
        })),
        _ => Ok(None),
    }
}

/// The report columns of a participant update: (public key, r||s||v).
fn report_to_db(report: Option<&PartyReport>) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    match report {
        Some(PartyReport::PublicKey(key)) => (Some(key.clone()), None),
        Some(PartyReport::Signature { r, s, v }) => (None, Some(encode_signature(r, s, *v))),
        None => (None, None),
    }
}

fn report_from_db(
    public_key: Option<Vec<u8>>,
    signature: Option<Vec<u8>>,
) -> Result<Option<PartyReport>, StoreError> {
    Ok(match (public_key, signature) {
        (Some(key), _) => Some(PartyReport::PublicKey(key)),
        (None, Some(sig)) => {
            let (r, s, v) = decode_signature(&sig)?;
            Some(PartyReport::Signature { r, s, v })
        }
        (None, None) => None,
    })
}
