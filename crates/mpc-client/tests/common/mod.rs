//! Test harness: a real Session Coordinator and Message Router in this process (port 0, fresh
//! SQLite databases, one in-process bus), "bare" parties that run only the driver, a TCP proxy
//! that can cut a party's connections, and the committed 2-of-3 test key of `mpc-protocol`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, VerifyingKey};
use message_router::{JoinTokenPublicKey, RouterConfig, RouterListeners, RouterResources};
use mpc_bus::MemoryBus;
use mpc_client::party::{Progress, ProgressHook};
use mpc_client::{
    ClientOptions, CoordinatorClient, DriverOptions, PartyContext, RouterClient, TrustPolicy,
};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{PartyId, TokenSigner};
use mpc_protocol::{IdentityKey, KeyShare, MessageHash, Signature};
use mpc_service::Shutdown;
use mpc_store::testing::TestDb;
use secrecy::SecretString;
use session_coordinator::{CoordinatorConfig, CoordinatorListeners, CoordinatorResources};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for a slow CI machine; a test that hits it has failed.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}

/// A coordinator and a router, running until dropped or stopped.
pub struct Services {
    pub coordinator_grpc: SocketAddr,
    pub router_grpc: SocketAddr,
    pub token_key: [u8; 32],
    service_token: String,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<()>>,
    _dbs: (TestDb, TestDb),
}

impl Drop for Services {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Services {
    pub async fn start() -> Services {
        let coordinator_db = TestDb::sqlite().await;
        let router_db = TestDb::sqlite().await;
        let bus = Arc::new(MemoryBus::new());
        let mut seed = [0u8; 32];
        getrandom(&mut seed);
        let seed_b64 = base64::engine::general_purpose::STANDARD.encode(seed);
        let token_key = TokenSigner::from_seed(&seed).public_key();
        let service_token = uuid::Uuid::new_v4().to_string();
        let mut config =
            CoordinatorConfig::new("(connected by the test)", SecretString::from(seed_b64));
        config.expiry_interval = Duration::from_millis(200);
        config.outbox_interval = Duration::from_millis(200);
        config.watch_poll_interval = Duration::from_millis(500);
        // These tests run their parties by hand (no registry announcements).
        config.registry.enforce = false;
        config.service_token = Some(SecretString::from(service_token.clone()));
        let shutdown = Shutdown::new();

        let c_http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c_grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let coordinator_grpc = c_grpc.local_addr().unwrap();
        let coordinator = tokio::spawn(session_coordinator::serve(
            config,
            CoordinatorResources {
                db: coordinator_db.db.clone(),
                bus: bus.clone(),
            },
            CoordinatorListeners {
                http: c_http,
                grpc: c_grpc,
            },
            shutdown.clone(),
        ));

        let r_http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r_grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router_grpc = r_grpc.local_addr().unwrap();
        let router = tokio::spawn(message_router::serve(
            RouterConfig::new(JoinTokenPublicKey(token_key)),
            RouterResources {
                db: router_db.db.clone(),
                bus,
            },
            RouterListeners {
                http: r_http,
                grpc: r_grpc,
            },
            shutdown.clone(),
        ));
        let tasks = vec![
            tokio::spawn(async move { coordinator.await.unwrap().unwrap() }),
            tokio::spawn(async move { router.await.unwrap().unwrap() }),
        ];
        Services {
            coordinator_grpc,
            router_grpc,
            token_key,
            service_token,
            shutdown,
            tasks,
            _dbs: (coordinator_db, router_db),
        }
    }

    /// A coordinator client with the service token (for CreateSession).
    pub fn admin(&self) -> CoordinatorClient {
        CoordinatorClient::new(
            &format!("http://{}", self.coordinator_grpc),
            ClientOptions::default(),
        )
        .unwrap()
        .with_service_token(SecretString::from(self.service_token.clone()))
    }

    pub async fn create(&self, request: pb::CreateSessionRequest) -> pb::CreateSessionResponse {
        self.admin().create_session(request).await.unwrap()
    }

    /// A party context talking to `router` (the router itself, or a proxy in front of it).
    pub fn party_via(
        &self,
        identity: Arc<IdentityKey>,
        trust: TrustPolicy,
        options: DriverOptions,
        router: SocketAddr,
        progress: Option<ProgressHook>,
    ) -> PartyContext {
        PartyContext {
            identity,
            coordinator: CoordinatorClient::new(
                &format!("http://{}", self.coordinator_grpc),
                ClientOptions::default(),
            )
            .unwrap(),
            router: RouterClient::new(&format!("http://{router}"), ClientOptions::default())
                .unwrap(),
            token_verifier: mpc_proto::TokenVerifier::from_public_key(&self.token_key).unwrap(),
            trust,
            options,
            cancel: CancellationToken::new(),
            progress,
            compute: mpc_client::ComputePool::shared(),
            host: None,
        }
    }

