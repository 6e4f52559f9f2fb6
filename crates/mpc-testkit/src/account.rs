//! The Account Service in the cluster (`ClusterBuilder::account_service(true)`): the public
//! entry on its own fresh database, calling the coordinator with the service token, consuming
//! session outcomes from the cluster's bus, with a generated admin API key, and — when the
//! Server Party API runs too — signing access tokens with the key the API trusts, so that a
//! token from `POST /api/v1/accounts/{id}/access-tokens` works there.
//!
//! The periodic reconciliation is off by default (once an hour): outcomes must come from the
//! bus or from a client reading the session, so a lost event fails a test instead of being
//! papered over a few seconds later. `ClusterBuilder::account_config` changes any of this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use account_service::{AccountConfig, AccountError, AccountListeners, AccountResources};
use base64::Engine;
use mpc_service::Shutdown;
use mpc_store::Db;
use mpc_store::account::AccountStore;
use mpc_store::testing::TestDb;
use secrecy::SecretString;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, ClusterBuilder, DEADLINE};
use crate::http::{self, HttpResponse};

/// Changes the Account Service's configuration before it starts (e.g. a short session
/// lifetime).
pub type AccountTweak = Box<dyn Fn(&mut AccountConfig) + Send + Sync>;

/// The running Account Service.
pub struct AccountHandle {
    pub http: SocketAddr,
    /// The bootstrap admin key (`MPC_API_KEY`), accepted in `X-API-Key`.
    pub api_key: String,
    db: TestDb,
    stop: Shutdown,
    task: JoinHandle<Result<(), AccountError>>,
}

/// What the cluster hands the Account Service when it starts it.
pub(crate) struct AccountSetup {
    pub(crate) listener: (tokio::net::TcpListener, SocketAddr),
    pub(crate) db: TestDb,
    pub(crate) access_seed: [u8; 32],
    pub(crate) queue: Option<String>,
    pub(crate) tweak: Option<AccountTweak>,
}

