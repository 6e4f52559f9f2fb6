//! Typed clients for the Session Coordinator and Message Router gRPC APIs.
//!
//! Every call has a deadline (streams: only their start), and every failure is an
//! [`ApiError`] with the service's stable code ([`ApiError::from_status`]); a call that did not
//! answer in time is `timeout`, an unreachable service `unavailable`. Channels connect lazily,
//! so a party can be built before the services are up, and reconnect after a connection drops.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use mpc_proto::pb::mpc::coordinator::v1 as coordinator;
use mpc_proto::pb::mpc::router::v1 as router;
use mpc_proto::{ApiError, ErrorCode, PartyId, SessionId};
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Streaming};

/// Router responses may carry several large envelopes (a keygen message is ~150 KB, the router
/// pages at 3 MiB); this leaves room for a payload up to the router's default 16 MiB limit.
const MAX_RECEIVE_BYTES: usize = 32 * 1024 * 1024;

/// How clients connect and how long a call may take.
#[derive(Clone, Copy, Debug)]
pub struct ClientOptions {
    /// Bound on establishing a TCP + HTTP/2 connection.
    pub connect_timeout: Duration,
    /// Bound on a unary call (a long-polling fetch gets its wait on top) and on the start of a
    /// stream.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
        }
    }
}

fn channel(
    endpoint: &str,
    options: &ClientOptions,
    tls: &mpc_service::TlsConfig,
) -> Result<Channel, ApiError> {
    let endpoint = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|_| ApiError::invalid_argument(format!("invalid gRPC endpoint {endpoint:?}")))?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    // `https://` endpoints verify the server against MPC_TLS_CA and present the client
    // certificate; a TLS misconfiguration is refused here, never downgraded to plaintext.
    let endpoint = tls
        .grpc_endpoint(endpoint)
        .map_err(|e| ApiError::invalid_argument(format!("TLS: {e}")))?;
    Ok(endpoint.connect_lazy())
}

/// Runs one call with a deadline, mapping the status to an [`ApiError`].
async fn call<T>(
    service: &'static str,
    timeout: Duration,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(ApiError::from_status(&status)),
        Err(_) => Err(ApiError::new(
            ErrorCode::Timeout,
            format!("the {service} did not answer within {timeout:?}"),
        )),
    }
}

/// The Session Coordinator's gRPC API (`mpc.coordinator.v1`).
#[derive(Clone)]
pub struct CoordinatorClient {
    inner: coordinator::coordinator_client::CoordinatorClient<Channel>,
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
    /// A client for `endpoint` (`http://host:50051`). Connects on first use.
    pub fn new(endpoint: &str, options: ClientOptions) -> Result<Self, ApiError> {
        Self::new_tls(endpoint, options, &mpc_service::TlsConfig::default())
    }

