//! Storage of the Message Router: envelopes, per-recipient deliveries with gapless sequence
//! numbers, and the sessions the router has seen (deadline, end, purge).
//!
//! Payloads are opaque ciphertext: stored and returned byte for byte, never logged, and hidden
//! from `Debug`. Sequence numbers come from a per-(session, recipient) counter row updated in the
//! inserting transaction, so they are atomic under concurrent senders and across router replicas
//! sharing one PostgreSQL database, and a rolled-back insert leaves no gap.

#[macro_use]
mod sql;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mpc_proto::{MessageId, PartyId, SessionId};
use sqlx::migrate::Migrator;

use crate::db::Db;
use crate::error::StoreError;

pub use postgres::PgRouterStore;
pub use sqlite::SqliteRouterStore;

/// PostgreSQL migrations of the router.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/router/postgres");
/// SQLite migrations of the router.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/router/sqlite");

/// The PostgreSQL `NOTIFY` channel on which a committed delivery announces its mailbox.
pub const NOTIFY_CHANNEL: &str = "mpc_router";

/// How long a purged session's tombstone outlives its deadline plus the grace period. A join
/// token is invalid after the deadline, so no one can ask about the session once this has
/// passed; until then a late reader gets "session not found" rather than an empty mailbox.
pub const TOMBSTONE_RETENTION: Duration = Duration::from_secs(3600);

/// Applies the router's migrations (tracked in `_mpc_migrations_router`).
pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    db.migrate("router", &POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS)
        .await
}

/// The router store for `db`'s backend.
pub fn store(db: &Db) -> Arc<dyn RouterStore> {
    match db {
        Db::Postgres(pool) => Arc::new(PgRouterStore::new(pool.clone())),
        Db::Sqlite(pool) => Arc::new(SqliteRouterStore::new(pool.clone())),
    }
}

/// One recipient's mailbox: the unit of ordering and of wake-ups.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox {
    pub session_id: SessionId,
    pub recipient: PartyId,
}

impl Mailbox {
    pub fn new(session_id: SessionId, recipient: PartyId) -> Self {
        Self {
            session_id,
            recipient,
        }
    }

    /// `<session id>:<party id>`, the `NOTIFY` payload. Party ids never contain a space and a
    /// UUID never contains `:` in its hyphenated form, so the split is unambiguous.
    pub fn to_notify_payload(&self) -> String {
        format!("{}:{}", self.session_id, self.recipient)
    }

    pub fn parse_notify_payload(payload: &str) -> Option<Self> {
        let (session, party) = payload.split_once(':')?;
        Some(Self {
            session_id: SessionId::parse(session).ok()?,
            recipient: PartyId::parse(party).ok()?,
        })
    }
}

/// An envelope the service has validated (token, sender, recipients, size) and wants stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEnvelope {
    pub message_id: MessageId,
    pub session_id: SessionId,
    pub from_party: PartyId,
    /// As addressed: `None` for a broadcast.
    pub to_party: Option<PartyId>,
    /// Who gets a delivery: `[to_party]`, or every other party for a broadcast. Not empty.
    pub recipients: Vec<PartyId>,
    pub round: u32,
    pub payload: Vec<u8>,
    /// The session's deadline (the join token's `exp`), recorded with the session's first
    /// envelope: the retention fallback when no end event arrives.
    pub session_deadline: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for NewEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEnvelope")
            .field("message_id", &self.message_id)
            .field("session_id", &self.session_id)
            .field("from_party", &self.from_party)
            .field("to_party", &self.to_party)
            .field("recipients", &self.recipients)
            .field("round", &self.round)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// An envelope as one recipient receives it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// The recipient's sequence number: 1, 2, 3, … without gaps.
    pub seq: u64,
    pub message_id: MessageId,
    pub session_id: SessionId,
    pub from_party: PartyId,
    pub to_party: Option<PartyId>,
    pub round: u32,
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for StoredEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredEnvelope")
            .field("seq", &self.seq)
            .field("message_id", &self.message_id)
            .field("session_id", &self.session_id)
            .field("from_party", &self.from_party)
            .field("to_party", &self.to_party)
            .field("round", &self.round)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// What [`RouterStore::route`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteOutcome {
    /// Stored, with one delivery per recipient and the seq each got.
    Stored { deliveries: Vec<(PartyId, u64)> },
    /// The same `message_id` with the same content was stored before; nothing was stored now.
    Duplicate { recipients: u32 },
    /// The `message_id` is taken by an envelope with other content.
    Conflict,
    /// The session has ended (or was purged): no more envelopes are accepted.
    SessionEnded,
}