/// Starts the service; its queue is declared first (so that no outcome published before its
/// consumer subscribes is lost), the listener is bound first, and a health check waits in the
/// listener's backlog until it serves.
pub(crate) async fn start(setup: AccountSetup, cluster: &Cluster, stop: Shutdown) -> AccountHandle {
    let api_key = format!("test-admin-key-{}", uuid::Uuid::new_v4().simple());
    let mut config = AccountConfig::new(
        setup.db.config.url.clone(),
        format!("http://{}", cluster.coordinator().grpc),
        SecretString::from(base64::engine::general_purpose::STANDARD.encode(setup.access_seed)),
    );
    config.coordinator_service_token = Some(SecretString::from(cluster.service_token().to_owned()));
    config.bootstrap_api_key = Some(SecretString::from(api_key.clone()));
    config.reconcile_interval = Duration::from_secs(3600);
    // One base URL: the device operations are relayed to the cluster's Server Party API.
    config.party_api_url = cluster
        .party_api
        .as_ref()
        .map(|api| format!("http://{}", api.http));
    if let Some(queue) = setup.queue {
        config.bus_queue = queue;
    }
    if let Some(tweak) = &setup.tweak {
        tweak(&mut config);
    }
    drop(
        cluster
            .bus()
            .subscribe(
                &config.bus_queue,
                &["session.completed", "session.failed", "session.expired"],
            )
            .await
            .unwrap_or_else(|e| panic!("declaring the account service's queue: {e}")),
    );
    let (listener, addr) = setup.listener;
    let resources = AccountResources {
        db: setup.db.db.clone(),
        bus: cluster.bus(),
    };
    let mut task = tokio::spawn(account_service::serve(
        config,
        resources,
        AccountListeners { http: listener },
        stop.clone(),
    ));
    let started = tokio::time::timeout(DEADLINE, async {
        tokio::select! {
            r = http::get(addr, "/healthz") => Ok(r),
            ended = &mut task => Err(ended),
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the account service did not start"));
    match started {
        Ok(Ok(r)) if r.status == 200 => {}
        Ok(r) => panic!("the account service's health check failed: {r:?}"),
        Err(ended) => panic!("the account service stopped at once: {ended:?}"),
    }
    AccountHandle {
        http: addr,
        api_key,
        db: setup.db,
        stop,
        task,
    }
}

impl AccountHandle {
    /// `GET` with the admin key.
    pub async fn get(&self, path: &str) -> HttpResponse {
        http::get_with(self.http, path, &[("x-api-key", &self.api_key)])
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `POST` a JSON body with the admin key.
    pub async fn post(&self, path: &str, body: &Value) -> HttpResponse {
        self.post_with(path, &[("x-api-key", &self.api_key)], body)
            .await
    }

    /// `POST` a JSON body with exactly the given headers (another key, an `Idempotency-Key`…).
    pub async fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> HttpResponse {
        http::post_json(self.http, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Any request with exactly the given headers and raw body bytes.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> HttpResponse {
        http::request(self.http, method, path, headers, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Polls `GET path` (admin key, must answer 200) until `pred` holds for the body.
    pub async fn wait_for(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let r = self.get(path).await;
                assert_eq!(r.status, 200, "GET {path}: {}", r.body);
                if pred(&r.body) {
                    return r.body;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("GET {path}: timed out waiting for {what}"))
    }

    /// Polls the account until `pred` holds (outcomes arrive asynchronously).
    pub async fn wait_for_account(
        &self,
        account_id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for(&format!("/api/v1/accounts/{account_id}"), what, pred)
            .await
    }

    /// Polls `GET /api/v1/mpc/sessions/{id}` until the session completed, failed or expired.
    pub async fn wait_for_session_end(&self, session_id: &str) -> Value {
        self.wait_for(
            &format!("/api/v1/mpc/sessions/{session_id}"),
            "the session's end",
            |s| {
                s["status"]
                    .as_str()
                    .is_some_and(|st| ["completed", "failed", "expired"].contains(&st))
            },
        )
        .await
    }

    /// The audit entries matching `query` (admin), newest first.
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let r = self.get(&format!("/api/v1/audit-logs?{query}")).await;
        assert_eq!(r.status, 200, "audit-logs?{query}: {}", r.body);
        r.body["entries"].as_array().cloned().unwrap_or_default()
    }

    /// Polls the audit log until an entry matches `query`.
    pub async fn wait_for_audit(&self, query: &str) -> Vec<Value> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let entries = self.audit(query).await;
                if !entries.is_empty() {
                    return entries;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no audit entry for {query}"))
    }

    /// A store on the service's database (its own pool), to look at the rows themselves.
    pub async fn store(&self) -> Arc<dyn AccountStore> {
        let db = Db::connect(&self.db.config)
            .await
            .unwrap_or_else(|e| panic!("account database: {e}"));
        mpc_store::account::open(&db)
            .await
            .unwrap_or_else(|e| panic!("account database: {e}"))
    }

    /// Stops it gracefully; returns its database.
    pub(crate) async fn stop(self) -> TestDb {
        self.stop.cancel();
        match tokio::time::timeout(DEADLINE, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("the account service failed: {e}"),
            Ok(Err(e)) => panic!("the account service panicked: {e}"),
            Err(_) => panic!("the account service did not stop"),
        }
        self.db
    }
}

impl ClusterBuilder {
    /// Also runs the Account Service (`Cluster::account_service`) on its own database, with a
    /// generated admin API key; with the Server Party API, its access tokens are the ones the
    /// API trusts.
    pub fn account_service(mut self, on: bool) -> Self {
        self.account_service = on;
        self
    }

    /// Runs the Account Service with its configuration changed by `tweak` (e.g. a short
    /// `session_lifetime_seconds`).
    pub fn account_config(
        mut self,
        tweak: impl Fn(&mut AccountConfig) + Send + Sync + 'static,
    ) -> Self {
        self.account_service = true;
        self.account_tweak = Some(Box::new(tweak));
        self
    }
}

impl Cluster {
    /// The Account Service (built with `ClusterBuilder::account_service(true)`).
    pub fn account_service(&self) -> &AccountHandle {
        self.account_service
            .as_ref()
            .unwrap_or_else(|| panic!("the cluster was built without the account service"))
    }

    pub(crate) async fn stop_account_service(&mut self) {
        if let Some(running) = self.account_service.take() {
            running.stop().await;
        }
    }
}
