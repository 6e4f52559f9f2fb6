//! What differs between PostgreSQL and SQLite, in one place.
//!
//! Each store writes its SQL once, in a macro (`<store>/sql.rs`) that is stamped out in a
//! PostgreSQL module and a SQLite module. Those modules glob-import one of the two dialects
//! below, and the SQL uses only names that both define:
//!
//! | name | PostgreSQL | SQLite |
//! |---|---|---|
//! | `Pool`, `Conn`, `Tx`, `Row_` | sqlx's PostgreSQL types | sqlx's SQLite types |
//! | `Uid`, `uid`, `from_uid` | native `UUID` | hyphenated `TEXT` |
//! | `Ts`, `ts`, `from_ts`, `opt_from_ts` | `TIMESTAMPTZ` | `INTEGER` milliseconds |
//! | `begin_write` | `BEGIN` | `BEGIN IMMEDIATE`: take the write lock up front |
//! | `lock_key` | a transaction-scoped advisory lock | nothing: `BEGIN IMMEDIATE` serialises writers |
//! | `notify` | `pg_notify`, delivered on commit | nothing: one process, woken in-process |
//! | `listen` | a `LISTEN` connection | none |
//! | `erase_freed` | nothing: `VACUUM` reclaims old row versions | `PRAGMA secure_delete = ON` |
//! | `for_share!`, `for_update!` | row locks | nothing (see `begin_write`) |
//! | `skip_locked!` | `FOR UPDATE SKIP LOCKED` | nothing: one statement holds the write lock |
//! | `notify_changed!` | the update in a CTE that notifies for each changed row | the update |
//! | `inet!`, `inet_text!` | `INET` in and out | `TEXT` |
//!
//! Both backends keep timestamps at millisecond precision, so a value reads back the same on
//! either. Parameters are written `$1, $2, …` for both (sqlx's SQLite driver numbers `$n` as
//! PostgreSQL does). SQL integers are `i32` for `INT` columns and `i64` for `BIGINT`: SQLite
//! decodes either from its `INTEGER`.

use chrono::{DateTime, Utc};

use crate::error::StoreError;

/// A store type that holds only its dialect's `Pool`, with `new(pool)`.
macro_rules! store_on_pool {
    ($(#[$doc:meta])* $store:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $store {
            pool: Pool,
        }

        impl $store {
            pub fn new(pool: Pool) -> Self {
                Self { pool }
            }
        }
    };
}

pub(crate) use store_on_pool;

fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

/// PostgreSQL: native UUIDs and timestamps, row locks, `NOTIFY`.
pub(crate) mod postgres {
    use chrono::{DateTime, Utc};
    use sqlx::postgres::PgListener;

    use crate::error::StoreError;

    pub(crate) type Pool = sqlx::PgPool;
    pub(crate) type Conn = sqlx::PgConnection;
    pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Postgres>;
    pub(crate) type Row_ = sqlx::postgres::PgRow;
    pub(crate) type Uid = uuid::Uuid;
    pub(crate) type Ts = DateTime<Utc>;

    pub(crate) fn uid(id: &uuid::Uuid) -> Uid {
        *id
    }

    pub(crate) fn from_uid(id: Uid) -> Result<uuid::Uuid, StoreError> {
        Ok(id)
    }

    /// PostgreSQL keeps microseconds; truncate to milliseconds as SQLite stores them.
    pub(crate) fn ts(t: DateTime<Utc>) -> Ts {
        super::from_millis(t.timestamp_millis()).unwrap_or(t)
    }

    pub(crate) fn from_ts(t: Ts) -> Result<DateTime<Utc>, StoreError> {
        Ok(t)
    }

