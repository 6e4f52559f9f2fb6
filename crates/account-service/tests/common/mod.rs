//! Test harness: a real Session Coordinator and a real Account Service in one process, on port
//! 0, over a fresh database and an in-process bus, talked to over real HTTP and gRPC.
//!
//! Until the server parties and the Server Party API land, the parties are simulated over the
//! coordinator's real gRPC API: they join with their join tokens and report a result computed
//! with a throwaway secp256k1 key (the coordinator verifies signatures against the public key,
//! so a sign session only completes with a real signature).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use account_service::{AccountConfig, AccountListeners, AccountResources};
use axum::body::Bytes;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use k256::ecdsa::SigningKey;
use mpc_bus::{EventBus, MemoryBus};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_service::Shutdown;
use mpc_store::testing::TestDb;
use pb::coordinator_client::CoordinatorClient;
use secrecy::SecretString;
use serde_json::{Value, json};
use session_coordinator::{CoordinatorConfig, CoordinatorListeners, CoordinatorResources};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Long enough for a slow CI machine; a test that hits it has failed.
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const ADMIN_KEY: &str = "test-bootstrap-admin-key-0123456789";
const SERVICE_TOKEN: &str = "test-service-token";

pub struct Cluster {
    pub http: SocketAddr,
    pub coordinator_grpc: SocketAddr,
    /// The coordinator's HTTP (its `/metrics` feeds the console's figures).
    pub coordinator_http: SocketAddr,
    pub db: TestDb,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<()>>,
}

pub fn seed_b64(byte: u8) -> SecretString {
    SecretString::from(base64::engine::general_purpose::STANDARD.encode([byte; 32]))
}

pub fn account_config(coordinator_grpc: SocketAddr) -> AccountConfig {
    let mut config = AccountConfig::new(
        "(connected by the test)",
        format!("http://{coordinator_grpc}"),
        seed_b64(7),
    );
    config.bootstrap_api_key = Some(SecretString::from(ADMIN_KEY));
    config.coordinator_service_token = Some(SecretString::from(SERVICE_TOKEN));
    // Outcomes must come from the bus (or a client's read), not from the periodic check.
    config.reconcile_interval = Duration::from_secs(3600);
    config
}

