//! Storage of one server party: its sealed identity key, its sealed key shares with their
//! lifecycle (pending → active → retired), the sessions it handled, and keys frozen for a
//! misbehaving party.
//!
//! Each party has its own database (its own SQLite file, or its own PostgreSQL database or
//! schema), so no party can read another's rows. Everything secret arrives here already sealed
//! (AES-256-GCM, bound to key id, party id and index); the store never sees a plaintext share,
//! and `Debug` shows only the length of a sealed blob.
//!
//! Share lifecycle, order-independent:
//! - [`PartyStore::put_pending_share`] stores the share of a session before the party reports.
//!   If the session's end is already known, the share goes straight to active (completed) or is
//!   discarded (failed/expired).
//! - [`PartyStore::record_outcome`] records how a session ended: `completed` activates its
//!   pending share and retires the key's previous active share (refresh, recovery), erasing that
//!   one's ciphertext; `failed`/`expired` deletes the pending share.
//! - At most one active share per key (a unique partial index).

#[macro_use]
mod sql;
mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mpc_proto::{PartyId, SessionId, SessionType, Threshold};
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::db::Db;
use crate::error::StoreError;

pub use postgres::PgPartyStore;
pub use sqlite::SqlitePartyStore;

/// PostgreSQL migrations of a server party.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/party/postgres");
/// SQLite migrations of a server party.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/party/sqlite");

/// Applies the party's migrations (tracked in `_mpc_migrations_party`).
pub async fn migrate(db: &Db) -> Result<(), StoreError> {
    db.migrate("party", &POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS)
        .await
}

/// The party store for `db`'s backend.
pub fn store(db: &Db) -> Arc<dyn PartyStore> {
    match db {
        Db::Postgres(pool) => Arc::new(PgPartyStore::new(pool.clone())),
        Db::Sqlite(pool) => Arc::new(SqlitePartyStore::new(pool.clone())),
    }
}

/// Migrates, then returns the store.
pub async fn open(db: &Db) -> Result<Arc<dyn PartyStore>, StoreError> {
    migrate(db).await?;
    Ok(store(db))
}

/// Where a share is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShareStatus {
    /// Stored before the party reported; not usable until the session completes.
    Pending,
    /// The key's current share.
    Active,
    /// Replaced by a refresh or recovery; its ciphertext is gone.
    Retired,
}

/// How a session ended at the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionOutcome {
    Completed,
    Failed,
    Expired,
}

/// What this party did with a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LocalState {
    /// The party learned how the session ended without working on it.
    Unseen,
    /// The party is working on it (or crashed while it was).
    Running,
    /// The party reported its result or gave up.
    Finished,
}

macro_rules! db_enum {
    ($ty:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),*
                }
            }
        }

        impl FromStr for $ty {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok(Self::$variant),)*
                    other => Err(StoreError::Corrupt(format!(
                        concat!("unknown ", stringify!($ty), " {:?}"),
                        other
                    ))),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

db_enum!(ShareStatus { Pending => "pending", Active => "active", Retired => "retired" });
db_enum!(SessionOutcome { Completed => "completed", Failed => "failed", Expired => "expired" });
db_enum!(LocalState { Unseen => "unseen", Running => "running", Finished => "finished" });

/// The party's identity key, sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredIdentity {
    pub party_id: PartyId,
    /// Hex of the 32-byte Ed25519 public key.
    pub public_key: String,
    pub sealed_key: Vec<u8>,
    pub kek_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for StoredIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredIdentity")
            .field("party_id", &self.party_id)
            .field("public_key", &self.public_key)
            .field("sealed_key_len", &self.sealed_key.len())
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// A share to store as pending.
#[derive(Clone, PartialEq, Eq)]
pub struct NewShare {
    pub id: Uuid,
    /// The account id of the group key.
    pub key_id: String,
    pub party_id: PartyId,
    pub party_index: u16,
    pub threshold: Threshold,
    /// Hex of the 65-byte uncompressed group key.
    pub public_key: String,
    /// The session that made it.
    pub session_id: SessionId,
    pub sealed_share: Vec<u8>,
    pub kek_id: String,
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for NewShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewShare")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("party_id", &self.party_id)
            .field("party_index", &self.party_index)
            .field("session_id", &self.session_id)
            .field("sealed_share_len", &self.sealed_share.len())
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// A stored share.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareRecord {
    pub id: Uuid,
    pub key_id: String,
    pub party_id: PartyId,
    pub party_index: u16,
    pub threshold: Threshold,
    pub public_key: String,
    pub session_id: SessionId,
    pub status: ShareStatus,
    /// `None` once retired (erased).
    pub sealed_share: Option<Vec<u8>>,
    pub kek_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ShareRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareRecord")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("party_id", &self.party_id)
            .field("party_index", &self.party_index)
            .field("session_id", &self.session_id)
            .field("status", &self.status)
            .field(
                "sealed_share_len",
                &self.sealed_share.as_ref().map(Vec::len),
            )
            .field("kek_id", &self.kek_id)
            .finish_non_exhaustive()
    }
}

