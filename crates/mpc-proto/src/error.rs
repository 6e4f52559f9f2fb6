//! One error-code type for the whole system, mapped to HTTP status and gRPC code.
//!
//! HTTP bodies are `{"error": {"code": "session_not_found", "message": "session not found"}}`.
//! Over gRPC the message travels as the status message and the stable code in the
//! `x-mpc-error-code` metadata entry, so a client gets the typed error back
//! ([`ApiError::from_status`]).

use std::fmt;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

/// gRPC metadata key that carries [`ErrorCode::as_str`].
pub const ERROR_CODE_METADATA: &str = "x-mpc-error-code";
/// gRPC metadata key that carries [`ApiError::retry_after`] in whole seconds.
pub const RETRY_AFTER_METADATA: &str = "retry-after";

/// Stable, machine-readable error codes. Never rename a variant's string: clients match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed or out-of-range input (400).
    InvalidArgument,
    /// `threshold_t` / `threshold_n` out of bounds (400).
    InvalidThreshold,
    /// The same party id twice in one request (400).
    DuplicatePartyId,
    /// Fewer participants than the session needs (400): "insufficient participants".
    InsufficientParticipants,
    /// `message_hash` is not 32 bytes of hex (400).
    InvalidMessageHash,
    /// Missing, unknown, revoked or expired API key or access token (401).
    InvalidApiKey,
    /// A join token that is expired, tampered with, or for another session or party (401).
    InvalidJoinToken,
    /// Authenticated, but not allowed to do this (403).
    PermissionDenied,
    /// The account is suspended and cannot sign (403).
    AccountSuspended,
    /// "session not found" (404).
    SessionNotFound,
    /// Unknown account (404).
    AccountNotFound,
    /// Any other unknown resource (404).
    NotFound,
    /// The resource exists already, or a unique value is taken (409).
    AlreadyExists,
    /// The request is valid but the resource is in the wrong state for it (409).
    FailedPrecondition,
    /// The session ran past its deadline (410).
    SessionExpired,
    /// The MPC protocol failed; the message names the blamed party when one is known (422).
    ProtocolFailed,
    /// The request body is too large (413).
    PayloadTooLarge,
    /// Too many requests or sessions (429).
    ResourceExhausted,
    /// The service is at capacity right now; retry after `Retry-After` (429).
    Overloaded,
    /// Too many wrong API keys or access tokens from this address: refused, whatever it
    /// presents, until `Retry-After` (429).
    TooManyFailures,
    /// A server party named in the request is not registered with the coordinator (400).
    UnknownParty,
    /// A registered server party is not live (no recent heartbeat); retry later (503).
    PartyUnavailable,
    /// The operation did not finish in time (504).
    Timeout,
    /// A dependency (database, broker, another service) is unreachable (503).
    Unavailable,
    /// A bug or an unexpected failure; details are logged, never sent (500).
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 25] = [
        Self::InvalidArgument,
        Self::InvalidThreshold,
        Self::DuplicatePartyId,
        Self::InsufficientParticipants,
        Self::InvalidMessageHash,
        Self::InvalidApiKey,
        Self::InvalidJoinToken,
        Self::PermissionDenied,
        Self::AccountSuspended,
        Self::SessionNotFound,
        Self::AccountNotFound,
        Self::NotFound,
        Self::AlreadyExists,
        Self::FailedPrecondition,
        Self::SessionExpired,
        Self::ProtocolFailed,
        Self::PayloadTooLarge,
        Self::ResourceExhausted,
        Self::Overloaded,
        Self::TooManyFailures,
        Self::UnknownParty,
        Self::PartyUnavailable,
        Self::Timeout,
        Self::Unavailable,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::InvalidThreshold => "invalid_threshold",
            Self::DuplicatePartyId => "duplicate_party_id",
            Self::InsufficientParticipants => "insufficient_participants",
            Self::InvalidMessageHash => "invalid_message_hash",
            Self::InvalidApiKey => "invalid_api_key",
            Self::InvalidJoinToken => "invalid_join_token",
            Self::PermissionDenied => "permission_denied",
            Self::AccountSuspended => "account_suspended",
            Self::SessionNotFound => "session_not_found",
            Self::AccountNotFound => "account_not_found",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::FailedPrecondition => "failed_precondition",
            Self::SessionExpired => "session_expired",
            Self::ProtocolFailed => "protocol_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ResourceExhausted => "resource_exhausted",
            Self::Overloaded => "overloaded",
            Self::TooManyFailures => "too_many_failures",
            Self::UnknownParty => "unknown_party",
            Self::PartyUnavailable => "party_unavailable",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The guide's wording where it has one (§6.1), a plain sentence otherwise.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid argument",
            Self::InvalidThreshold => "invalid threshold",
            Self::DuplicatePartyId => "duplicate party id",
            Self::InsufficientParticipants => "insufficient participants",
            Self::InvalidMessageHash => "invalid message hash",
            Self::InvalidApiKey => "missing or invalid API key",
            Self::InvalidJoinToken => "invalid join token",
            Self::PermissionDenied => "permission denied",
            Self::AccountSuspended => "account is suspended",
            Self::SessionNotFound => "session not found",
            Self::AccountNotFound => "account not found",
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::FailedPrecondition => "operation not allowed in the current state",
            Self::SessionExpired => "session expired",
            Self::ProtocolFailed => "protocol failed",
            Self::PayloadTooLarge => "payload too large",
            Self::ResourceExhausted => "too many requests",
            Self::Overloaded => "the service is at capacity; retry later",
            Self::TooManyFailures => "too many failed authentication attempts; retry later",
            Self::UnknownParty => "unknown party",
            Self::PartyUnavailable => "party unavailable",
            Self::Timeout => "timeout",
            Self::Unavailable => "service unavailable",
            Self::Internal => "internal error",
        }
    }

    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidArgument
            | Self::InvalidThreshold
            | Self::DuplicatePartyId
            | Self::InsufficientParticipants
            | Self::InvalidMessageHash
            | Self::UnknownParty => StatusCode::BAD_REQUEST,
            Self::InvalidApiKey | Self::InvalidJoinToken => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied | Self::AccountSuspended => StatusCode::FORBIDDEN,
            Self::SessionNotFound | Self::AccountNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::AlreadyExists | Self::FailedPrecondition => StatusCode::CONFLICT,
            Self::SessionExpired => StatusCode::GONE,
            Self::ProtocolFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ResourceExhausted | Self::Overloaded | Self::TooManyFailures => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable | Self::PartyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::InvalidArgument
            | Self::InvalidThreshold
            | Self::DuplicatePartyId
            | Self::InsufficientParticipants
            | Self::InvalidMessageHash
            | Self::UnknownParty => Code::InvalidArgument,
            Self::InvalidApiKey | Self::InvalidJoinToken => Code::Unauthenticated,
            Self::PermissionDenied | Self::AccountSuspended => Code::PermissionDenied,
            Self::SessionNotFound | Self::AccountNotFound | Self::NotFound => Code::NotFound,
            Self::AlreadyExists => Code::AlreadyExists,
            Self::FailedPrecondition | Self::SessionExpired => Code::FailedPrecondition,
            Self::ProtocolFailed => Code::Aborted,
            Self::PayloadTooLarge
            | Self::ResourceExhausted
            | Self::Overloaded
            | Self::TooManyFailures => Code::ResourceExhausted,
            Self::Timeout => Code::DeadlineExceeded,
            Self::Unavailable | Self::PartyUnavailable => Code::Unavailable,
            Self::Internal => Code::Internal,
        }
    }

    /// Best guess for a status that carried no `x-mpc-error-code` (e.g. from a proxy).
    pub fn from_grpc_code(code: tonic::Code) -> Self {
        use tonic::Code;
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::Unauthenticated => Self::InvalidApiKey,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists => Self::AlreadyExists,
            Code::FailedPrecondition => Self::FailedPrecondition,
            Code::Aborted => Self::ProtocolFailed,
            Code::ResourceExhausted => Self::ResourceExhausted,
            Code::DeadlineExceeded => Self::Timeout,
            Code::Unavailable | Code::Cancelled => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as a client sees it: a stable code and a message a person understands.
///
/// Build one with the guide's wording; never put internal error text (SQL, paths, panics) in
/// `message`. [`ApiError::internal`] logs the cause and sends only "internal error".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// When to try again, in whole seconds: sent as `Retry-After` (HTTP header, gRPC metadata)
    /// with `overloaded`, `party_unavailable` and the like. Not part of the JSON body.
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

/// The JSON body of every HTTP error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, asking the caller to retry after `seconds` (at least 1).
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The code with its default (guide) message, e.g. "session not found".
    pub fn from_code(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }

    /// Logs `cause` at error level and returns an error that reveals nothing about it.
    pub fn internal(cause: &dyn fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::from_code(ErrorCode::Internal)
    }

    pub fn session_not_found() -> Self {
        Self::from_code(ErrorCode::SessionNotFound)
    }

    pub fn insufficient_participants() -> Self {
        Self::from_code(ErrorCode::InsufficientParticipants)
    }

    pub fn invalid_join_token() -> Self {
        Self::from_code(ErrorCode::InvalidJoinToken)
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// Recovers the typed error from a gRPC status produced by `From<ApiError> for Status`.
    pub fn from_status(status: &tonic::Status) -> Self {
        let code = status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorCode::parse)
            .unwrap_or_else(|| ErrorCode::from_grpc_code(status.code()));
        let message = if status.message().is_empty() {
            code.default_message().to_owned()
        } else {
            status.message().to_owned()
        };
        let retry_after = status
            .metadata()
            .get(RETRY_AFTER_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Self {
            code,
            message,
            retry_after,
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let mut status = tonic::Status::new(e.code.grpc_code(), e.message);
        if let Ok(v) = e.code.as_str().parse() {
            status.metadata_mut().insert(ERROR_CODE_METADATA, v);
        }
        if let Some(seconds) = e.retry_after
            && let Ok(v) = seconds.to_string().parse()
        {
            status.metadata_mut().insert(RETRY_AFTER_METADATA, v);
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut response =
            (self.code.http_status(), Json(ErrorBody { error: self })).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_wording_and_statuses() {
        let e = ApiError::session_not_found();
        assert_eq!(e.message, "session not found");
        assert_eq!(e.code.http_status(), StatusCode::NOT_FOUND);
        assert_eq!(
            ApiError::insufficient_participants().message,
            "insufficient participants"
        );
        assert_eq!(
            ErrorCode::InsufficientParticipants.http_status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(ApiError::invalid_join_token().message, "invalid join token");
        assert_eq!(
            ErrorCode::InvalidJoinToken.http_status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn codes_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            let json = serde_json::to_value(c).ok();
            assert_eq!(json, Some(serde_json::json!(c.as_str())));
        }
    }

    #[test]
    fn grpc_round_trip_keeps_code_and_message() {
        for c in ErrorCode::ALL {
            let e = ApiError::new(c, format!("msg for {c}"));
            let status: tonic::Status = e.clone().into();
            assert_eq!(status.code(), c.grpc_code());
            assert_eq!(ApiError::from_status(&status), e);
        }
    }

    #[test]
    fn retry_after_travels_over_grpc_and_http() {
        let e = ApiError::from_code(ErrorCode::Overloaded).with_retry_after(3);
        let status: tonic::Status = e.clone().into();
        assert_eq!(ApiError::from_status(&status).retry_after, Some(3));
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(http::header::RETRY_AFTER),
            Some(&http::HeaderValue::from(3u32))
        );
        assert_eq!(
            ApiError::from_code(ErrorCode::Overloaded)
                .with_retry_after(0)
                .retry_after,
            Some(1)
        );
    }

    #[test]
    fn http_body_shape() {
        let body = ErrorBody {
            error: ApiError::session_not_found(),
        };
        let v = serde_json::to_value(&body).ok();
        assert_eq!(
            v,
            Some(
                serde_json::json!({"error": {"code": "session_not_found", "message": "session not found"}})
            )
        );
    }

    #[test]
    fn only_internal_is_a_500() {
        for c in ErrorCode::ALL {
            assert_eq!(
                c.http_status().is_server_error(),
                matches!(
                    c,
                    ErrorCode::Internal
                        | ErrorCode::Unavailable
                        | ErrorCode::Timeout
                        | ErrorCode::PartyUnavailable
                ),
                "{c}"
            );
        }
    }
}
