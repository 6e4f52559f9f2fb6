//! Storage for the MPC-System services. Each service has its own interface (a trait) implemented
//! for PostgreSQL and SQLite, with migrations embedded in the binary; one shared test suite runs
//! against both backends (`backend_tests!`).
#![forbid(unsafe_code)]

pub mod account;
pub mod coordinator;
pub mod db;
mod dialect;
pub mod error;
pub mod party;
pub mod registry;
pub mod router;
#[cfg(feature = "testing")]
pub mod testing;
mod values;
pub mod webhook;

pub use db::{Backend, Db, DbConfig};
pub use error::StoreError;

#[cfg(test)]
mod tests {
    use crate::testing::TestDb;

    async fn ping_suite(t: TestDb) {
        t.db.ping().await.unwrap();
    }

    crate::backend_tests!(ping, ping_suite);
}
