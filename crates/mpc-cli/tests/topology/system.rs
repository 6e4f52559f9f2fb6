//! The whole MPC-System as separate `mpc serve` processes on loopback, on the real PostgreSQL
//! and RabbitMQ: one schema per service and per party, a private exchange and private queues,
//! secrets from `mpc keys generate`, identities from `mpc party identity`, mutual pinning.
//!
//! Routers: A serves the coordinator's clients on the "left" (server parties 1 and 2 and the
//! Server Party API), B serves server party 3, both on one router schema, so a session with
//! party 3 and anyone else only works if the routers wake each other (PostgreSQL LISTEN/NOTIFY).
//!
//! Everything runs on TLS with mutual TLS between the services: a local CA and a certificate per
//! service (`mpc_service::tls_gen`), handed to each process through `MPC_TLS_*`; each server
//! party's certificate names its party id.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mpc_bus::EventBus;
use mpc_bus::rabbitmq::{RabbitBus, RabbitConfig};
use mpc_service::tls_gen::{Subject, ensure_local_pki};
use sqlx::Executor;

use crate::procs::{NotReady, Proc, free_ports, mpc_output, tail, wait_ready};

pub const PARTIES: [&str; 3] = ["server_party_1", "server_party_2", "server_party_3"];
/// The Account Service binds these patterns (its queue is pre-declared with the same ones).
const ACCOUNT_PATTERNS: [&str; 3] = ["session.completed", "session.failed", "session.expired"];
/// A service that is not ready this long after it started has a problem worth reporting.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// Every secret the system was given or handed out; none may appear in any process's output.
pub struct Secrets {
    pub api_key: String,
    pub service_token: String,
    pub join_token_seed: String,
    pub access_token_seed: String,
    pub party_api_identity_seed: String,
    pub party_api_share_key: String,
    pub master_keys: Vec<String>,
    /// Join tokens and device shares, added as the test receives them.
    pub handed_out: Vec<String>,
}

impl Secrets {
    pub fn all(&self) -> Vec<(&'static str, &str)> {
        let mut v = vec![
            ("API key", self.api_key.as_str()),
            ("service token", &self.service_token),
            ("join-token seed", &self.join_token_seed),
            ("access-token seed", &self.access_token_seed),
            ("party API identity seed", &self.party_api_identity_seed),
            ("party API share key", &self.party_api_share_key),
        ];
        v.extend(self.master_keys.iter().map(|k| ("master key", k.as_str())));
        v.extend(
            self.handed_out
                .iter()
                .map(|k| ("join token or share", k.as_str())),
        );
        v
    }
}

/// One service: how it is started (kept for restarts) and its current process.
struct Service {
    kind: &'static str,
    env: BTreeMap<String, String>,
    /// The variables holding its listen addresses (re-picked when a first bind fails).
    listen_vars: Vec<&'static str>,
    http_var: &'static str,
    incarnation: u32,
    proc: Option<Proc>,
}

pub struct Topology {
    pub client: reqwest::Client,
    pub secrets: Secrets,
    /// Every schema is `<prefix>_<service>` (`coordinator`, `router`, `account`, `party_1`, …).
    #[allow(dead_code)] // read by the chaos test only
    pub prefix: String,
    /// Service name → its process and start-up recipe. Dropped (every child killed) before
    /// `cleanup` runs: fields drop in declaration order.
    services: BTreeMap<&'static str, Service>,
    logs: tempfile::TempDir,
    cleanup: Cleanup,
}

