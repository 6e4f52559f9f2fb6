//! Test harness: coordinators on port 0 over a fresh database, a bus that records what is
//! published (and can be made to fail), parties with real tokens and keys, a real HTTP client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use axum::body::Bytes;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k256::ecdsa::SigningKey;
use mpc_bus::{BusError, EventBus, EventKind, SessionEvent, Subscription};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ErrorCode, SessionId};
use mpc_protocol::IdentityKey;
use mpc_service::Shutdown;
use mpc_store::Db;
use mpc_store::testing::TestDb;
use pb::coordinator_client::CoordinatorClient;
use secrecy::SecretString;
use session_coordinator::registry::RegistryConfig;
use session_coordinator::{CoordinatorConfig, CoordinatorListeners, CoordinatorResources, serve};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::transport::Channel;

/// Long enough for a slow CI machine; a test that hits it has failed.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Records every published event; `set_failing(true)` simulates a broker outage.
#[derive(Default)]
pub struct RecordingBus {
    events: Mutex<Vec<SessionEvent>>,
    failing: AtomicBool,
    published: Notify,
}

impl RecordingBus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn events(&self) -> Vec<SessionEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn events_of(&self, session: SessionId) -> Vec<SessionEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.session_id == session)
            .collect()
    }

    /// Waits until `pred` holds for the recorded events.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&[SessionEvent]) -> bool) {
        let wait = async {
            loop {
                let notified = self.published.notified();
                if pred(&self.events()) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; got {:?}", self.events()));
    }

    pub async fn wait_for(&self, kind: EventKind, session: SessionId) -> SessionEvent {
        self.wait_until(&format!("{kind:?} of {session}"), |events| {
            events
                .iter()
                .any(|e| e.kind == kind && e.session_id == session)
        })
        .await;
        self.events_of(session)
            .into_iter()
            .find(|e| e.kind == kind)
            .unwrap()
    }
}

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, event: &SessionEvent) -> Result<(), BusError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("simulated outage".into()));
        }
        self.events.lock().unwrap().push(event.clone());
        self.published.notify_waiters();
        Ok(())
    }

    async fn subscribe(
        &self,
        _queue: &str,
        _patterns: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        Err(BusError::Config("the recording bus only records".into()))
    }

    async fn ping(&self) -> Result<(), BusError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("simulated outage".into()));
        }
        Ok(())
    }
}

pub const SEED: [u8; 32] = [42; 32];

pub fn config() -> CoordinatorConfig {
    let seed = base64::engine::general_purpose::STANDARD.encode(SEED);
    let mut config = CoordinatorConfig::new("(connected by the test)", SecretString::from(seed));
    config.expiry_interval = Duration::from_millis(100);
    config.outbox_interval = Duration::from_millis(100);
    config.watch_poll_interval = Duration::from_millis(500);
    // These tests run their parties by hand (no registry announcements).
    config.registry.enforce = false;
    config
}

/// One running coordinator.
pub struct Running {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub bus: Arc<RecordingBus>,
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn start(db: Db, bus: Arc<RecordingBus>, config: CoordinatorConfig) -> Running {
        Self::start_with_bus(db, bus.clone(), bus, config).await
    }

    /// A coordinator publishing to `events` (a real bus); `bus` only records if `events` is it.
    pub async fn start_with_bus(
        db: Db,
        events: Arc<dyn EventBus>,
        bus: Arc<RecordingBus>,
        config: CoordinatorConfig,
    ) -> Running {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
        let shutdown = Shutdown::new();
        let resources = CoordinatorResources { db, bus: events };
        let listeners = CoordinatorListeners { http, grpc };
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            serve(config, resources, listeners, stop).await.unwrap();
        });
        // The listeners are bound, so this request waits in the backlog until `serve` has run
        // its migrations and accepts; a failed start drops the listener and fails the request.
        // Replicas are started one after the other: SQLite migrations take no lock.
        let health = tokio::time::timeout(
            DEADLINE,
            self::http(http_addr, "GET", "/healthz", None, None),
        )
        .await
        .expect("coordinator did not start");
        assert_eq!(health.status, 200);
        Running {
            http: http_addr,
            grpc: grpc_addr,
            bus,
            shutdown,
            task,
        }
    }

    /// A coordinator on `t`'s database with the test configuration.
    pub async fn on(t: &TestDb) -> Running {
        Self::start(t.db.clone(), RecordingBus::new(), config()).await
    }

    /// Another replica: its own pool on the same database.
    pub async fn replica(t: &TestDb) -> Running {
        let db = Db::connect(&t.config).await.unwrap();
        Self::start(db, RecordingBus::new(), config()).await
    }

    pub async fn client(&self) -> CoordinatorClient<Channel> {
        // The listener is bound before `serve` runs, so connecting cannot race its start.
        CoordinatorClient::connect(format!("http://{}", self.grpc))
            .await
            .unwrap()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("coordinator did not stop")
            .unwrap();
    }
}

/// The typed error of a failed gRPC call.
pub fn api_error<T>(result: Result<T, tonic::Status>) -> ApiError {
    match result {
        Ok(_) => panic!("expected an error, the call succeeded"),
        Err(status) => ApiError::from_status(&status),
    }
}

