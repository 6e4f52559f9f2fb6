//! The account store on PostgreSQL: native UUIDs, `TIMESTAMPTZ`, `JSONB` and `INET`.

use crate::dialect::postgres::*;

account_store_impl!(
    /// [`AccountStore`] on a PostgreSQL pool.
    PgAccountStore
);
