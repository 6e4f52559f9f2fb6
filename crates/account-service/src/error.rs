//! Errors that stop the service (start-up and serving). Request errors are
//! [`mpc_proto::ApiError`]s and never reach this type.

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A bad configuration value; the message is safe to show to an operator.
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] mpc_store::StoreError),
    #[error("http server: {0}")]
    Http(#[source] std::io::Error),
}
