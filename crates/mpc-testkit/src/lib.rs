//! Test support for MPC-System: an in-process cluster — the Session Coordinator, the Message
//! Router and N Server Parties, each on a fresh database (its own SQLite file or PostgreSQL
//! schema), sharing an in-process bus (or RabbitMQ), all on `127.0.0.1:0`, with generated keys
//! and mutual identity pinning.
//!
//! ```ignore
//! let Some(mut cluster) = Cluster::builder().backend(Backend::Sqlite).server_parties(3).build().await else {
//!     return; // PostgreSQL or RabbitMQ asked for but not configured (never under CI)
//! };
//! let created = cluster.create_session(keygen_request(…)).await;
//! let info = cluster.wait_for_end(&created.session_id).await;
//! cluster.restart_party(1).await;
//! ```
//!
//! With `.party_api(true)` the cluster also runs the Server Party API (`Cluster::party_api`), and
//! with `.account_service(true)` the Account Service (`Cluster::account_service`), the public
//! entry of the whole system. Infrastructure failures panic: this crate is for tests.
#![forbid(unsafe_code)]

pub mod account;
pub mod cluster;
pub mod http;
pub mod party_api;
mod services;
pub mod sessions;

pub use account::{AccountHandle, AccountTweak};
pub use cluster::{BusKind, Cluster, ClusterBuilder, DEADLINE, PartyHandle, fast_driver};
pub use mpc_store::Backend;
pub use party_api::PartyApiHandle;
pub use services::Service;
pub use sessions::{
    assert_valid_signature, fixture_shares, keygen_request, participant, random_hash,
    recovery_request, refresh_request, server, sign_request, status,
};