/// Drops the test's schemas and deletes its queues and exchange, on success and failure alike.
struct Cleanup {
    database_url: String,
    amqp_url: String,
    schemas: Vec<String>,
    queues: Vec<String>,
    exchange: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (db, amqp) = (self.database_url.clone(), self.amqp_url.clone());
        let schemas = std::mem::take(&mut self.schemas);
        let queues = std::mem::take(&mut self.queues);
        let exchange = self.exchange.clone();
        // Drop may run inside the test's runtime: do the async work on a thread of its own.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&db)
                    .await
                {
                    for schema in schemas {
                        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                        if let Err(e) = pool.execute(sqlx::AssertSqlSafe(sql)).await {
                            eprintln!("cleanup: dropping schema {schema}: {e}");
                        }
                    }
                    pool.close().await;
                }
                if let Ok(connection) =
                    lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default()).await
                    && let Ok(channel) = connection.create_channel().await
                {
                    for queue in queues {
                        if let Err(e) = channel
                            .queue_delete(queue.as_str().into(), Default::default())
                            .await
                        {
                            eprintln!("cleanup: deleting queue {queue}: {e}");
                        }
                    }
                    let _ = channel
                        .exchange_delete(exchange.as_str().into(), Default::default())
                        .await;
                    let _ = connection.close(200, "done".into()).await;
                }
            });
        });
        let _ = done.join();
    }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn generate() -> String {
    mpc_output(&["keys", "generate"], &BTreeMap::new())
}

impl Topology {
    /// Provisions everything and starts every service, each ready before the next starts.
    pub async fn start(database_url: &str, amqp_url: &str) -> Topology {
        Self::start_with(database_url, amqp_url, &[]).await
    }