    pub(crate) fn opt_from_ts(t: Option<Ts>) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(t)
    }

    pub(crate) async fn begin_write(pool: &Pool) -> Result<Tx, StoreError> {
        Ok(pool.begin().await?)
    }

    /// Holds `key` until `tx` ends, so that transactions on the same key run one at a time.
    pub(crate) async fn lock_key(tx: &mut Tx, key: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Sends `payload` to the listeners of `channel` when `tx` commits, and only then.
    pub(crate) async fn notify(
        tx: &mut Tx,
        channel: &str,
        payload: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A connection listening on `channel`.
    pub(crate) async fn listen(
        pool: &Pool,
        channel: &str,
    ) -> Result<Option<PgListener>, StoreError> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok(Some(listener))
    }

    /// Nothing to do: a deleted or overwritten value stays in a dead row version until
    /// `VACUUM` reclaims it; PostgreSQL has no switch to overwrite it at once.
    pub(crate) async fn erase_freed(_conn: &mut Conn) -> Result<(), StoreError> {
        Ok(())
    }

    macro_rules! for_share {
        () => {
            " FOR SHARE"
        };
    }

    macro_rules! for_update {
        () => {
            " FOR UPDATE"
        };
    }

    macro_rules! skip_locked {
        () => {
            " FOR UPDATE SKIP LOCKED"
        };
    }

    /// `$update` (an `UPDATE` without `RETURNING`), notifying `$channel` (a parameter) with the
    /// `$column` of each changed row: one statement, and a notification only for a change.
    /// Its result counts the notifications, which are the changed rows.
    macro_rules! notify_changed {
        ($update:literal, $column:literal, $channel:literal) => {
            concat!(
                "WITH changed AS (",
                $update,
                " RETURNING ",
                $column,
                ") SELECT pg_notify(",
                $channel,
                ", ",
                $column,
                "::text) FROM changed"
            )
        };
    }

    macro_rules! inet {
        ($param:literal) => {
            concat!("CAST(", $param, " AS INET)")
        };
    }

    macro_rules! inet_text {
        ($column:literal) => {
            concat!("host(", $column, ")")
        };
    }

    pub(crate) use {for_share, for_update, inet, inet_text, notify_changed, skip_locked};
}

/// SQLite (the embedded default: one process): TEXT ids, millisecond timestamps, and writers
/// that take the database lock when they begin.
pub(crate) mod sqlite {
    use chrono::{DateTime, Utc};
    use sqlx::postgres::PgListener;

    use crate::error::StoreError;

    pub(crate) type Pool = sqlx::SqlitePool;
    pub(crate) type Conn = sqlx::SqliteConnection;
    pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;
    pub(crate) type Row_ = sqlx::sqlite::SqliteRow;
    pub(crate) type Uid = String;
    pub(crate) type Ts = i64;

    pub(crate) fn uid(id: &uuid::Uuid) -> Uid {
        id.hyphenated().to_string()
    }

    pub(crate) fn from_uid(id: Uid) -> Result<uuid::Uuid, StoreError> {
        uuid::Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("invalid uuid {id:?}")))
    }

    pub(crate) fn ts(t: DateTime<Utc>) -> Ts {
        t.timestamp_millis()
    }

    pub(crate) fn from_ts(ms: Ts) -> Result<DateTime<Utc>, StoreError> {
        super::from_millis(ms)
    }

    pub(crate) fn opt_from_ts(ms: Option<Ts>) -> Result<Option<DateTime<Utc>>, StoreError> {
        ms.map(from_ts).transpose()
    }

    /// Takes the write lock at `BEGIN`, so that concurrent writers queue on the busy timeout
    /// instead of failing when a read transaction tries to upgrade.
    pub(crate) async fn begin_write(pool: &Pool) -> Result<Tx, StoreError> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Nothing to do: the transaction holds the database's write lock already.
    pub(crate) async fn lock_key(_tx: &mut Tx, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Nothing to do: SQLite is used by one process, whose stores wake their waiters directly.
    pub(crate) async fn notify(
        _tx: &mut Tx,
        _channel: &str,
        _payload: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// No other process shares the database: nothing to listen to.
    pub(crate) async fn listen(
        _pool: &Pool,
        _channel: &str,
    ) -> Result<Option<PgListener>, StoreError> {
        Ok(None)
    }

    /// From now on this connection overwrites what it deletes, instead of leaving it in free
    /// pages of the file.
    pub(crate) async fn erase_freed(conn: &mut Conn) -> Result<(), StoreError> {
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(conn)
            .await?;
        Ok(())
    }

    macro_rules! for_share {
        () => {
            ""
        };
    }

    macro_rules! for_update {
        () => {
            ""
        };
    }

    macro_rules! skip_locked {
        () => {
            ""
        };
    }

    /// The update alone: its caller wakes its waiters in-process. A `$channel` parameter bound
    /// to it is ignored (sqlx binds only the parameters a SQLite statement names).
    macro_rules! notify_changed {
        ($update:literal, $column:literal, $channel:literal) => {
            $update
        };
    }

    macro_rules! inet {
        ($param:literal) => {
            $param
        };
    }

    macro_rules! inet_text {
        ($column:literal) => {
            $column
        };
    }

    pub(crate) use {for_share, for_update, inet, inet_text, notify_changed, skip_locked};
}
