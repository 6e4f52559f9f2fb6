//! The in-process cluster: a Session Coordinator, a Message Router and N Server Parties, each
//! with its own fresh database, sharing one event bus, all on `127.0.0.1:0`.
//!
//! Infrastructure failures (a database that cannot be created, a service that does not start)
//! panic with a message: this crate is for tests only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mpc_bus::{EventBus, MemoryBus, RabbitBus, RabbitConfig};
use mpc_client::{
    ClientOptions, CoordinatorClient, DriverOptions, PartyContext, RouterClient, TrustPolicy,
};
use mpc_proto::{PartyId, TokenSigner, TokenVerifier};
use mpc_protocol::{IdentityKey, IdentityPublicKey, SealingKey};
use mpc_service::Shutdown;
use mpc_store::party::PartyStore;
use mpc_store::testing::TestDb;
use mpc_store::{Backend, Db};
use secrecy::SecretString;
use server_party::{PartyConfig, PartyListeners, PartyResources, PartyServiceError};
use tokio::task::JoinHandle;

use crate::account::{AccountHandle, AccountSetup, AccountTweak};
use crate::party_api::{PartyApiHandle, PartyApiKeys, random32};
use session_coordinator::registry::RegistryConfig;

use crate::services::{Service, bind, start_coordinator, start_router};
use tokio_util::sync::CancellationToken;

/// Long enough for a slow CI machine; waiting longer means the test failed.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// Which event bus the cluster runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusKind {
    /// `MemoryBus`, the embedded default.
    Memory,
    /// RabbitMQ at `AMQP_URL`, on a private exchange and private queues.
    RabbitMq,
}

/// Options of a [`Cluster`].
pub struct ClusterBuilder {
    backend: Backend,
    server_parties: usize,
    bus: BusKind,
    max_concurrent_sessions: usize,
    driver: DriverOptions,
    delegates: Vec<IdentityPublicKey>,
    allow_unpinned: bool,
    shared_master_key: bool,
    party_api: bool,
    pub(crate) account_service: bool,
    pub(crate) account_tweak: Option<AccountTweak>,
    pub(crate) party_api_tweak: Option<crate::party_api::PartyApiTweak>,
    registry: RegistryConfig,
    pub(crate) compute_permits: Option<usize>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            server_parties: 3,
            bus: BusKind::Memory,
            max_concurrent_sessions: server_party::config::DEFAULT_MAX_CONCURRENT_SESSIONS,
            driver: fast_driver(),
            delegates: Vec::new(),
            allow_unpinned: false,
            shared_master_key: false,
            party_api: false,
            account_service: false,
            account_tweak: None,
            party_api_tweak: None,
            registry: RegistryConfig::default(),
            compute_permits: None,
        }
    }
}

/// Quick retries (tests cut things on purpose); a 1 s report margin.
pub fn fast_driver() -> DriverOptions {
    DriverOptions {
        retry_first: Duration::from_millis(20),
        retry_max: Duration::from_millis(500),
        poll_wait: Duration::from_secs(2),
        report_margin: Duration::from_secs(1),
        ..DriverOptions::default()
    }
}

impl ClusterBuilder {
    /// SQLite files (default) or PostgreSQL schemas at `DATABASE_URL`.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// How many server parties: `server_party_1` … `server_party_N` (default 3).
    pub fn server_parties(mut self, n: usize) -> Self {
        self.server_parties = n;
        self
    }

    pub fn bus(mut self, bus: BusKind) -> Self {
        self.bus = bus;
        self
    }

    /// Each server party's `max_concurrent_sessions`.
    pub fn max_concurrent_sessions(mut self, n: usize) -> Self {
        self.max_concurrent_sessions = n;
        self
    }

    pub fn driver_options(mut self, options: DriverOptions) -> Self {
        self.driver = options;
        self
    }

    /// The server parties accept `key` for unpinned party ids (e.g. a device joining through a
    /// delegate, or a bare test client).
    pub fn delegate(mut self, key: IdentityPublicKey) -> Self {
        self.delegates.push(key);
        self
    }

    pub fn allow_unpinned(mut self, allow: bool) -> Self {
        self.allow_unpinned = allow;
        self
    }

