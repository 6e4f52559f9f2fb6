//! Storage of the Account Service: accounts and their share metadata (`accounts`,
//! `account_shares`), the sessions the service started (`account_sessions`), API keys,
//! idempotency keys and the audit log (`mpc_audit_logs`).
//!
//! The store never holds key material: a share row says where a share lives, not what it is, and
//! an API key is kept only as its SHA-256. A session outcome is applied by a compare-and-set on
//! its `account_sessions` row (`pending → completed | failed | expired`) in the same transaction as
//! its effects, so an outcome that arrives twice (a redelivered event, a client read racing the
//! event consumer, two replicas) changes the account exactly once.
//!
//! One implementation serves both backends (`sql.rs`, stamped out for each pool type with its
//! `crate::dialect`); only the column types differ (UUIDs and timestamps are native on
//! PostgreSQL, TEXT and milliseconds on SQLite).

#[macro_use]
mod sql;
mod postgres;
mod search;
mod sqlite;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_console;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mpc_proto::{AccountId, SessionId};
use sqlx::migrate::Migrator;

use crate::db::Db;
use crate::error::StoreError;

pub use postgres::PgAccountStore;
pub use search::{AccountSearch, SessionCount, SessionFilter, ethereum_address};
pub use sqlite::SqliteAccountStore;
pub use types::*;

/// PostgreSQL migrations of the Account Service.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/account/postgres");
/// SQLite migrations of the Account Service.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/account/sqlite");

/// Applies the Account Service's migrations (tracked in `_mpc_migrations_account`) and opens
/// its store on `db`. Accounts whose keygen completed before addresses were stored get theirs.
pub async fn open(db: &Db) -> Result<Arc<dyn AccountStore>, StoreError> {
    db.migrate("account", &POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS)
        .await?;
    Ok(match db {
        Db::Postgres(pool) => {
            let store = PgAccountStore::new(pool.clone());
            store.fill_in_addresses().await?;
            Arc::new(store)
        }
        Db::Sqlite(pool) => {
            let store = SqliteAccountStore::new(pool.clone());
            store.fill_in_addresses().await?;
            Arc::new(store)
        }
    })
}

/// Account Service storage, implemented for PostgreSQL and SQLite.
#[async_trait]
pub trait AccountStore: Send + Sync {
    // --- accounts -------------------------------------------------------------------------

    /// Inserts a `pending` account. A taken username or email is
    /// [`StoreError::Conflict`] naming the field ("username is taken").
    async fn create_account(&self, account: &NewAccount) -> Result<(), StoreError>;

    /// Deletes an account that never got a session (its keygen could not be created).
    async fn delete_unstarted_account(&self, id: AccountId) -> Result<(), StoreError>;

    async fn get_account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError>;

    /// Accounts oldest first, optionally of one status, with the total that match.
    async fn list_accounts(
        &self,
        status: Option<AccountStatus>,
        limit: u32,
        offset: u64,
    ) -> Result<(Vec<AccountRecord>, u64), StoreError>;

    /// The account's shares, ordered by index (active first when an index has several).
    async fn shares(
        &self,
        account: AccountId,
        include_inactive: bool,
    ) -> Result<Vec<ShareRecord>, StoreError>;

    /// Sets the status to `to` if it is one of `from`; returns whether it changed.
    async fn transition_account(
        &self,
        id: AccountId,
        from: &[AccountStatus],
        to: AccountStatus,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    async fn count_accounts_by_status(&self) -> Result<Vec<(AccountStatus, u64)>, StoreError>;

    // --- sessions -------------------------------------------------------------------------

    /// Records a session the service created for an account (`pending`). For a keygen it also
    /// becomes the account's `keygen_session_id`.
    async fn record_session(&self, session: &NewAccountSession) -> Result<(), StoreError>;

    async fn get_session(
        &self,
        session_id: SessionId,
    ) -> Result<Option<AccountSessionRecord>, StoreError>;

    /// Pending sessions created before `before`, oldest first (for reconciliation).
    async fn pending_sessions(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AccountSessionRecord>, StoreError>;

    /// The account's sessions without an outcome yet, oldest first (to cancel its signs when
    /// it is suspended).
    async fn pending_sessions_of_account(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<AccountSessionRecord>, StoreError>;

    /// Applies a session's outcome once: moves its row from `pending` and applies the effects
    /// (keygen: account `active` with its key and shares, or `failed` with the reason;
    /// recovery: the lost party's share retired, the new party's added). Returns `false`, and
    /// changes nothing, when the outcome was applied before or the session is unknown.
    async fn finish_session(
        &self,
        session_id: SessionId,
        outcome: &SessionOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    // --- API keys -------------------------------------------------------------------------

    async fn insert_api_key(&self, key: &NewApiKey) -> Result<(), StoreError>;

    async fn find_api_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<ApiKeyRecord>, StoreError>;

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes a key (the first revocation time stays); `None` for an unknown id.
    async fn revoke_api_key(
        &self,
        id: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Records a use, at most once per `resolution`, so that authentication is not a write per
    /// request.
    async fn touch_api_key(
        &self,
        id: uuid::Uuid,
        now: DateTime<Utc>,
        resolution: chrono::TimeDelta,
    ) -> Result<(), StoreError>;

    // --- idempotency ----------------------------------------------------------------------

    /// Claims `key` for a request with body hash `request_hash`, or reports what holds it.
    /// A claim older than `stale_after` that never completed (its process died) is taken over.
    async fn claim_idempotency_key(
        &self,
        key: &IdempotencyKey,
        request_hash: &[u8; 32],
        now: DateTime<Utc>,
        stale_after: chrono::TimeDelta,
    ) -> Result<IdempotencyClaim, StoreError>;

    /// Stores the response of the claimed request.
    async fn complete_idempotency_key(
        &self,
        key: &IdempotencyKey,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError>;

    /// Gives up a claim whose request failed in a way a retry may fix (a 5xx).
    async fn release_idempotency_key(&self, key: &IdempotencyKey) -> Result<(), StoreError>;

    /// Deletes keys created before `before`; returns how many.
    async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    // --- audit log ------------------------------------------------------------------------

    async fn insert_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError>;

    /// Entries matching `filter`, newest first.
    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;

    // --- operator console -----------------------------------------------------------------

    /// Accounts matching `search` (id, part of a username or email, or the Ethereum address),
    /// oldest first, with the total that match.
    async fn search_accounts(
        &self,
        search: &AccountSearch,
    ) -> Result<(Vec<AccountRecord>, u64), StoreError>;

    /// Sessions matching `filter`, newest first, with the total that match.
    async fn list_sessions(
        &self,
        filter: &SessionFilter,
    ) -> Result<(Vec<AccountSessionRecord>, u64), StoreError>;

    /// Sessions created at or after `since`, counted by type and status.
    async fn count_sessions(&self, since: DateTime<Utc>) -> Result<Vec<SessionCount>, StoreError>;
}

fn hash_from_db(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

fn limit_to_db(limit: u32) -> i64 {
    i64::from(limit.clamp(1, 1000))
}

fn offset_to_db(offset: u64) -> i64 {
    i64::try_from(offset).unwrap_or(i64::MAX)
}