impl Cluster {
    pub async fn start(db: TestDb) -> Cluster {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: TestDb, tweak: impl FnOnce(&mut AccountConfig)) -> Cluster {
        mpc_service::init_tracing();
        let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new());
        let shutdown = Shutdown::new();
        let c_http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c_grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let coordinator_grpc = c_grpc.local_addr().unwrap();
        let coordinator_http = c_http.local_addr().unwrap();
        let mut c_config = CoordinatorConfig::new("(connected by the test)", seed_b64(42));
        c_config.service_token = Some(SecretString::from(SERVICE_TOKEN));
        c_config.expiry_interval = Duration::from_millis(200);
        c_config.outbox_interval = Duration::from_millis(200);
        // These tests run their parties by hand (no registry announcements).
        c_config.registry.enforce = false;
        let resources = CoordinatorResources {
            db: db.db.clone(),
            bus: bus.clone(),
        };
        let stop = shutdown.clone();
        let coordinator = tokio::spawn(async move {
            session_coordinator::serve(
                c_config,
                resources,
                CoordinatorListeners {
                    http: c_http,
                    grpc: c_grpc,
                },
                stop,
            )
            .await
            .unwrap();
        });

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let mut config = account_config(coordinator_grpc);
        config.console.metrics_urls = vec![format!("http://{coordinator_http}/metrics")];
        tweak(&mut config);
        let resources = AccountResources {
            db: db.db.clone(),
            bus,
        };
        let stop = shutdown.clone();
        let account = tokio::spawn(async move {
            account_service::serve(config, resources, AccountListeners { http: listener }, stop)
                .await
                .unwrap();
        });
        let cluster = Cluster {
            http,
            coordinator_grpc,
            coordinator_http,
            db,
            shutdown,
            tasks: vec![coordinator, account],
        };
        // The listener is bound: this waits in the backlog until `serve` has migrated and
        // accepts (a failed start drops the listener and fails the request).
        let health = tokio::time::timeout(DEADLINE, cluster.get("/healthz", None))
            .await
            .expect("account service did not start");
        assert_eq!(health.status, 200);
        cluster
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("service did not stop")
                .unwrap();
        }
    }

    /// Stops the services and hands back the database, to start them again on it.
    pub async fn stop_keep_db(mut self) -> TestDb {
        self.shutdown.cancel();
        for task in std::mem::take(&mut self.tasks) {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("service did not stop")
                .unwrap();
        }
        self.db
    }

    pub async fn coordinator(&self) -> CoordinatorClient<Channel> {
        CoordinatorClient::connect(format!("http://{}", self.coordinator_grpc))
            .await
            .unwrap()
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.http));
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = client
            .request(
                req.body(Full::new(Bytes::from(body.unwrap_or_default())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Resp {
        self.request("GET", path, key, &[], None).await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Resp {
        self.request("POST", path, key, &[], Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn admin_get(&self, path: &str) -> Resp {
        self.get(path, Some(ADMIN_KEY)).await
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Resp {
        self.post(path, Some(ADMIN_KEY), body).await
    }

    /// Polls the account until `pred` holds (the outcome arrives asynchronously).
    pub async fn wait_for_account(&self, account_id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            loop {
                let r = self
                    .admin_get(&format!("/api/v1/accounts/{account_id}"))
                    .await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                if pred(&r.body) {
                    return r.body;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("account did not reach the expected state")
    }

    /// Polls the session until it is terminal.
    pub async fn wait_for_session_end(&self, session_id: &str) -> Value {
        let wait = async {
            loop {
                let r = self
                    .admin_get(&format!("/api/v1/mpc/sessions/{session_id}"))
                    .await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                let status = r.body["status"].as_str().unwrap_or_default().to_owned();
                if ["completed", "failed", "expired"].contains(&status.as_str()) {
                    return r.body;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("session did not end")
    }

    /// Polls the audit log (admin) until an entry matches `query`.
    pub async fn wait_for_audit(&self, query: &str) -> Vec<Value> {
        let wait = async {
            loop {
                let r = self.admin_get(&format!("/api/v1/audit-logs?{query}")).await;
                assert_eq!(r.status, 200, "{:?}", r.body);
                let entries = r.body["entries"].as_array().cloned().unwrap_or_default();
                if !entries.is_empty() {
                    return entries;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .unwrap_or_else(|_| panic!("no audit entry for {query}"))
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "{:?}",
            self.body
        );
        self
    }
}

/// The guide's 2-of-3 wallet (§5.1): a phone and two server parties.
pub fn guide_keygen() -> Value {
    json!({
        "threshold_n": 3,
        "threshold_t": 2,
        "participants": [
            {"party_id": "user_device_12345", "device_type": "android", "device_id": "android_device_uuid"},
            {"party_id": "server_party_1", "device_type": "server", "platform": "linux"},
            {"party_id": "server_party_2", "device_type": "server", "platform": "linux"}
        ]
    })
}

/// A throwaway key standing in for the group key the parties would compute.
pub fn test_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    SigningKey::from_slice(&seed).unwrap()
}

pub fn public_key_bytes(key: &SigningKey) -> Vec<u8> {
    key.verifying_key().to_sec1_point(false).as_bytes().to_vec()
}

fn join_request(token: &str) -> pb::JoinSessionRequest {
    let mut identity = vec![0u8; 32];
    getrandom::fill(&mut identity).unwrap();
    pb::JoinSessionRequest {
        join_token: token.into(),
        identity_public_key: identity,
        session_key: b"signed session-key announcement".to_vec(),
        host: None,
    }
}

fn tokens(created: &Value) -> Vec<String> {
    created["join_tokens"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// Simulated parties: every token joins, then fetches the roster.
async fn join_all(client: &mut CoordinatorClient<Channel>, tokens: &[String]) {
    for token in tokens {
        client.join_session(join_request(token)).await.unwrap();
    }
    for token in tokens {
        client
            .get_roster(pb::GetRosterRequest {
                join_token: token.clone(),
            })
            .await
            .unwrap();
    }
}

/// Every party of a keygen, refresh or recovery session reports `key`'s public key.
pub async fn complete_with_key(cluster: &Cluster, created: &Value, key: &SigningKey) {
    let mut client = cluster.coordinator().await;
    let tokens = tokens(created);
    join_all(&mut client, &tokens).await;
    for token in &tokens {
        client
            .report_completion(pb::ReportCompletionRequest {
                join_token: token.clone(),
                result: Some(pb::report_completion_request::Result::Key(pb::KeyResult {
                    public_key: public_key_bytes(key),
                })),
            })
            .await
            .unwrap();
    }
}

/// Every signer reports the signature of `hash` under `key` (low-s, with its recovery id).
pub async fn complete_sign(cluster: &Cluster, created: &Value, key: &SigningKey, hash: &[u8; 32]) {
    let (sig, recid) = key.sign_prehash_recoverable(hash);
    let bytes = sig.to_bytes();
    let mut client = cluster.coordinator().await;
    let tokens = tokens(created);
    join_all(&mut client, &tokens).await;
    for token in &tokens {
        client
            .report_completion(pb::ReportCompletionRequest {
                join_token: token.clone(),
                result: Some(pb::report_completion_request::Result::Signature(
                    pb::SignatureResult {
                        r: bytes[..32].to_vec(),
                        s: bytes[32..].to_vec(),
                        v: u32::from(recid.to_byte()),
                    },
                )),
            })
            .await
            .unwrap();
    }
}

/// The first party of the session gives up, blaming `blamed`.
pub async fn fail_session(cluster: &Cluster, created: &Value, reason: &str, blamed: &str) {
    let mut client = cluster.coordinator().await;
    let tokens = tokens(created);
    join_all(&mut client, &tokens).await;
    client
        .report_failure(pb::ReportFailureRequest {
            join_token: tokens[0].clone(),
            reason: reason.into(),
            blamed_party_id: blamed.into(),
            overloaded: false,
        })
        .await
        .unwrap();
}

/// A keygen through the Account Service, completed by simulated parties: `(account_id, key)`.
pub async fn active_account(cluster: &Cluster) -> (String, SigningKey) {
    let created = cluster
        .admin_post("/api/v1/mpc/keygen", &guide_keygen())
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let account_id = created.body["account_id"].as_str().unwrap().to_owned();
    let key = test_key();
    complete_with_key(cluster, &created.body, &key).await;
    cluster
        .wait_for_account(&account_id, |a| a["status"] == "active")
        .await;
    (account_id, key)
}

pub fn random_hash() -> [u8; 32] {
    let mut hash = [0u8; 32];
    getrandom::fill(&mut hash).unwrap();
    hash
}