    /// [`new`](Self::new) with TLS for an `https://` endpoint.
    pub fn new_tls(
        endpoint: &str,
        options: ClientOptions,
        tls: &mpc_service::TlsConfig,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            inner: coordinator::coordinator_client::CoordinatorClient::new(channel(
                endpoint, &options, tls,
            )?),
            service_token: None,
            timeout: options.request_timeout,
        })
    }

    /// Sends `authorization: Bearer <token>` on the service-to-service calls (CreateSession,
    /// GetSession, WatchSession without a join token).
    pub fn with_service_token(mut self, token: SecretString) -> Self {
        self.service_token = Some(token);
        self
    }

    fn authorized<T>(&self, message: T) -> Result<Request<T>, ApiError> {
        let mut request = Request::new(message);
        if let Some(token) = &self.service_token {
            let value: MetadataValue<_> = format!("Bearer {}", token.expose_secret())
                .parse()
                .map_err(|_| {
                    ApiError::invalid_argument("the service token is not a valid header")
                })?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }

    pub async fn create_session(
        &self,
        request: coordinator::CreateSessionRequest,
    ) -> Result<coordinator::CreateSessionResponse, ApiError> {
        let request = self.authorized(request)?;
        let mut inner = self.inner.clone();
        call("coordinator", self.timeout, inner.create_session(request)).await
    }

    pub async fn get_session(&self, id: SessionId) -> Result<coordinator::SessionInfo, ApiError> {
        let request = self.authorized(coordinator::GetSessionRequest {
            session_id: id.to_string(),
        })?;
        let mut inner = self.inner.clone();
        call("coordinator", self.timeout, inner.get_session(request)).await
    }

    pub async fn join_session(
        &self,
        join_token: &str,
        identity_public_key: &[u8; 32],
        session_key: &[u8],
        host: Option<&crate::HostInstance>,
    ) -> Result<coordinator::JoinSessionResponse, ApiError> {
        let mut inner = self.inner.clone();
        let request = coordinator::JoinSessionRequest {
            join_token: join_token.to_owned(),
            identity_public_key: identity_public_key.to_vec(),
            session_key: session_key.to_vec(),
            host: host.map(crate::HostInstance::to_pb),
        };
        call("coordinator", self.timeout, inner.join_session(request)).await
    }

    pub async fn get_roster(
        &self,
        join_token: &str,
    ) -> Result<coordinator::GetRosterResponse, ApiError> {
        let mut inner = self.inner.clone();
        let request = coordinator::GetRosterRequest {
            join_token: join_token.to_owned(),
        };
        call("coordinator", self.timeout, inner.get_roster(request)).await
    }

    /// The session's current state, then every change, ending after a terminal state.
    /// `join_token: None` authenticates with the service token.
    pub async fn watch_session(
        &self,
        id: SessionId,
        join_token: Option<&str>,
    ) -> Result<Streaming<coordinator::SessionInfo>, ApiError> {
        let message = coordinator::WatchSessionRequest {
            session_id: id.to_string(),
            join_token: join_token.unwrap_or_default().to_owned(),
        };
        let request = if join_token.is_some() {
            Request::new(message)
        } else {
            self.authorized(message)?
        };
        let mut inner = self.inner.clone();
        call("coordinator", self.timeout, inner.watch_session(request)).await
    }

    pub async fn report_completion(
        &self,
        join_token: &str,
        result: coordinator::report_completion_request::Result,
    ) -> Result<coordinator::SessionInfo, ApiError> {
        let mut inner = self.inner.clone();
        let request = coordinator::ReportCompletionRequest {
            join_token: join_token.to_owned(),
            result: Some(result),
        };
        let response = call(
            "coordinator",
            self.timeout,
            inner.report_completion(request),
        )
        .await?;
        response
            .session
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the coordinator sent no session"))
    }

    pub async fn report_failure(
        &self,
        join_token: &str,
        reason: &str,
        blamed: Option<&PartyId>,
    ) -> Result<coordinator::SessionInfo, ApiError> {
        let mut inner = self.inner.clone();
        let request = coordinator::ReportFailureRequest {
            join_token: join_token.to_owned(),
            reason: reason.to_owned(),
            blamed_party_id: blamed.map(PartyId::to_string).unwrap_or_default(),
            overloaded: false,
        };
        let response = call("coordinator", self.timeout, inner.report_failure(request)).await?;
        response
            .session
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the coordinator sent no session"))
    }

    /// Declines the session for lack of capacity: it fails at once as `overloaded`, and this
    /// party is not blamed for it.
    pub async fn report_busy(
        &self,
        join_token: &str,
    ) -> Result<coordinator::SessionInfo, ApiError> {
        let mut inner = self.inner.clone();
        let request = coordinator::ReportFailureRequest {
            join_token: join_token.to_owned(),
            overloaded: true,
            ..Default::default()
        };
        let response = call("coordinator", self.timeout, inner.report_failure(request)).await?;
        response
            .session
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the coordinator sent no session"))
    }

    /// The Ed25519 public key that verifies the coordinator's join tokens.
    pub async fn join_token_key(&self) -> Result<[u8; 32], ApiError> {
        let mut inner = self.inner.clone();
        let response = call(
            "coordinator",
            self.timeout,
            inner.get_join_token_key(coordinator::GetJoinTokenKeyRequest {}),
        )
        .await?;
        response.public_key.try_into().map_err(|_| {
            ApiError::new(
                ErrorCode::Internal,
                "the coordinator's join-token key is not 32 bytes",
            )
        })
    }

    /// Announces this party to the registry (a start or a heartbeat).
    pub async fn announce_party(
        &self,
        announcement: coordinator::AnnouncePartyRequest,
    ) -> Result<coordinator::AnnouncePartyResponse, ApiError> {
        let request = self.authorized(announcement)?;
        let mut inner = self.inner.clone();
        call("coordinator", self.timeout, inner.announce_party(request)).await
    }

    /// The party registry, live or not.
    pub async fn list_parties(&self) -> Result<Vec<coordinator::RegisteredParty>, ApiError> {
        let request = self.authorized(coordinator::ListPartiesRequest {})?;
        let mut inner = self.inner.clone();
        Ok(
            call("coordinator", self.timeout, inner.list_parties(request))
                .await?
                .parties,
        )
    }
}

