//! The account store on SQLite (the embedded default): UUIDs as TEXT, timestamps as INTEGER
//! milliseconds. Writers take the database lock at `BEGIN IMMEDIATE`, so concurrent writers
//! queue on the busy timeout instead of failing when a read transaction tries to upgrade.

use sqlx::{Sqlite, SqlitePool, Transaction};

/// [`AccountStore`] on a SQLite pool.
#[derive(Clone, Debug)]
pub struct SqliteAccountStore {
    pool: SqlitePool,
}

impl SqliteAccountStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

type Row_ = sqlx::sqlite::SqliteRow;
type Tx = Transaction<'static, Sqlite>;
type Uid = String;
type Ts = i64;

fn uid(id: &uuid::Uuid) -> Uid {
    id.hyphenated().to_string()
}

fn from_uid(id: Uid) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(&id)
        .map_err(|_| StoreError::Corrupt("invalid uuid in account row".into()))
}

fn ts(t: DateTime<Utc>) -> Ts {
    t.timestamp_millis()
}

fn from_ts(ms: Ts) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

account_store_impl!(SqliteAccountStore, ip_in = "$5", ip_out = "ip_address");
