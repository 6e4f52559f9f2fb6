//! The account store on SQLite (the embedded default): UUIDs as TEXT, timestamps as INTEGER
//! milliseconds, writers that take the database lock at `BEGIN IMMEDIATE`.

use crate::dialect::sqlite::*;

account_store_impl!(
    /// [`AccountStore`] on a SQLite pool.
    SqliteAccountStore
);
