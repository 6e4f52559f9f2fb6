//! Test harness: a real router on 127.0.0.1:0 over a fresh database, join tokens from a test
//! coordinator key, gRPC and HTTP clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use message_router::{
    JoinTokenPublicKey, RouterConfig, RouterListeners, RouterResources, ServeError, Shutdown,
};
use mpc_bus::{EventBus, MemoryBus};
use mpc_proto::pb::mpc::router::v1::message_router_client::MessageRouterClient;
use mpc_proto::pb::mpc::router::v1::{
    FetchMessagesRequest, FetchMessagesResponse, MpcMessage, RouteMessageRequest,
    RouteMessageResponse, SubscribeMessagesRequest,
};
use mpc_proto::{ApiError, ErrorCode, PartyId, SessionId, SessionType, TokenSigner};
use mpc_store::Db;
use mpc_store::testing::TestDb;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Long enough that only a real wake-up (never the safety-net poll) can deliver within a test.
pub const NO_POLL: Duration = Duration::from_secs(3600);
/// Deadline for things that must happen (a message arriving): generous, never a measurement.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The coordinator's side of the tests: mints join tokens.
pub struct Coordinator {
    pub signer: TokenSigner,
}

impl Coordinator {
    pub fn new() -> Self {
        Self {
            signer: TokenSigner::generate().unwrap(),
        }
    }

    pub fn public_key(&self) -> JoinTokenPublicKey {
        JoinTokenPublicKey(self.signer.public_key())
    }

    /// A session of `names` with a join token per party, valid for ten minutes.
    pub fn session(&self, names: &[&str]) -> TestSession {
        self.session_until(names, SystemTime::now() + Duration::from_secs(600))
    }

    pub fn session_until(&self, names: &[&str], expires_at: SystemTime) -> TestSession {
        let id = SessionId::new_random();
        let parties: Vec<PartyId> = names.iter().map(|n| PartyId::parse(n).unwrap()).collect();
        let tokens = parties
            .iter()
            .enumerate()
            .map(|(idx, p)| {
                let token = self
                    .signer
                    .issue(
                        id,
                        p.clone(),
                        idx as u16,
                        SessionType::Keygen,
                        parties.clone(),
                        expires_at,
                    )
                    .unwrap();
                (p.to_string(), token)
            })
            .collect();
        TestSession { id, tokens }
    }
}

pub struct TestSession {
    pub id: SessionId,
    tokens: HashMap<String, String>,
}

impl TestSession {
    pub fn token(&self, party: &str) -> String {
        self.tokens[party].clone()
    }

    /// An envelope from `from` to `to` ("" for broadcast) with a fresh message id.
    pub fn envelope(&self, from: &str, to: &str, round: u32, payload: &[u8]) -> MpcMessage {
        MpcMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            session_id: self.id.to_string(),
            from_party: from.to_owned(),
            to_party: to.to_owned(),
            round,
            payload: payload.to_vec(),
            seq: 0,
            created_at: String::new(),
        }
    }
}

/// A running router.
pub struct TestRouter {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub shutdown: Shutdown,
    pub task: JoinHandle<Result<(), ServeError>>,
}

impl TestRouter {
    /// Starts a router on `db` and `bus`; `configure` adjusts the test defaults (no safety-net
    /// polling, so that tests prove the wake-ups).
    pub async fn start(
        coordinator: &Coordinator,
        db: Db,
        bus: Arc<dyn EventBus>,
        configure: impl FnOnce(&mut RouterConfig),
    ) -> TestRouter {
        let mut config = RouterConfig::new(coordinator.public_key());
        config.poll_interval = NO_POLL;
        configure(&mut config);
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
        let shutdown = Shutdown::new();
        let task = tokio::spawn(message_router::serve(
            config,
            RouterResources { db, bus },
            RouterListeners { http, grpc },
            shutdown.clone(),
        ));
        TestRouter {
            http: http_addr,
            grpc: grpc_addr,
            shutdown,
            task,
        }
    }

    /// A gRPC client. The listener is bound before `serve` starts, so connecting never races
    /// the start: the handshake simply waits until the router serves.
    pub async fn client(&self) -> MessageRouterClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        MessageRouterClient::new(channel).max_decoding_message_size(64 * 1024 * 1024)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Stops the router and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("router did not stop")
            .unwrap();
        assert!(result.is_ok(), "serve failed: {result:?}");
    }
}

