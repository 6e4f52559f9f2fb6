//! The account store on PostgreSQL: native UUIDs, `TIMESTAMPTZ`, `JSONB` and `INET`.

use sqlx::{PgPool, Postgres, Transaction};

/// [`AccountStore`] on a PostgreSQL pool.
#[derive(Clone, Debug)]
pub struct PgAccountStore {
    pool: PgPool,
}

impl PgAccountStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(self.pool.begin().await?)
    }
}

type Row_ = sqlx::postgres::PgRow;
type Tx = Transaction<'static, Postgres>;
type Uid = uuid::Uuid;
type Ts = DateTime<Utc>;

fn uid(id: &uuid::Uuid) -> Uid {
    *id
}

fn from_uid(id: Uid) -> Result<uuid::Uuid, StoreError> {
    Ok(id)
}

/// PostgreSQL keeps microseconds; both backends are compared at millisecond precision, so
/// round here too and a value reads back as it was written on either.
fn ts(t: DateTime<Utc>) -> Ts {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

fn from_ts(t: Ts) -> Result<DateTime<Utc>, StoreError> {
    Ok(t)
}

account_store_impl!(
    PgAccountStore,
    ip_in = "CAST($5 AS INET)",
    ip_out = "host(ip_address)"
);