/// What [`RouterStore::fetch`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Envelopes with `seq > after_seq` in seq order (possibly none), and whether more wait.
    Envelopes {
        envelopes: Vec<StoredEnvelope>,
        has_more: bool,
    },
    /// The session's envelopes were deleted by the retention sweep.
    SessionPurged,
}

/// What [`RouterStore::sweep`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions whose envelopes were deleted in this sweep.
    pub purged_sessions: Vec<SessionId>,
    pub deleted_messages: u64,
    /// Tombstones removed (sessions long past their deadline).
    pub forgotten_sessions: u64,
}

/// A wake-up from the database: another process (or this one) committed deliveries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A delivery for this mailbox was committed.
    Mailbox(Mailbox),
    /// The listening connection was lost and re-established: notifications may have been
    /// missed, so every waiter should look again.
    Reconnected,
}

/// Router storage, implemented for PostgreSQL and SQLite.
#[async_trait]
pub trait RouterStore: Send + Sync {
    /// Stores an envelope and its deliveries atomically, unless the session has ended or the
    /// `message_id` is known. Records the session (with `session_deadline`) on its first
    /// envelope. On PostgreSQL, notifies [`NOTIFY_CHANNEL`] for each recipient on commit.
    async fn route(&self, envelope: &NewEnvelope) -> Result<RouteOutcome, StoreError>;

    /// Up to `limit` envelopes of `mailbox` with `seq > after_seq`, in order. The payloads
    /// returned add up to at most `max_bytes`, except that the first envelope is always
    /// returned whole. A session the router has not seen yet is an empty mailbox.
    async fn fetch(
        &self,
        mailbox: &Mailbox,
        after_seq: u64,
        limit: u32,
        max_bytes: u64,
    ) -> Result<FetchOutcome, StoreError>;

    /// Marks the session ended at `ended_at` (idempotent: the first end wins), recording it with
    /// `deadline` if the router has not seen it yet. Later envelopes are refused.
    async fn end_session(
        &self,
        session_id: SessionId,
        deadline: DateTime<Utc>,
        ended_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Deletes the envelopes of every session that ended, or whose deadline passed, at least
    /// `grace` before `now`, leaving a tombstone; removes tombstones older than
    /// `deadline + grace + TOMBSTONE_RETENTION`.
    async fn sweep(&self, now: DateTime<Utc>, grace: Duration) -> Result<SweepReport, StoreError>;

    /// A feed of committed deliveries from every process sharing the database, or `None` when
    /// the backend has no such thing (SQLite is single-process: wake waiters in-process).
    async fn change_feed(&self) -> Result<Option<ChangeFeed>, StoreError>;
}

/// Cross-process wake-ups (PostgreSQL `LISTEN`).
pub struct ChangeFeed {
    listener: sqlx::postgres::PgListener,
}

impl fmt::Debug for ChangeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeFeed").finish_non_exhaustive()
    }
}

impl ChangeFeed {
    /// The next change. Errors only when the database is gone for good (pool closed) or the
    /// reconnect failed; a dropped connection that comes back is [`Change::Reconnected`].
    pub async fn next(&mut self) -> Result<Change, StoreError> {
        loop {
            match self.listener.try_recv().await? {
                None => return Ok(Change::Reconnected),
                Some(n) => match Mailbox::parse_notify_payload(n.payload()) {
                    Some(mailbox) => return Ok(Change::Mailbox(mailbox)),
                    None => {
                        tracing::warn!(
                            channel = n.channel(),
                            "ignoring malformed router notification"
                        );
                    }
                },
            }
        }
    }
}

/// The stored envelope whose `message_id` a new envelope reuses, as a backend read it.
struct Existing<'r> {
    same_session: bool,
    from_party: &'r str,
    to_party: Option<&'r str>,
    round: i64,
    payload: &'r [u8],
    /// Its number of deliveries.
    recipients: i64,
}

