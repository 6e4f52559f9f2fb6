//! The two coordinator calls the Account Service makes (CreateSession, GetSession), with the
//! service token, a deadline, and every failure as the coordinator's typed [`ApiError`] (an
//! unreachable coordinator is 503 `unavailable`, never a 500).

use std::fmt;
use std::time::Duration;

use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ErrorCode, SessionId};
use secrecy::{ExposeSecret, SecretString};
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone)]
pub struct CoordinatorClient {
    inner: pb::coordinator_client::CoordinatorClient<Channel>,
    service_token: Option<SecretString>,
    timeout: Duration,
}

impl fmt::Debug for CoordinatorClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorClient")
            .field(
                "service_token",
                &self.service_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CoordinatorClient {
    /// Connects lazily: the Account Service starts even when the coordinator is not up yet.
    pub fn new(
        endpoint: &str,
        service_token: Option<SecretString>,
        timeout: Duration,
        tls: &mpc_service::TlsConfig,
    ) -> Result<Self, ApiError> {
        let endpoint = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|_| {
                ApiError::invalid_argument(format!("invalid coordinator endpoint {endpoint:?}"))
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        let channel = tls
            .grpc_endpoint(endpoint)
            .map_err(|e| ApiError::invalid_argument(format!("TLS: {e}")))?
            .connect_lazy();
        Ok(Self {
            inner: pb::coordinator_client::CoordinatorClient::new(channel),
            service_token,
            timeout,
        })
    }

    fn request<T>(&self, message: T) -> Result<Request<T>, ApiError> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        if let Some(token) = &self.service_token {
            let value: MetadataValue<_> = format!("Bearer {}", token.expose_secret())
                .parse()
                .map_err(|_| {
                    ApiError::internal(&"the coordinator service token is not a valid header")
                })?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    pub async fn create_session(
        &self,
        req: pb::CreateSessionRequest,
    ) -> Result<pb::CreateSessionResponse, ApiError> {
        let request = self.request(req)?;
        let mut client = self.inner.clone();
        call(self.timeout, client.create_session(request)).await
    }

    /// The session, or `session not found`.
    pub async fn get_session(&self, id: SessionId) -> Result<pb::SessionInfo, ApiError> {
        let request = self.request(pb::GetSessionRequest {
            session_id: id.to_string(),
        })?;
        let mut client = self.inner.clone();
        call(self.timeout, client.get_session(request)).await
    }

    /// Fails a session that has not ended; an ended one comes back as it is.
    pub async fn cancel_session(
        &self,
        id: SessionId,
        reason: &str,
    ) -> Result<pb::SessionInfo, ApiError> {
        let request = self.request(pb::CancelSessionRequest {
            session_id: id.to_string(),
            reason: reason.to_owned(),
        })?;
        let mut client = self.inner.clone();
        call(self.timeout, client.cancel_session(request)).await
    }

    /// The party registry.
    pub async fn list_parties(&self) -> Result<Vec<pb::RegisteredParty>, ApiError> {
        let request = self.request(pb::ListPartiesRequest {})?;
        let mut client = self.inner.clone();
        Ok(call(self.timeout, client.list_parties(request))
            .await?
            .parties)
    }
    /// The session as soon as it is final (completed, failed, expired), or its latest state
    /// once `max` has passed: the coordinator's `WatchSession` stream, so that a client's long
    /// poll costs no polling here either.
    pub async fn wait_final(
        &self,
        id: SessionId,
        max: Duration,
    ) -> Result<pb::SessionInfo, ApiError> {
        let deadline = tokio::time::Instant::now() + max;
        let mut request = self.request(pb::WatchSessionRequest {
            session_id: id.to_string(),
            join_token: String::new(),
        })?;
        // The gRPC deadline covers the whole stream.
        request.set_timeout(max + self.timeout);
        let mut client = self.inner.clone();
        let mut stream = call(self.timeout, client.watch_session(request)).await?;
        let mut latest = None;
        loop {
            match tokio::time::timeout_at(deadline, stream.message()).await {
                Ok(Ok(Some(info))) => {
                    let done = is_final(info.status);
                    latest = Some(info);
                    if done {
                        break;
                    }
                }
                // The stream ends after a final state; a timeout leaves the latest state.
                Ok(Ok(None)) | Err(_) => break,
                Ok(Err(status)) => return Err(map_status(&status)),
            }
        }
        match latest {
            Some(info) => Ok(info),
            None => self.get_session(id).await,
        }
    }
}

fn is_final(status: i32) -> bool {
    [
        pb::SessionStatus::Completed,
        pb::SessionStatus::Failed,
        pb::SessionStatus::Expired,
    ]
    .into_iter()
    .any(|s| i32::from(s) == status)
}

async fn call<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(map_status(&status)),
        Err(_) => Err(ApiError::new(
            ErrorCode::Timeout,
            "the session coordinator did not answer in time",
        )),
    }
}

/// The coordinator's own errors pass through (they carry the guide's wording); transport
/// failures and its internal errors become a plain "unavailable" without their text.
fn map_status(status: &tonic::Status) -> ApiError {
    let e = ApiError::from_status(status);
    match e.code {
        ErrorCode::Internal => {
            tracing::error!(message = %status.message(), "session coordinator internal error");
            ApiError::new(ErrorCode::Unavailable, "the session coordinator failed")
        }
        ErrorCode::Unavailable => {
            tracing::warn!(message = %status.message(), "session coordinator unavailable");
            ApiError::new(
                ErrorCode::Unavailable,
                "the session coordinator is unavailable",
            )
        }
        // Our service token is wrong: a configuration problem, not the client's.
        ErrorCode::InvalidApiKey | ErrorCode::PermissionDenied => {
            tracing::error!(message = %status.message(), "the coordinator refused our service token");
            ApiError::new(
                ErrorCode::Unavailable,
                "the session coordinator refused the request",
            )
        }
        _ => e,
    }
}