/// The Message Router's gRPC API (`mpc.router.v1`).
#[derive(Clone)]
pub struct RouterClient {
    inner: router::message_router_client::MessageRouterClient<Channel>,
    timeout: Duration,
}

impl fmt::Debug for RouterClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Which mailbox to read: the caller's own, in one session.
#[derive(Clone, Copy, Debug)]
pub struct MailboxRef<'a> {
    pub join_token: &'a str,
    pub session_id: SessionId,
    pub party_id: &'a PartyId,
}

impl RouterClient {
    /// A client for `endpoint` (`http://host:50052`). Connects on first use.
    pub fn new(endpoint: &str, options: ClientOptions) -> Result<Self, ApiError> {
        Self::new_tls(endpoint, options, &mpc_service::TlsConfig::default())
    }

    /// [`new`](Self::new) with TLS for an `https://` endpoint.
    pub fn new_tls(
        endpoint: &str,
        options: ClientOptions,
        tls: &mpc_service::TlsConfig,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            inner: router::message_router_client::MessageRouterClient::new(channel(
                endpoint, &options, tls,
            )?)
            .max_decoding_message_size(MAX_RECEIVE_BYTES),
            timeout: options.request_timeout,
        })
    }

    /// Stores an envelope. Re-sending the same envelope (same `message_id`, same content) is a
    /// success with `duplicate = true`, so a send whose answer was lost can simply be retried.
    pub async fn route_message(
        &self,
        join_token: &str,
        envelope: router::MpcMessage,
    ) -> Result<router::RouteMessageResponse, ApiError> {
        let mut inner = self.inner.clone();
        let request = router::RouteMessageRequest {
            join_token: join_token.to_owned(),
            envelope: Some(envelope),
        };
        call("message router", self.timeout, inner.route_message(request)).await
    }

    /// The mailbox's envelopes with `seq > after_seq`, then new ones as they arrive.
    pub async fn subscribe(
        &self,
        mailbox: MailboxRef<'_>,
        after_seq: u64,
    ) -> Result<Streaming<router::MpcMessage>, ApiError> {
        let mut inner = self.inner.clone();
        let request = router::SubscribeMessagesRequest {
            join_token: mailbox.join_token.to_owned(),
            session_id: mailbox.session_id.to_string(),
            party_id: mailbox.party_id.to_string(),
            after_seq,
        };
        call(
            "message router",
            self.timeout,
            inner.subscribe_messages(request),
        )
        .await
    }

    /// Polling: up to `limit` envelopes after `after_seq`, waiting up to `wait` for the first.
    pub async fn fetch(
        &self,
        mailbox: MailboxRef<'_>,
        after_seq: u64,
        limit: u32,
        wait: Duration,
    ) -> Result<router::FetchMessagesResponse, ApiError> {
        let mut inner = self.inner.clone();
        let request = router::FetchMessagesRequest {
            join_token: mailbox.join_token.to_owned(),
            session_id: mailbox.session_id.to_string(),
            party_id: mailbox.party_id.to_string(),
            after_seq,
            limit,
            wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        call(
            "message router",
            self.timeout + wait,
            inner.fetch_messages(request),
        )
        .await
    }
}
