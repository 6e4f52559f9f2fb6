//! The server party's service errors (start-up, serving, key rotation). A session's failure is
//! an `mpc_client::PartyError`, reported to the coordinator, never one of these.

use mpc_bus::BusError;
use mpc_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PartyServiceError {
    /// Bad configuration; the message is safe to show an operator.
    #[error("server party configuration: {0}")]
    Config(String),
    /// The identity key cannot be created or opened (e.g. "cannot open the identity key: wrong
    /// master key").
    #[error("{0}")]
    Identity(String),
    #[error("server party storage: {0}")]
    Store(#[from] StoreError),
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    /// Re-sealing under a new master key failed; run it again once the cause is fixed (it
    /// resumes where it stopped).
    #[error("master key rotation: {0}")]
    Rotation(String),
}
