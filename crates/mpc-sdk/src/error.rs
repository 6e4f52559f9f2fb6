//! The SDK's errors: the API's own (its stable `code`, the HTTP status and the message, as in
//! `{"error": {"code", "message"}}`), a session that ended without a result, and the client's
//! own failures (transport, deadline, an answer it cannot read).

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status, e.g. 404.
        status: u16,
        /// The API's stable code, e.g. `session_not_found`, `insufficient_participants`.
        code: String,
        /// What went wrong, in the guide's words where it has them.
        message: String,
        /// From `Retry-After` on 429 and 503.
        retry_after: Option<Duration>,
    },
    /// A session ended `failed` or `expired` (or was not final when the wait ran out).
    #[error("session {session_id} is {status}: {}", reason.as_deref().unwrap_or("no reason given"))]
    Session {
        session_id: String,
        status: String,
        reason: Option<String>,
        blamed_party_id: Option<String>,
    },
    /// The request did not reach the API or its answer did not come back.
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The call's deadline passed (the client's `timeout`, or a wait's).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The API answered something this SDK cannot read.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// A bad argument, refused before any request (e.g. a message hash that is not 32 bytes).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// The API's code (`session_not_found`, …), or `session_failed`/`session_expired`, or
    /// `None` for the client's own failures.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            Error::Session { status, .. } if status == "expired" => Some("session_expired"),
            Error::Session { .. } => Some("session_failed"),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 429: the service is overloaded; retry after [`Error::retry_after`].
    pub fn is_throttled(&self) -> bool {
        self.status() == Some(429)
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
