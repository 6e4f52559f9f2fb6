//! Errors that stop the coordinator from starting or running. Request errors are
//! `mpc_proto::ApiError`s and never end up here.

use mpc_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The configuration is unusable; the message says which setting.
    #[error("coordinator configuration: {0}")]
    Config(String),
    #[error("coordinator storage: {0}")]
    Store(#[from] StoreError),
    #[error("coordinator HTTP server: {0}")]
    Http(#[source] std::io::Error),
    #[error("coordinator gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
}