    /// As [`Topology::start`], with `extra` variables for every service (timeouts, intervals).
    pub async fn start_with(
        database_url: &str,
        amqp_url: &str,
        extra: &[(&str, &str)],
    ) -> Topology {
        assert!(
            database_url.starts_with("postgres"),
            "the topology test needs PostgreSQL at DATABASE_URL"
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut rand = [0u8; 5];
        getrandom::fill(&mut rand).unwrap();
        // `t_<unix seconds>_…`: mpc-store's test helper drops such schemas after two hours,
        // should this test die before its own cleanup.
        let prefix = format!("t_{now}_{}", hex::encode(rand));
        let suffix = hex::encode(rand);
        let schema = |s: &str| format!("{prefix}_{s}");
        let exchange = format!("mpc.topology.{suffix}");
        let queue = |s: &str| format!("mpc.topology.{suffix}.{s}");

        let secrets = Secrets {
            api_key: generate(),
            service_token: generate(),
            join_token_seed: generate(),
            access_token_seed: generate(),
            party_api_identity_seed: generate(),
            party_api_share_key: generate(),
            master_keys: PARTIES.iter().map(|_| generate()).collect(),
            handed_out: Vec::new(),
        };
        let mut sys = Topology {
            client: reqwest::Client::new(),
            services: BTreeMap::new(),
            logs: tempfile::Builder::new()
                .prefix("mpc-topology-")
                .tempdir()
                .unwrap(),
            cleanup: Cleanup {
                database_url: database_url.to_owned(),
                amqp_url: amqp_url.to_owned(),
                schemas: [
                    "coordinator",
                    "router",
                    "account",
                    "party_1",
                    "party_2",
                    "party_3",
                ]
                .iter()
                .map(|s| schema(s))
                .collect(),
                queues: Vec::new(),
                exchange: exchange.clone(),
            },
            secrets,
            prefix: prefix.clone(),
        };
        let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut subjects: Vec<Subject> = ["coordinator", "router", "account", "party-api"]
            .iter()
            .map(|n| Subject::service(n, &hosts))
            .collect();
        subjects.extend(PARTIES.iter().map(|p| Subject::party(p, &hosts)));
        let pki = ensure_local_pki(&sys.logs.path().join("tls"), &subjects).unwrap();
        sys.client = pki
            .config("account", true)
            .unwrap()
            .reqwest_builder(reqwest::Client::builder())
            .unwrap()
            .build()
            .unwrap();
        let tls_env = |name: &str| {
            let (_, files) = pki.issued.iter().find(|(n, _)| n == name).unwrap();
            let ca = pki.ca.display().to_string();
            env(&[
                ("MPC_TLS_CERT", &files.cert.display().to_string()),
                ("MPC_TLS_KEY", &files.key.display().to_string()),
                ("MPC_TLS_CA", &ca),
                ("MPC_TLS_CLIENT_CA", &ca),
            ])
        };
        let s = &sys.secrets;
        let join_token_public_key = mpc_output(
            &["keys", "join-token-public-key"],
            &env(&[("MPC_JOIN_TOKEN_SEED", &s.join_token_seed)]),
        );
        let access_token_public_key = mpc_output(
            &["keys", "access-token-public-key"],
            &env(&[("MPC_ACCESS_TOKEN_SEED", &s.access_token_seed)]),
        );
        let party_api_identity = mpc_output(
            &["keys", "party-api-identity"],
            &env(&[("MPC_PARTY_API_IDENTITY_SEED", &s.party_api_identity_seed)]),
        );
        // Each party's identity, created in its own schema before it ever starts: what the
        // others pin.
        let party_env: Vec<BTreeMap<String, String>> = PARTIES
            .iter()
            .enumerate()
            .map(|(i, party)| {
                env(&[
                    ("DATABASE_URL", database_url),
                    ("MPC_PARTY_ID", party),
                    ("MPC_PARTY_MASTER_KEY", &s.master_keys[i]),
                    (
                        "MPC_PARTY_DATABASE_SCHEMA",
                        &schema(&format!("party_{}", i + 1)),
                    ),
                ])
            })
            .collect();
        let identities: Vec<String> = party_env
            .iter()
            .map(|e| mpc_output(&["party", "identity"], e))
            .collect();
        assert_eq!(
            mpc_output(&["party", "identity"], &party_env[0]),
            identities[0],
            "an identity is created once and then read back"
        );

        // Queues exist before anything publishes: an event sent to an exchange with no queue
        // bound yet would be lost, and the services only declare theirs once they run.
        let party_queues: Vec<String> = (1..=3).map(|i| queue(&format!("party_{i}"))).collect();
        let router_queue = queue("router");
        let account_queue = queue("account");
        let bus = RabbitBus::connect(RabbitConfig {
            exchange: exchange.clone(),
            ..RabbitConfig::new(amqp_url)
        })
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ at AMQP_URL is unreachable: {e}"));
        for q in party_queues.iter().chain([&router_queue]) {
            drop(bus.subscribe(q, &["session.*"]).await.unwrap());
            sys.cleanup.queues.push(q.clone());
        }
        drop(
            bus.subscribe(&account_queue, &ACCOUNT_PATTERNS)
                .await
                .unwrap(),
        );
        sys.cleanup.queues.push(account_queue.clone());
        bus.close().await;

        let base = env(&[
            ("DATABASE_URL", database_url),
            ("AMQP_URL", amqp_url),
            ("MPC_BUS_EXCHANGE", &exchange),
            (
                "MPC_LOG",
                "info,session_coordinator=debug,message_router=debug,server_party=debug,\
                 server_party_api=debug,account_service=debug,mpc_client=debug",
            ),
        ]);
        let mut base = base;
        base.extend(env(extra));
        let with = |pairs: &[(&str, &str)]| {
            let mut e = base.clone();
            e.extend(env(pairs));
            e
        };
        let s = &sys.secrets;

        let coordinator = with(&[
            ("MPC_DATABASE_SCHEMA", &schema("coordinator")),
            ("MPC_JOIN_TOKEN_SEED", &s.join_token_seed),
            ("MPC_SERVICE_TOKEN", &s.service_token),
            // The one service logging JSON: its lines are checked at the end.
            ("MPC_LOG_FORMAT", "json"),
        ]);
        let mut coordinator = coordinator;
        coordinator.extend(tls_env("coordinator"));
        let router = with(&[
            ("MPC_DATABASE_SCHEMA", &schema("router")),
            ("MPC_JOIN_TOKEN_PUBLIC_KEY", &join_token_public_key),
            ("MPC_ROUTER_BUS_QUEUE", &router_queue),
            // The safety-net poll far beyond any session here: envelopes crossing from one
            // router to the other have to come through LISTEN/NOTIFY.
            ("MPC_ROUTER_POLL_INTERVAL_MS", "120000"),
        ]);
        let mut router = router;
        router.extend(tls_env("router"));
        sys.start_new(
            "coordinator",
            "coordinator",
            coordinator,
            &["MPC_COORDINATOR_HTTP_ADDR", "MPC_COORDINATOR_GRPC_ADDR"],
        )
        .await;
        let listen = ["MPC_ROUTER_HTTP_ADDR", "MPC_ROUTER_GRPC_ADDR"];
        sys.start_new("router_a", "router", router.clone(), &listen)
            .await;
        sys.start_new("router_b", "router", router, &listen).await;

        let coordinator_grpc = sys.grpc_url("coordinator", "MPC_COORDINATOR_GRPC_ADDR");
        let router_a = sys.grpc_url("router_a", "MPC_ROUTER_GRPC_ADDR");
        let router_b = sys.grpc_url("router_b", "MPC_ROUTER_GRPC_ADDR");
        let s = &sys.secrets;
        let pins = |except: Option<usize>| {
            PARTIES
                .iter()
                .zip(&identities)
                .enumerate()
                .filter(|(i, _)| Some(*i) != except)
                .map(|(_, (p, k))| format!("{p}={k}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut parties = Vec::new();
        for (i, mut e) in party_env.into_iter().enumerate() {
            e.extend(base.clone());
            e.extend(env(&[
                ("MPC_JOIN_TOKEN_PUBLIC_KEY", &join_token_public_key),
                ("MPC_COORDINATOR_GRPC", &coordinator_grpc),
                (
                    "MPC_ROUTER_GRPC",
                    if i == 2 { &router_b } else { &router_a },
                ),
                ("MPC_PARTY_BUS_QUEUE", &party_queues[i]),
                ("MPC_PARTY_PINNED", &pins(Some(i))),
                ("MPC_PARTY_DELEGATES", &party_api_identity),
                ("MPC_SERVICE_TOKEN", &s.service_token),
            ]));
            e.extend(tls_env(PARTIES[i]));
            parties.push(e);
        }
        let account = with(&[
            ("MPC_DATABASE_SCHEMA", &schema("account")),
            ("MPC_ACCESS_TOKEN_SEED", &s.access_token_seed),
            ("MPC_COORDINATOR_GRPC", &coordinator_grpc),
            ("MPC_SERVICE_TOKEN", &s.service_token),
            ("MPC_API_KEY", &s.api_key),
            ("MPC_ACCOUNT_BUS_QUEUE", &account_queue),
        ]);
        let mut account = account;
        account.extend(tls_env("account"));
        for (name, e) in ["party_1", "party_2", "party_3"].into_iter().zip(parties) {
            sys.start_new(name, "party", e, &["MPC_PARTY_HTTP_ADDR"])
                .await;
        }
        // The Account Service first: the Server Party API asks it about the API keys it made.
        sys.start_new("account", "account", account, &["MPC_ACCOUNT_HTTP_ADDR"])
            .await;
        let account_url = format!(
            "https://{}",
            sys.services["account"].env["MPC_ACCOUNT_HTTP_ADDR"]
        );
        let s = &sys.secrets;
        let party_api = with(&[
            ("MPC_JOIN_TOKEN_PUBLIC_KEY", &join_token_public_key),
            ("MPC_COORDINATOR_GRPC", &coordinator_grpc),
            ("MPC_ROUTER_GRPC", &router_a),
            ("MPC_PARTY_API_IDENTITY_SEED", &s.party_api_identity_seed),
            ("MPC_PARTY_API_SHARE_KEY", &s.party_api_share_key),
            ("MPC_API_KEY", &s.api_key),
            ("MPC_ACCESS_TOKEN_PUBLIC_KEY", &access_token_public_key),
            ("MPC_PARTY_API_PINNED", &pins(None)),
            ("MPC_SERVICE_TOKEN", &s.service_token),
            ("MPC_ACCOUNT_SERVICE_URL", &account_url),
        ]);
        let mut party_api = party_api;
        party_api.extend(tls_env("party-api"));
        sys.start_new(
            "party_api",
            "party-api",
            party_api,
            &["MPC_PARTY_API_HTTP_ADDR"],
        )
        .await;
        sys
    }

    /// First start of a service on fresh ports; a start that failed to bind (another process
    /// took a port between our pick and its bind) is retried on other ports.
    async fn start_new(
        &mut self,
        name: &'static str,
        kind: &'static str,
        env: BTreeMap<String, String>,
        listen_vars: &[&'static str],
    ) {
        let mut service = Service {
            kind,
            env,
            listen_vars: listen_vars.to_vec(),
            http_var: listen_vars[0],
            incarnation: 0,
            proc: None,
        };
        for attempt in 0.. {
            let ports = free_ports(service.listen_vars.len());
            for (var, port) in service.listen_vars.iter().zip(ports) {
                service
                    .env
                    .insert((*var).to_owned(), format!("127.0.0.1:{port}"));
            }
            match self.spawn(name, &mut service).await {
                Ok(()) => break,
                Err(NotReady::Exited(_, log)) if log.contains("binding") && attempt < 3 => {}
                Err(e) => panic!("{}", describe(name, e)),
            }
        }
        self.services.insert(name, service);
    }

    async fn spawn(&self, name: &str, service: &mut Service) -> Result<(), NotReady> {
        service.incarnation += 1;
        let mut proc = Proc::spawn(
            name,
            service.incarnation,
            &["serve", "--service", service.kind],
            &service.env,
            self.logs.path(),
        );
        let base = format!("https://{}", service.env[service.http_var]);
        let ready = wait_ready(&self.client, &mut proc, &base, READY_WITHIN).await;
        service.proc = Some(proc);
        ready
    }

    /// SIGKILL: the service gets no chance to finish anything.
    pub fn kill(&mut self, name: &str) {
        let service = self.services.get_mut(name).unwrap();
        let status = service.proc.as_mut().unwrap().kill();
        assert!(
            !status.success(),
            "{name} was killed, not stopped: {status}"
        );
    }

    /// Starts a stopped service again with the same configuration, ports and data.
    pub async fn restart(&mut self, name: &'static str) {
        let mut service = self.services.remove(name).unwrap();
        let mut attempts = 0;
        loop {
            match self.spawn(name, &mut service).await {
                Ok(()) => break,
                // Its port was in use a moment after the kill; it is ours, so it frees up.
                Err(NotReady::Exited(_, log)) if log.contains("binding") && attempts < 10 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("{}", describe(name, e)),
            }
        }
        self.services.insert(name, service);
    }

    /// SIGTERM to every service, in the reverse order of start-up; each must exit cleanly.
    pub async fn stop_all(&mut self) {
        for name in [
            "account",
            "party_api",
            "party_3",
            "party_2",
            "party_1",
            "router_b",
            "router_a",
            "coordinator",
        ] {
            let proc = self.services.get_mut(name).unwrap().proc.as_mut().unwrap();
            let status = proc.terminate().await;
            assert!(
                status.success(),
                "{name} exited with {status} on SIGTERM:\n{}",
                proc.stderr_tail(20)
            );
        }
    }

    /// `https://host:port` of a service's HTTP listener.
    pub fn url(&self, name: &str) -> String {
        let s = &self.services[name];
        format!("https://{}", s.env[s.http_var])
    }

    fn grpc_url(&self, name: &str, var: &str) -> String {
        format!("https://{}", self.services[name].env[var])
    }

    /// Every process's captured output so far (every incarnation), by file name.
    pub fn outputs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.logs.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                continue; // the certificates (`tls/`)
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read_to_string(&path).unwrap()));
        }
        out.sort();
        out
    }

    /// Waits until `predicate` holds for the service's `/metrics` text, which it returns.
    pub async fn metrics_until(
        &self,
        name: &str,
        what: &str,
        predicate: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self
                .client
                .get(format!("{}/metrics", self.url(name)))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if predicate(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{name}'s /metrics never showed {what}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            for (name, service) in &self.services {
                if let Some(proc) = &service.proc {
                    eprintln!("--- {name} (stderr tail) ---\n{}", tail(&proc.stderr, 25));
                }
            }
        }
        // Keep the logs of a failed run (or on request) for a closer look.
        if failed || std::env::var_os("MPC_TOPOLOGY_KEEP_LOGS").is_some() {
            self.logs.disable_cleanup(true);
            eprintln!("logs kept in {}", self.logs.path().display());
        }
    }
}

fn describe(name: &str, e: NotReady) -> String {
    match e {
        NotReady::Exited(status, log) => format!("{name} exited at start ({status}):\n{log}"),
        NotReady::Timeout(log) => format!("{name} did not become ready:\n{log}"),
    }
}