    /// All server parties seal under the same master key (to show that the associated data, not
    /// the key, keeps their shares apart).
    pub fn shared_master_key(mut self, shared: bool) -> Self {
        self.shared_master_key = shared;
        self
    }

    /// Each server party (and the Server Party API) computes with a pool of its own of `n` CPU
    /// permits, instead of sharing the process's.
    pub fn compute_permits(mut self, n: usize) -> Self {
        self.compute_permits = Some(n);
        self
    }

    /// The coordinator's party registry (heartbeat interval, liveness timeout, enforcement).
    pub fn registry(mut self, registry: RegistryConfig) -> Self {
        self.registry = registry;
        self
    }

    /// Also runs the Server Party API (`Cluster::party_api`), trusted by the server parties as
    /// a delegate and pinning them.
    pub fn party_api(mut self, on: bool) -> Self {
        self.party_api = on;
        self
    }

    /// Starts everything. `None` when PostgreSQL is asked for and `DATABASE_URL` is unset
    /// outside CI (the test is skipped with a notice), or RabbitMQ and `AMQP_URL` likewise.
    pub async fn build(self) -> Option<Cluster> {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let bus: Arc<dyn EventBus> = match self.bus {
            BusKind::Memory => Arc::new(MemoryBus::new()),
            BusKind::RabbitMq => {
                let url = mpc_bus::testing::amqp_url()?;
                let mut config = RabbitConfig::new(url);
                config.exchange = format!("mpc.test.{suffix}");
                let bus = tokio::time::timeout(Duration::from_secs(30), RabbitBus::connect(config))
                    .await
                    .unwrap_or_else(|_| panic!("RabbitMQ did not answer"))
                    .unwrap_or_else(|e| panic!("RabbitMQ: {e}"));
                Arc::new(bus)
            }
        };
        let private_queues = self.bus == BusKind::RabbitMq;
        let coordinator_db = fresh_db(self.backend).await?;
        let router_db = fresh_db(self.backend).await?;

        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap_or_else(|e| panic!("random: {e}"));
        let token_key = TokenSigner::from_seed(&seed).public_key();
        let service_token = uuid::Uuid::new_v4().to_string();
        let shutdown = Shutdown::new();

        let coordinator = start_coordinator(
            &coordinator_db,
            bus.clone(),
            &seed,
            &service_token,
            self.registry,
            shutdown.child_token(),
        )
        .await;
        let router = start_router(
            &router_db,
            bus.clone(),
            token_key,
            private_queues.then(|| format!("mpc.router.{suffix}")),
            shutdown.child_token(),
        )
        .await;

        // Each party: its own database and master key, its identity provisioned first so that
        // every party can pin every other before any of them starts.
        let shared_key = SealingKey::generate("kek-1").unwrap_or_else(|e| panic!("{e}"));
        let mut parties = Vec::with_capacity(self.server_parties);
        for i in 1..=self.server_parties {
            let party_id =
                PartyId::parse(&format!("server_party_{i}")).unwrap_or_else(|e| panic!("{e}"));
            let master_key = if self.shared_master_key {
                shared_key.clone()
            } else {
                SealingKey::generate("kek-1").unwrap_or_else(|e| panic!("{e}"))
            };
            let db = fresh_db(self.backend).await?;
            let identity = server_party::provision_identity(&db.db, &party_id, &master_key)
                .await
                .unwrap_or_else(|e| panic!("provisioning {party_id}: {e}"));
            let queue = if private_queues {
                format!("{}.{suffix}", server_party::queue_name(&party_id))
            } else {
                server_party::queue_name(&party_id)
            };
            parties.push(PartyHandle {
                party_id,
                identity,
                master_key,
                queue,
                db,
                running: None,
                http: None,
            });
        }
        let party_api_keys = self.party_api.then(PartyApiKeys::generate);
        let account_setup = match self.account_service {
            false => None,
            true => Some(AccountSetup {
                // Bound now: the Server Party API, which starts first, asks it about API keys.
                listener: bind().await,
                db: fresh_db(self.backend).await?,
                access_seed: party_api_keys
                    .as_ref()
                    .map_or_else(random32, |k| k.access_seed),
                queue: private_queues.then(|| format!("mpc.account.{suffix}")),
                tweak: self.account_tweak,
            }),
        };
        let mut delegates = self.delegates;
        delegates.extend(party_api_keys.as_ref().map(PartyApiKeys::identity));
        let mut cluster = Cluster {
            backend: self.backend,
            bus,
            token_key,
            service_token,
            coordinator,
            router,
            parties,
            driver: self.driver,
            max_concurrent_sessions: self.max_concurrent_sessions,
            compute_permits: self.compute_permits,
            delegates,
            allow_unpinned: self.allow_unpinned,
            shutdown,
            party_api: None,
            party_api_tweak: self.party_api_tweak.clone(),
            account_service: None,
            _dbs: vec![coordinator_db, router_db],
        };
        for i in 0..cluster.parties.len() {
            cluster
                .start_party(i)
                .await
                .unwrap_or_else(|e| panic!("starting server party {}: {e}", i + 1));
        }
        if let Some(keys) = party_api_keys {
            let stop = cluster.shutdown.child_token();
            let account_url = account_setup
                .as_ref()
                .map(|a| format!("http://{}", a.listener.1));
            cluster.party_api = Some(
                crate::party_api::start(
                    keys,
                    &cluster,
                    cluster.driver,
                    account_url,
                    self.party_api_tweak.as_deref(),
                    stop,
                )
                .await,
            );
        }
        if let Some(setup) = account_setup {
            let stop = cluster.shutdown.child_token();
            cluster.account_service = Some(crate::account::start(setup, &cluster, stop).await);
        }
        Some(cluster)
    }
}