/// What [`PartyStore::put_pending_share`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingOutcome {
    /// Stored as pending: it waits for the session's end.
    Pending,
    /// The session had completed already: stored as active, retiring the key's previous active
    /// share (its id) if there was one.
    Activated { retired: Option<Uuid> },
    /// The session had failed or expired already: nothing stored.
    Discarded(SessionOutcome),
}

/// What [`PartyStore::record_outcome`] did to the shares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutcomeEffect {
    /// The session's share, now active.
    pub activated: Option<Uuid>,
    /// The key's previous active share, now retired and erased.
    pub retired: Option<Uuid>,
    /// Pending shares deleted because the session failed or expired.
    pub deleted: u64,
    /// The outcome that counts: the first one recorded for the session.
    pub outcome: Option<SessionOutcome>,
}

/// A session this party has seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandledSession {
    pub session_id: SessionId,
    pub session_type: SessionType,
    pub key_id: String,
    pub local_state: LocalState,
    pub outcome: Option<SessionOutcome>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A key frozen for one party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyBan {
    pub key_id: String,
    pub party_id: PartyId,
    pub reason: String,
    pub session_id: SessionId,
    pub created_at: DateTime<Utc>,
}

/// A server party's storage, implemented for PostgreSQL and SQLite.
#[async_trait]
pub trait PartyStore: Send + Sync {
    /// The identity key, if one was created.
    async fn identity(&self) -> Result<Option<StoredIdentity>, StoreError>;

    /// Stores `identity` unless one exists; returns the stored one either way (so two processes
    /// starting at once end up with the same key).
    async fn create_identity(
        &self,
        identity: &StoredIdentity,
    ) -> Result<StoredIdentity, StoreError>;

    /// Replaces the sealed identity key if it is still sealed under `old_kek`.
    async fn reseal_identity(
        &self,
        old_kek: &str,
        sealed_key: &[u8],
        new_kek: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Marks the session as being worked on. `None` when this is the first time; otherwise the
    /// existing record (a redelivered event, or a session that ended before we started).
    async fn begin_session(
        &self,
        session_id: SessionId,
        session_type: SessionType,
        key_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<HandledSession>, StoreError>;

    /// The party is done with the session (reported or gave up).
    async fn finish_session(
        &self,
        session_id: SessionId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Stores a session's new share as pending, or straight away as active or not at all when
    /// the session's end is already recorded. A second share for the same session is a
    /// `Conflict`.
    async fn put_pending_share(&self, share: &NewShare) -> Result<PendingOutcome, StoreError>;

    /// Records how a session ended (the first outcome counts) and applies it to the session's
    /// pending share. Idempotent.
    async fn record_outcome(
        &self,
        session_id: SessionId,
        session_type: SessionType,
        key_id: &str,
        outcome: SessionOutcome,
        now: DateTime<Utc>,
    ) -> Result<OutcomeEffect, StoreError>;

    /// The key's active share.
    async fn active_share(&self, key_id: &str) -> Result<Option<ShareRecord>, StoreError>;

    /// Every share of the key, oldest first (retired ones without ciphertext).
    async fn shares(&self, key_id: &str) -> Result<Vec<ShareRecord>, StoreError>;

    /// Up to `limit` pending or active shares sealed under `kek_id`.
    async fn sealed_under(&self, kek_id: &str, limit: u32) -> Result<Vec<ShareRecord>, StoreError>;

    /// Replaces a share's ciphertext if it is still sealed under `old_kek` (compare-and-set, so
    /// an interrupted rotation resumes where it stopped).
    async fn reseal_share(
        &self,
        id: Uuid,
        old_kek: &str,
        sealed_share: &[u8],
        new_kek: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Freezes `ban.key_id` for `ban.party_id` (idempotent: the first reason stays).
    async fn ban(&self, ban: &KeyBan) -> Result<(), StoreError>;

    async fn bans(&self, key_id: &str) -> Result<Vec<KeyBan>, StoreError>;

    /// Lifts a ban (an operator's decision). False when there was none.
    async fn clear_ban(&self, key_id: &str, party_id: &PartyId) -> Result<bool, StoreError>;
}