    pub fn party(&self, identity: Arc<IdentityKey>, trust: TrustPolicy) -> PartyContext {
        self.party_via(identity, trust, fast_options(), self.router_grpc, None)
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in self.tasks.drain(..) {
            tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
        }
    }
}

/// Quick retries: tests cut connections on purpose.
pub fn fast_options() -> DriverOptions {
    DriverOptions {
        retry_first: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        poll_wait: Duration::from_secs(2),
        ..DriverOptions::default()
    }
}

pub fn getrandom(buf: &mut [u8]) {
    getrandom::fill(buf).unwrap();
}

/// `n` identities, and a policy pinning each to `names[i]`.
pub fn identities(names: &[&str]) -> (Vec<Arc<IdentityKey>>, TrustPolicy) {
    let keys: Vec<Arc<IdentityKey>> = names
        .iter()
        .map(|_| Arc::new(IdentityKey::generate().unwrap()))
        .collect();
    let mut policy = TrustPolicy::new();
    for (name, key) in names.iter().zip(&keys) {
        policy = policy.pin(pid(name), key.public_key());
    }
    (keys, policy)
}

/// A participant; `server_party_*` are declared server parties (which must be pinned), the
/// rest devices.
pub fn participant(id: &str, index: Option<u32>) -> pb::ParticipantSpec {
    let device_type = if id.starts_with("server_party") {
        "server"
    } else {
        "android"
    };
    pb::ParticipantSpec {
        party_id: id.into(),
        device_type: device_type.into(),
        party_index: index,
    }
}

pub fn keygen_request(names: &[&str], t: u32, key_id: &str) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        session_type: pb::SessionType::Keygen.into(),
        threshold_t: t,
        threshold_n: names.len() as u32,
        participants: names.iter().map(|n| participant(n, None)).collect(),
        key_id: key_id.into(),
        ..Default::default()
    }
}

/// A sign request for `(name, index)` signers of a `t`-of-`n` key.
pub fn sign_request(
    signers: &[(&str, u32)],
    t: u32,
    n: u32,
    key_id: &str,
    public_key: &[u8; 65],
    hash: &MessageHash,
) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        session_type: pb::SessionType::Sign.into(),
        threshold_t: t,
        threshold_n: n,
        participants: signers
            .iter()
            .map(|(name, i)| participant(name, Some(*i)))
            .collect(),
        key_id: key_id.into(),
        message_hash: hash.as_bytes().to_vec(),
        public_key: public_key.to_vec(),
        ..Default::default()
    }
}

pub fn random_hash() -> MessageHash {
    let mut h = [0u8; 32];
    getrandom(&mut h);
    MessageHash::new(h)
}

/// The committed 2-of-3 test key of `mpc-protocol` (so tests that only sign skip a keygen).
pub fn fixture_shares() -> Vec<Arc<KeyShare>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mpc-protocol/tests/fixtures");
    (0..3)
        .map(|i| {
            let bytes = std::fs::read(dir.join(format!("share_v1_2of3_p{i}.bin"))).unwrap();
            Arc::new(KeyShare::from_bytes(&bytes).unwrap())
        })
        .collect()
}

/// The independent check (not our code): `k256` verifies the prehash signature, `s` is low,
/// and ecrecover with `v` returns the group key.
pub fn assert_valid(public_key: &[u8; 65], hash: &MessageHash, sig: &Signature) {
    let vk = VerifyingKey::from_sec1_bytes(public_key).expect("group key parses");
    let k = k256::ecdsa::Signature::from_scalars(sig.r, sig.s).expect("r, s in range");
    assert_eq!(k.normalize_s(), k, "signature must be low-s");
    vk.verify_prehash(hash.as_bytes(), &k)
        .expect("k256 verifies");
    let recovered = VerifyingKey::recover_from_prehash(
        hash.as_bytes(),
        &k,
        RecoveryId::from_byte(sig.v).expect("v is 0 or 1"),
    )
    .expect("ecrecover");
    assert_eq!(
        recovered, vk,
        "ecrecover(hash, r, s, v) returns the group key"
    );
}

/// Records every progress event of one party.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Progress>>>);

impl Recorder {
    pub fn hook(&self, also: impl Fn(&Progress) + Send + Sync + 'static) -> ProgressHook {
        let events = self.0.clone();
        Arc::new(move |p: &Progress| {
            events.lock().unwrap().push(p.clone());
            also(p);
        })
    }

    pub fn events(&self) -> Vec<Progress> {
        self.0.lock().unwrap().clone()
    }

    /// The seqs of the envelopes the party received, in order.
    pub fn received_seqs(&self) -> Vec<u64> {
        self.events()
            .iter()
            .filter_map(|p| match p {
                Progress::Received { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }
}

/// A TCP proxy in front of a service. `cut()` closes every open connection at once (in-flight
/// calls and streams break; new connections work); `refuse(true)` closes new connections as
/// soon as they are accepted, as if the service were unreachable.
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    generation: Arc<Mutex<CancellationToken>>,
    refusing: Arc<AtomicBool>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            generation: Arc::new(Mutex::new(CancellationToken::new())),
            refusing: Arc::new(AtomicBool::new(false)),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if p.refusing.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut = p.generation.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        () = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        proxy
    }

    pub fn cut(&self) {
        let mut generation = self.generation.lock().unwrap();
        generation.cancel();
        *generation = CancellationToken::new();
    }

    pub fn refuse(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }
}