async fn fresh_db(backend: Backend) -> Option<TestDb> {
    match backend {
        Backend::Sqlite => Some(TestDb::sqlite().await),
        Backend::Postgres => TestDb::postgres().await,
    }
}

/// One server party: its database and master key outlive its runs, so it can be restarted.
pub struct PartyHandle {
    pub party_id: PartyId,
    /// The identity public key the other parties pin.
    pub identity: IdentityPublicKey,
    pub master_key: SealingKey,
    /// Its durable queue.
    pub queue: String,
    db: TestDb,
    running: Option<RunningParty>,
    http: Option<SocketAddr>,
}

struct RunningParty {
    stop: CancellationToken,
    task: JoinHandle<Result<(), PartyServiceError>>,
    db: Db,
}

impl PartyHandle {
    /// Its HTTP address while it runs.
    pub fn http(&self) -> Option<SocketAddr> {
        self.http
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }
}

/// A running MPC-System in this process.
pub struct Cluster {
    backend: Backend,
    bus: Arc<dyn EventBus>,
    token_key: [u8; 32],
    service_token: String,
    coordinator: Service,
    router: Service,
    parties: Vec<PartyHandle>,
    pub(crate) driver: DriverOptions,
    max_concurrent_sessions: usize,
    pub(crate) compute_permits: Option<usize>,
    delegates: Vec<IdentityPublicKey>,
    allow_unpinned: bool,
    pub(crate) shutdown: Shutdown,
    pub(crate) party_api: Option<PartyApiHandle>,
    pub(crate) party_api_tweak: Option<crate::party_api::PartyApiTweak>,
    pub(crate) account_service: Option<AccountHandle>,
    _dbs: Vec<TestDb>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Cluster {
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn bus(&self) -> Arc<dyn EventBus> {
        self.bus.clone()
    }

    pub fn coordinator(&self) -> &Service {
        &self.coordinator
    }

    pub fn router(&self) -> &Service {
        &self.router
    }

    /// The coordinator's join-token public key.
    pub fn join_token_key(&self) -> [u8; 32] {
        self.token_key
    }

    /// The service token that `CreateSession` needs.
    pub fn service_token(&self) -> &str {
        &self.service_token
    }

    /// A coordinator client that sends the service token.
    pub fn admin(&self) -> CoordinatorClient {
        CoordinatorClient::new(
            &format!("http://{}", self.coordinator.grpc),
            ClientOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .with_service_token(SecretString::from(self.service_token.clone()))
    }

    pub fn parties(&self) -> &[PartyHandle] {
        &self.parties
    }

    /// Server party `i` (0-based: `party(0)` is `server_party_1`).
    pub fn party(&self, i: usize) -> &PartyHandle {
        &self.parties[i]
    }

    pub fn party_id(&self, i: usize) -> PartyId {
        self.parties[i].party_id.clone()
    }

    /// A trust policy pinning every server party (for bare clients in tests).
    pub fn pins(&self) -> TrustPolicy {
        self.parties.iter().fold(TrustPolicy::new(), |t, p| {
            t.pin(p.party_id.clone(), p.identity)
        })
    }

    /// A driver context for a bare party (a device or client in a test) with `identity`,
    /// trusting the server parties by their pinned keys.
    pub fn client_context(&self, identity: Arc<IdentityKey>) -> PartyContext {
        PartyContext {
            identity,
            coordinator: CoordinatorClient::new(
                &format!("http://{}", self.coordinator.grpc),
                ClientOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{e}")),
            router: RouterClient::new(
                &format!("http://{}", self.router.grpc),
                ClientOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{e}")),
            token_verifier: TokenVerifier::from_public_key(&self.token_key)
                .unwrap_or_else(|e| panic!("{e}")),
            trust: self.pins(),
            options: self.driver,
            cancel: CancellationToken::new(),
            progress: None,
            compute: mpc_client::ComputePool::shared(),
            host: None,
        }
    }

    /// A store on server party `i`'s database (its own pool: works while the party is stopped).
    pub async fn party_store(&self, i: usize) -> Arc<dyn PartyStore> {
        mpc_store::party::open(&self.party_db(i).await)
            .await
            .unwrap_or_else(|e| panic!("party database: {e}"))
    }

    /// Server party `i`'s database (its own pool: works while the party is stopped), for
    /// `mpc_store::testing::party`'s reads.
    pub async fn party_db(&self, i: usize) -> Db {
        Db::connect(&self.parties[i].db.config)
            .await
            .unwrap_or_else(|e| panic!("party database: {e}"))
    }

    fn party_config(&self, i: usize, master_key: SealingKey) -> PartyConfig {
        let p = &self.parties[i];
        let mut trust = self
            .parties
            .iter()
            .filter(|q| q.party_id != p.party_id)
            .fold(
                TrustPolicy::new().allow_unpinned(self.allow_unpinned),
                |t, q| t.pin(q.party_id.clone(), q.identity),
            );
        for d in &self.delegates {
            trust = trust.delegate(*d);
        }
        let mut config = PartyConfig::new(p.party_id.clone(), master_key, self.token_key);
        config.database_url = self.parties[i].db.config.url.clone();
        config.database_schema = self.parties[i].db.config.schema.clone();
        config.coordinator_endpoint = format!("http://{}", self.coordinator.grpc);
        config.router_endpoint = format!("http://{}", self.router.grpc);
        config.bus_queue = p.queue.clone();
        config.trust = trust;
        config.max_concurrent_sessions = self.max_concurrent_sessions;
        config.compute = self.compute_permits.map(mpc_client::ComputePool::new);
        config.driver = self.driver;
        config.shutdown_grace = Duration::from_secs(5);
        config.service_token = Some(SecretString::from(self.service_token.clone()));
        config
    }

    /// Starts server party `i` with its own master key.
    pub async fn start_party(&mut self, i: usize) -> Result<(), PartyServiceError> {
        let key = self.parties[i].master_key.clone();
        self.start_party_with_master_key(i, key).await
    }

    /// Starts server party `i` with `master_key` (a wrong one fails at start, and the error is
    /// returned).
    pub async fn start_party_with_master_key(
        &mut self,
        i: usize,
        master_key: SealingKey,
    ) -> Result<(), PartyServiceError> {
        assert!(
            self.parties[i].running.is_none(),
            "server party {} is running",
            i + 1
        );
        let config = self.party_config(i, master_key);
        // The queue exists (and collects events) from now on, even before the party consumes.
        drop(
            self.bus
                .subscribe(&self.parties[i].queue, &["session.*"])
                .await
                .unwrap_or_else(|e| panic!("declaring the queue: {e}")),
        );
        let db = Db::connect(&self.parties[i].db.config)
            .await
            .unwrap_or_else(|e| panic!("party database: {e}"));
        let (http, http_addr) = bind().await;
        let stop = self.shutdown.child_token();
        let resources = PartyResources {
            db: db.clone(),
            bus: self.bus.clone(),
        };
        let mut task = tokio::spawn(server_party::serve(
            config,
            resources,
            PartyListeners { http },
            stop.clone(),
        ));
        // The listener is bound: this waits in the backlog until the party serves, or fails
        // when its start fails (the listener is dropped).
        let ready = tokio::time::timeout(DEADLINE, async {
            tokio::select! {
                started = crate::http::get(http_addr, "/healthz") => Ok(started),
                ended = &mut task => Err(ended),
            }
        })
        .await
        .unwrap_or_else(|_| panic!("server party {} did not start", i + 1));
        match ready {
            Ok(Ok(response)) if response.status == 200 => {}
            Ok(_) => {
                // The health check failed: the start failed; its error says why.
                let ended = tokio::time::timeout(DEADLINE, &mut task)
                    .await
                    .unwrap_or_else(|_| panic!("server party {} neither serves nor stops", i + 1));
                db.close().await;
                return match ended {
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(())) => panic!("server party {} stopped at once", i + 1),
                    Err(e) => panic!("server party {} panicked: {e}", i + 1),
                };
            }
            Err(ended) => {
                db.close().await;
                return match ended {
                    Ok(Err(e)) => Err(e),
                    Ok(Ok(())) => panic!("server party {} stopped at once", i + 1),
                    Err(e) => panic!("server party {} panicked: {e}", i + 1),
                };
            }
        }
        // Ready once it announced itself to the coordinator's registry: before that, sessions
        // naming it are refused (`unknown_party` / `party_unavailable`).
        crate::http::wait_ready(http_addr, DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("server party {} is not ready: {e}", i + 1));
        self.parties[i].http = Some(http_addr);
        self.parties[i].running = Some(RunningParty { stop, task, db });
        Ok(())
    }

    /// Stops server party `i` gracefully (its running sessions report a failure).
    pub async fn stop_party(&mut self, i: usize) {
        let Some(running) = self.parties[i].running.take() else {
            return;
        };
        self.parties[i].http = None;
        running.stop.cancel();
        let ended = tokio::time::timeout(DEADLINE, running.task)
            .await
            .unwrap_or_else(|_| panic!("server party {} did not stop", i + 1));
        match ended {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("server party {} failed: {e}", i + 1),
            Err(e) => panic!("server party {} panicked: {e}", i + 1),
        }
        running.db.close().await;
    }

    /// Kills server party `i`: its task is dropped mid-flight, as a crash would (nothing is
    /// reported; unacknowledged events go back to its queue).
    pub async fn kill_party(&mut self, i: usize) {
        let Some(running) = self.parties[i].running.take() else {
            return;
        };
        self.parties[i].http = None;
        running.task.abort();
        let _ = running.task.await;
        running.db.close().await;
    }

    /// Stops and starts server party `i` on the same database and master key.
    pub async fn restart_party(&mut self, i: usize) {
        self.stop_party(i).await;
        self.start_party(i)
            .await
            .unwrap_or_else(|e| panic!("restarting server party {}: {e}", i + 1));
    }

    /// Replaces server party `i`'s database with a fresh one (same party id and master key; a
    /// new identity key, which the other parties and the Server Party API are restarted to
    /// pin), as after losing a server. The party is started again.
    pub async fn replace_party_database(&mut self, i: usize) {
        self.kill_party(i).await;
        let db = fresh_db(self.backend)
            .await
            .unwrap_or_else(|| panic!("no database for the replacement"));
        let p = &mut self.parties[i];
        p.identity = server_party::provision_identity(&db.db, &p.party_id, &p.master_key)
            .await
            .unwrap_or_else(|e| panic!("provisioning the replacement: {e}"));
        p.db = db;
        for j in 0..self.parties.len() {
            if j != i && self.parties[j].running.is_some() {
                self.restart_party(j).await;
            }
        }
        self.start_party(i)
            .await
            .unwrap_or_else(|e| panic!("starting the replacement: {e}"));
        self.restart_party_api().await;
    }

    /// Stops everything: the Account Service, the Server Party API and the parties
    /// (gracefully), then the router and the coordinator.
    pub async fn shutdown(mut self) {
        self.stop_account_service().await;
        self.stop_party_api().await;
        for i in 0..self.parties.len() {
            self.stop_party(i).await;
        }
        self.shutdown.cancel();
        for task in [&mut self.router.task, &mut self.coordinator.task] {
            match tokio::time::timeout(DEADLINE, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("a service failed: {e}"),
                Err(_) => panic!("a service did not stop"),
            }
        }
    }
}