/// A retry of the same envelope (the timestamps and deadline may differ) is a duplicate;
/// anything else reusing the id is a conflict.
fn outcome_for_existing(existing: Existing<'_>, envelope: &NewEnvelope) -> RouteOutcome {
    let same = existing.same_session
        && existing.from_party == envelope.from_party.as_str()
        && existing.to_party == envelope.to_party.as_ref().map(|p| p.as_str())
        && existing.round == i64::from(envelope.round)
        && existing.payload == envelope.payload.as_slice();
    if same {
        RouteOutcome::Duplicate {
            recipients: u32::try_from(existing.recipients).unwrap_or(u32::MAX),
        }
    } else {
        RouteOutcome::Conflict
    }
}

/// `u64` sequence numbers are stored as `BIGINT`; anything past `i64::MAX` cannot exist.
fn seq_to_db(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_from_db(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative seq {seq}")))
}

fn round_from_db(round: i64) -> Result<u32, StoreError> {
    u32::try_from(round).map_err(|_| StoreError::Corrupt(format!("round {round} out of range")))
}

fn duration_to_chrono(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// Recipients in a fixed order, so that concurrent senders lock the counter rows in the same
/// order and cannot deadlock.
fn sorted_recipients(envelope: &NewEnvelope) -> Vec<&PartyId> {
    let mut recipients: Vec<&PartyId> = envelope.recipients.iter().collect();
    recipients.sort();
    recipients.dedup();
    recipients
}

/// How many envelopes of a page (their payload sizes, in seq order) fit in `limit` and
/// `max_bytes`; the first always fits. The stores do this in SQL; this is the model their tests
/// compare against.
#[cfg(test)]
pub(crate) fn page_len(sizes: &[i64], limit: usize, max_bytes: u64) -> usize {
    let mut total: u64 = 0;
    let mut n = 0;
    for &size in sizes.iter().take(limit) {
        let size = u64::try_from(size).unwrap_or(0);
        if n > 0 && total.saturating_add(size) > max_bytes {
            break;
        }
        total = total.saturating_add(size);
        n += 1;
    }
    n
}

#[cfg(test)]
mod unit_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Notifications come from the database, possibly from other versions or other
        /// services on the channel: parsing never panics, and valid mailboxes round-trip.
        #[test]
        fn notify_payload_parse_is_total(s in "\\PC{0,80}", party in "[A-Za-z0-9_.:-]{1,128}") {
            let _ = Mailbox::parse_notify_payload(&s);
            let mailbox = Mailbox::new(SessionId::new_random(), PartyId::parse(&party).unwrap());
            prop_assert_eq!(Mailbox::parse_notify_payload(&mailbox.to_notify_payload()), Some(mailbox));
        }
    }

    #[test]
    fn notify_payload_round_trips() {
        let mailbox = Mailbox::new(
            SessionId::new_random(),
            PartyId::parse("server_party_1").unwrap(),
        );
        let payload = mailbox.to_notify_payload();
        assert_eq!(Mailbox::parse_notify_payload(&payload), Some(mailbox));
        assert_eq!(Mailbox::parse_notify_payload("garbage"), None);
        assert_eq!(Mailbox::parse_notify_payload("x:y"), None);
    }

    #[test]
    fn page_len_respects_limit_and_bytes_but_always_returns_one() {
        assert_eq!(page_len(&[], 10, 100), 0);
        assert_eq!(page_len(&[10, 10, 10], 2, 100), 2);
        assert_eq!(page_len(&[60, 40, 1], 10, 100), 2);
        assert_eq!(page_len(&[500, 1], 10, 100), 1);
        assert_eq!(page_len(&[0, 0, 0], 10, 0), 3);
    }

    #[test]
    fn debug_hides_payload() {
        let env = StoredEnvelope {
            seq: 1,
            message_id: MessageId::new_random(),
            session_id: SessionId::new_random(),
            from_party: PartyId::parse("a").unwrap(),
            to_party: None,
            round: 1,
            payload: b"top secret bytes".to_vec(),
            created_at: Utc::now(),
        };
        let shown = format!("{env:?}");
        assert!(!shown.contains("top secret"), "{shown}");
        assert!(!shown.contains("116, 111, 112"), "{shown}");
        assert!(shown.contains("payload_len: 16"), "{shown}");
    }
}