pub fn code<T>(result: Result<T, tonic::Status>) -> ErrorCode {
    api_error(result).code
}

/// A throwaway secp256k1 key. The coordinator never holds one; tests need one to produce a
/// signature it can verify.
pub fn test_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    SigningKey::from_slice(&seed).unwrap()
}

pub fn public_key_bytes(key: &SigningKey) -> Vec<u8> {
    key.verifying_key().to_sec1_point(false).as_bytes().to_vec()
}

/// `(r, s, v)` of a low-s recoverable signature of `hash`.
pub fn sign(key: &SigningKey, hash: &[u8; 32]) -> (Vec<u8>, Vec<u8>, u32) {
    let (sig, recid) = key.sign_prehash_recoverable(hash);
    let bytes = sig.to_bytes();
    (
        bytes[..32].to_vec(),
        bytes[32..].to_vec(),
        u32::from(recid.to_byte()),
    )
}

pub fn participant(id: &str, device: &str, index: Option<u32>) -> pb::ParticipantSpec {
    pb::ParticipantSpec {
        party_id: id.into(),
        device_type: device.into(),
        party_index: index,
    }
}

/// The guide's 2-of-3 keygen: a phone and two server parties.
pub fn keygen_request() -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        session_type: pb::SessionType::Keygen.into(),
        threshold_t: 2,
        threshold_n: 3,
        participants: vec![
            participant("user_device", "android", None),
            participant("server_party_1", "server", None),
            participant("server_party_2", "server", None),
        ],
        key_id: "account-1".into(),
        ..Default::default()
    }
}

/// A 2-of-3 sign by the phone (index 0) and server_party_2 (index 2).
pub fn sign_request(public_key: Vec<u8>, hash: [u8; 32]) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        session_type: pb::SessionType::Sign.into(),
        threshold_t: 2,
        threshold_n: 3,
        participants: vec![
            participant("user_device", "android", Some(0)),
            participant("server_party_2", "server", Some(2)),
        ],
        key_id: "account-1".into(),
        message_hash: hash.to_vec(),
        public_key,
        ..Default::default()
    }
}

pub fn session_id(created: &pb::CreateSessionResponse) -> SessionId {
    SessionId::parse(&created.session_id).unwrap()
}

pub fn status(info: &pb::SessionInfo) -> pb::SessionStatus {
    pb::SessionStatus::try_from(info.status).unwrap()
}

/// A party's join request with fresh (random) keys.
pub fn join_request(token: &str) -> pb::JoinSessionRequest {
    let mut identity = vec![0u8; 32];
    getrandom::fill(&mut identity).unwrap();
    pb::JoinSessionRequest {
        join_token: token.into(),
        identity_public_key: identity,
        session_key: b"signed session-key announcement".to_vec(),
        host: None,
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    bearer: Option<&str>,
) -> HttpResponse {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    if let Some(token) = bearer {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = client
        .request(req.body(Full::new(Bytes::from(bytes))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    HttpResponse { status, body }
}

// The party registry: signed announcements, with the service token.

pub const TOKEN: &str = "registry-test-service-token";

pub fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

pub fn announcement(
    identity: &IdentityKey,
    party: &str,
    kind: pb::PartyKind,
    at_ms: i64,
) -> pb::AnnouncePartyRequest {
    announcement_of(identity, party, kind, at_ms, "instance-1")
}

/// An announcement by one instance (process start) of the party.
pub fn announcement_of(
    identity: &IdentityKey,
    party: &str,
    kind: pb::PartyKind,
    at_ms: i64,
    instance: &str,
) -> pb::AnnouncePartyRequest {
    let key = *identity.public_key().as_bytes();
    let kind = i32::from(kind);
    let message = mpc_proto::registry::announcement_message(
        party,
        u8::try_from(kind).unwrap(),
        &key,
        at_ms,
        instance,
    );
    pb::AnnouncePartyRequest {
        party_id: party.into(),
        kind,
        identity_public_key: key.to_vec(),
        version: "test".into(),
        active_sessions: 2,
        announced_at_ms: at_ms,
        signature: identity
            .sign_statement(mpc_proto::registry::ANNOUNCEMENT_CONTEXT, &message)
            .to_vec(),
        instance_id: instance.into(),
    }
}

pub fn authorized<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    r
}

pub async fn announce(
    client: &mut pb::coordinator_client::CoordinatorClient<Channel>,
    req: pb::AnnouncePartyRequest,
) -> Result<pb::AnnouncePartyResponse, ApiError> {
    client
        .announce_party(authorized(req))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| ApiError::from_status(&s))
}

pub fn registry_config(liveness: Duration) -> session_coordinator::CoordinatorConfig {
    let mut c = config();
    c.service_token = Some(SecretString::from(TOKEN));
    c.registry = RegistryConfig {
        enforce: true,
        heartbeat_interval: Duration::from_millis(100),
        liveness_timeout: liveness,
        max_clock_skew: Duration::from_secs(30),
        fail_silent_hosts: true,
    };
    c
}