pub async fn route(
    client: &mut MessageRouterClient<Channel>,
    token: &str,
    envelope: MpcMessage,
) -> Result<RouteMessageResponse, ApiError> {
    client
        .route_message(RouteMessageRequest {
            join_token: token.to_owned(),
            envelope: Some(envelope),
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| ApiError::from_status(&s))
}

pub async fn fetch(
    client: &mut MessageRouterClient<Channel>,
    session: &TestSession,
    party: &str,
    after_seq: u64,
    limit: u32,
    wait_ms: u32,
) -> Result<FetchMessagesResponse, ApiError> {
    client
        .fetch_messages(FetchMessagesRequest {
            join_token: session.token(party),
            session_id: session.id.to_string(),
            party_id: party.to_owned(),
            after_seq,
            limit,
            wait_ms,
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| ApiError::from_status(&s))
}

pub type EnvelopeStream = tonic::Streaming<MpcMessage>;

pub async fn subscribe(
    client: &mut MessageRouterClient<Channel>,
    session: &TestSession,
    party: &str,
    after_seq: u64,
) -> Result<EnvelopeStream, ApiError> {
    subscribe_with_token(client, session, &session.token(party), party, after_seq).await
}

pub async fn subscribe_with_token(
    client: &mut MessageRouterClient<Channel>,
    session: &TestSession,
    token: &str,
    party: &str,
    after_seq: u64,
) -> Result<EnvelopeStream, ApiError> {
    client
        .subscribe_messages(SubscribeMessagesRequest {
            join_token: token.to_owned(),
            session_id: session.id.to_string(),
            party_id: party.to_owned(),
            after_seq,
        })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| ApiError::from_status(&s))
}

/// The stream's next envelope, within [`DEADLINE`].
pub async fn next(stream: &mut EnvelopeStream) -> MpcMessage {
    match tokio::time::timeout(DEADLINE, stream.message()).await {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => panic!("stream ended"),
        Ok(Err(status)) => panic!("stream failed: {:?}", ApiError::from_status(&status)),
        Err(_) => panic!("no envelope within {DEADLINE:?}"),
    }
}

/// The error the stream ends with, within [`DEADLINE`] (envelopes before it are skipped).
pub async fn stream_error(stream: &mut EnvelopeStream) -> ApiError {
    loop {
        match tokio::time::timeout(DEADLINE, stream.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None)) => panic!("stream ended without an error"),
            Ok(Err(status)) => return ApiError::from_status(&status),
            Err(_) => panic!("stream did not end within {DEADLINE:?}"),
        }
    }
}

pub fn code<T: std::fmt::Debug>(result: Result<T, ApiError>) -> ErrorCode {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code,
    }
}

/// A minimal HTTP/1 client.
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request; returns the status and the body parsed as JSON (`Null` when empty or
    /// not JSON) plus the raw body text.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, serde_json::Value, String) {
        let mut request = hyper::Request::builder().method(method).uri(url);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(e) => panic!("{method} {url}: {e:?}"),
        };
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json, text)
    }
}

/// A router on a fresh database with an event bus (in-process unless a test brings its own),
/// and the coordinator minting tokens.
pub struct Fixture {
    pub coordinator: Coordinator,
    pub bus: Arc<dyn EventBus>,
    pub router: TestRouter,
    pub db: TestDb,
}

impl Fixture {
    pub async fn start(db: TestDb) -> Fixture {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: TestDb, configure: impl FnOnce(&mut RouterConfig)) -> Fixture {
        Self::start_on_bus(db, Arc::new(MemoryBus::new()), configure).await
    }

    pub async fn start_on_bus(
        db: TestDb,
        bus: Arc<dyn EventBus>,
        configure: impl FnOnce(&mut RouterConfig),
    ) -> Fixture {
        let coordinator = Coordinator::new();
        let router = TestRouter::start(&coordinator, db.db.clone(), bus.clone(), configure).await;
        Fixture {
            coordinator,
            bus,
            router,
            db,
        }
    }

    pub async fn client(&self) -> MessageRouterClient<Channel> {
        self.router.client().await
    }

    pub async fn stop(self) {
        self.router.stop().await;
    }
}
