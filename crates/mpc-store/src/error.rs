//! The storage layer's error type.

use mpc_proto::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A bad database url or option; the message is safe to show to an operator.
    #[error("database configuration: {0}")]
    Config(String),
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// A unique constraint or a compare-and-set precondition did not hold.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A row holds a value this version cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn from_connect(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }

    /// True when a write failed on a unique constraint.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.is_unique_violation(),
            StoreError::Conflict(_) => true,
            _ => false,
        }
    }
}

/// Storage failures never reach a client as text: unreachable is a 503, the rest a logged 500.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Unavailable(_) | StoreError::Database(sqlx::Error::PoolTimedOut) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::from_code(ErrorCode::Unavailable)
            }
            _ => ApiError::internal(&e),
        }
    }
}
