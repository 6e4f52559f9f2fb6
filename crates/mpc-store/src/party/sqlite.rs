//! The party store on SQLite (the embedded default: one file per party). `secure_delete` is
//! switched on for the transactions that retire, delete or replace shares, so SQLite overwrites
//! the freed ciphertext instead of leaving it in free pages.

use crate::dialect::sqlite::*;

party_store_impl!(
    /// [`PartyStore`] on a SQLite pool.
    SqlitePartyStore
);
