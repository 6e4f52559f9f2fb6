//! The party store on PostgreSQL (its own database, or its own schema via `search_path`).
//! Retired ciphertext is removed from the row; the old row version disappears from disk when
//! PostgreSQL vacuums the table.

use crate::dialect::postgres::*;

party_store_impl!(
    /// [`PartyStore`] on a PostgreSQL pool.
    PgPartyStore
);
