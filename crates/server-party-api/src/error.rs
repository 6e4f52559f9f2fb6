//! The service's own errors (start-up and serving). A request's failure is an
//! `mpc_proto::ApiError` sent to the caller, never one of these.

#[derive(Debug, thiserror::Error)]
pub enum PartyApiError {
    /// Bad configuration; the message is safe to show an operator (it names no secret).
    #[error("server party API configuration: {0}")]
    Config(String),
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
}
