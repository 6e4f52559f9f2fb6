//! `mpc up`: the whole system in one process on the embedded default — no external server.
//!
//! Account Service, Session Coordinator, Message Router, Server Party API and the server parties,
//! each with its own SQLite file under the data directory, talking over loopback gRPC/HTTP and an
//! in-process event bus. Secrets are generated on first start and kept in
//! `<data-dir>/secrets.json` (mode 0600); a second `mpc up` on the same directory keeps every
//! account and share.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use mpc_bus::EventBus;
use mpc_bus::memory::MemoryBus;
use mpc_client::TrustPolicy;
use mpc_proto::PartyId;
use mpc_service::Shutdown;
use mpc_store::{Db, DbConfig};
use secrecy::SecretString;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::commands::serve::shutdown_on_signal;
use crate::secrets::Secrets;

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Where the databases and secrets live.
    #[arg(long, default_value = "./mpc-data", env = "MPC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The address every service listens on (loopback by default: nothing is exposed).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Number of server parties (`server_party_1` …).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=15))]
    pub parties: u16,
    /// Bind every service to a free port instead of the standard ones (4000, 8081, …); the ports
    /// are printed and written to `<data-dir>/endpoints.json`.
    #[arg(long)]
    pub ephemeral_ports: bool,
    /// Default session lifetime in seconds (the guide's 10 minutes).
    #[arg(long, default_value_t = 600)]
    pub session_lifetime: u64,
    /// Use this PostgreSQL database instead of SQLite files: one schema per service and per party
    /// (`mpc_coordinator`, `mpc_party_server_party_1`, …).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Use this RabbitMQ broker instead of the in-process event bus.
    #[arg(long)]
    pub amqp_url: Option<String>,
    /// Serve everything over TLS with mutual TLS between the services: a local CA and a
    /// certificate per service are created (or reused) under `<data-dir>/tls/`; clients trust
    /// `<data-dir>/tls/ca.pem`.
    #[arg(long)]
    pub tls: bool,
}

/// Where the running services listen; written to `<data-dir>/endpoints.json`.
#[derive(Serialize, Debug, Clone)]
pub struct Endpoints {
    pub account: String,
    pub coordinator_http: String,
    pub coordinator_grpc: String,
    pub router_http: String,
    pub router_grpc: String,
    pub party_api: String,
    pub parties: BTreeMap<String, String>,
}

struct Listeners {
    account: TcpListener,
    coordinator_http: TcpListener,
    coordinator_grpc: TcpListener,
    router_http: TcpListener,
    router_grpc: TcpListener,
    party_api: TcpListener,
    parties: Vec<TcpListener>,
}

async fn bind(
    host: std::net::IpAddr,
    port: u16,
    ephemeral: bool,
    what: &str,
) -> Result<TcpListener> {
    let addr = SocketAddr::new(host, if ephemeral { 0 } else { port });
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what} (is another `mpc up` running? try --ephemeral-ports)")
    })
}

impl Listeners {
    async fn bind(args: &UpArgs) -> Result<Self> {
        let (h, e) = (args.host, args.ephemeral_ports);
        let mut parties = Vec::new();
        for i in 0..args.parties {
            parties.push(bind(h, 8091 + i, e, "server party").await?);
        }
        Ok(Self {
            account: bind(h, 4000, e, "Account Service").await?,
            coordinator_http: bind(h, 8081, e, "coordinator (HTTP)").await?,
            coordinator_grpc: bind(h, 50051, e, "coordinator (gRPC)").await?,
            router_http: bind(h, 8082, e, "router (HTTP)").await?,
            router_grpc: bind(h, 50052, e, "router (gRPC)").await?,
            party_api: bind(h, 8083, e, "Server Party API").await?,
            parties,
        })
    }

    fn endpoints(&self, party_ids: &[PartyId], tls: bool) -> Result<Endpoints> {
        let scheme = if tls { "https" } else { "http" };
        let url =
            |l: &TcpListener| -> Result<String> { Ok(format!("{scheme}://{}", l.local_addr()?)) };
        Ok(Endpoints {
            account: url(&self.account)?,
            coordinator_http: url(&self.coordinator_http)?,
            coordinator_grpc: url(&self.coordinator_grpc)?,
            router_http: url(&self.router_http)?,
            router_grpc: url(&self.router_grpc)?,
            party_api: url(&self.party_api)?,
            parties: party_ids
                .iter()
                .zip(&self.parties)
                .map(|(p, l)| Ok((p.to_string(), url(l)?)))
                .collect::<Result<_>>()?,
        })
    }
}

/// The database of one service or party: `<dir>/<name>.db`, or the schema `mpc_<name>` of the
/// PostgreSQL database when `--database-url` is given.
async fn database(args: &UpArgs, name: &str) -> Result<Db> {
    match &args.database_url {
        Some(url) => {
            let schema = format!("mpc_{}", name.replace('-', "_"));
            Db::connect(&DbConfig::new(url.clone()).with_schema(schema.clone()))
                .await
                .with_context(|| format!("opening schema {schema}"))
        }
        None => {
            let path = args.data_dir.join(format!("{name}.db"));
            Db::connect(&DbConfig::new(format!("sqlite://{}", path.display())))
                .await
                .with_context(|| format!("opening {}", path.display()))
        }
    }
}

pub fn run(args: UpArgs) -> Result<()> {
    mpc_service::init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(up(args))
}

async fn up(args: UpArgs) -> Result<()> {
    let started = Instant::now();
    crate::secrets::create_private_dir(&args.data_dir)?;
    let env_api_key = std::env::var("MPC_API_KEY").ok().filter(|k| !k.is_empty());
    let (secrets, created) =
        Secrets::load_or_create(&args.data_dir, args.parties, env_api_key.is_none())?;
    let api_key = match (&env_api_key, secrets.api_key()) {
        (Some(k), _) => k.clone(),
        (None, Some(k)) => k.to_owned(),
        (None, None) => bail!("no API key: set MPC_API_KEY or remove secrets.json to generate one"),
    };
    let party_ids: Vec<PartyId> = (1..=args.parties)
        .map(|i| PartyId::parse(&format!("server_party_{i}")).map_err(|e| anyhow!(e.message)))
        .collect::<Result<_>>()?;

    let listeners = Listeners::bind(&args).await?;
    let endpoints = listeners.endpoints(&party_ids, args.tls)?;
    let pki = if args.tls {
        Some(local_pki(&args, &party_ids)?)
    } else {
        None
    };
    // Each service's TLS: its own certificate, the local CA both ways, mutual TLS.
    let tls_of = |name: &str| -> Result<mpc_service::TlsConfig> {
        match &pki {
            Some(pki) => pki
                .config(name, true)
                .with_context(|| format!("TLS certificate of {name}")),
            None => Ok(mpc_service::TlsConfig::default()),
        }
    };
    std::fs::write(
        args.data_dir.join("endpoints.json"),
        serde_json::to_vec_pretty(&endpoints)?,
    )?;

    let bus: Arc<dyn EventBus> = match &args.amqp_url {
        Some(url) => Arc::new(
            mpc_bus::rabbitmq::RabbitBus::connect(mpc_bus::rabbitmq::RabbitConfig::new(
                url.clone(),
            ))
            .await
            .context("connecting RabbitMQ")?,
        ),
        None => Arc::new(MemoryBus::new()),
    };
    let shutdown = shutdown_on_signal();
    let mut tasks: JoinSet<(String, Result<()>)> = JoinSet::new();
    let join_token_public = secrets.join_token_signer()?.public_key();
    let party_api_identity = secrets.party_api_identity_seed()?;

    // Each party's identity exists before any starts, so that all can pin each other.
    let mut party_dbs = Vec::new();
    let mut trust = TrustPolicy::new().delegate(party_api_identity.public_key());
    for (id, key) in party_ids.iter().zip(secrets.party_master_keys(&party_ids)?) {
        let db = database(&args, &format!("party-{id}")).await?;
        let identity = server_party::provision_identity(&db, id, &key)
            .await
            .with_context(|| {
                format!("opening the identity of {id} (was secrets.json replaced?)")
            })?;
        trust = trust.pin(id.clone(), identity);
        party_dbs.push((id.clone(), db, key));
    }

    // Coordinator.
    let mut coordinator = session_coordinator::CoordinatorConfig::new(
        "sqlite://coordinator.db",
        SecretString::from(secrets.join_token_seed.clone()),
    );
    coordinator.service_token = Some(SecretString::from(secrets.service_token.clone()));
    coordinator.tls = tls_of("coordinator")?;
    coordinator.default_session_lifetime = Duration::from_secs(args.session_lifetime);
    coordinator.max_session_lifetime = coordinator
        .max_session_lifetime
        .max(coordinator.default_session_lifetime);
    let resources = session_coordinator::CoordinatorResources {
        db: database(&args, "coordinator").await?,
        bus: bus.clone(),
    };
    let l = session_coordinator::CoordinatorListeners {
        http: listeners.coordinator_http,
        grpc: listeners.coordinator_grpc,
    };
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "coordinator".into(),
            session_coordinator::serve(coordinator, resources, l, s)
                .await
                .map_err(Into::into),
        )
    });

    // Router.
    let router =
        message_router::RouterConfig::new(message_router::JoinTokenPublicKey(join_token_public));
    let mut router = router;
    router.tls = tls_of("router")?;
    let resources = message_router::RouterResources {
        db: database(&args, "router").await?,
        bus: bus.clone(),
    };
    let l = message_router::RouterListeners {
        http: listeners.router_http,
        grpc: listeners.router_grpc,
    };
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "router".into(),
            message_router::serve(router, resources, l, s)
                .await
                .map_err(Into::into),
        )
    });

    // Server parties.
    for ((id, db, key), listener) in party_dbs.into_iter().zip(listeners.parties) {
        let mut config = server_party::PartyConfig::new(id.clone(), key, join_token_public);
        config.coordinator_endpoint = endpoints.coordinator_grpc.clone();
        config.router_endpoint = endpoints.router_grpc.clone();
        config.trust = trust.clone();
        config.tls = tls_of(id.as_str())?;
        config.service_token = Some(SecretString::from(secrets.service_token.clone()));
        let resources = server_party::PartyResources {
            db,
            bus: bus.clone(),
        };
        let l = server_party::PartyListeners { http: listener };
        let s = shutdown.clone();
        tasks.spawn(async move {
            (
                id.to_string(),
                server_party::serve(config, resources, l, s)
                    .await
                    .map_err(Into::into),
            )
        });
    }

    // Server Party API.
    let mut party_api = server_party_api::PartyApiConfig::new(
        party_api_identity,
        secrets.party_api_share_key()?,
        join_token_public,
    );
    party_api.coordinator_endpoint = endpoints.coordinator_grpc.clone();
    party_api.auth_throttle = auth_throttle()?;
    party_api.router_endpoint = endpoints.router_grpc.clone();
    party_api.api_keys = vec![SecretString::from(api_key.clone())];
    party_api.access_token_public_key = Some(secrets.access_token_signer()?.public_key());
    party_api.trust = trust.clone();
    party_api.tls = tls_of("party-api")?;
    party_api.service_token = Some(SecretString::from(secrets.service_token.clone()));
    // The keys made with `POST /api/v1/admin/api-keys` work here too.
    party_api.account_service_url = Some(endpoints.account.clone());
    let l = server_party_api::PartyApiListeners {
        http: listeners.party_api,
    };
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "party-api".into(),
            server_party_api::serve(party_api, l, s)
                .await
                .map_err(Into::into),
        )
    });

    // Account Service.
    let mut account = account_service::AccountConfig::new(
        "sqlite://account.db",
        endpoints.coordinator_grpc.clone(),
        SecretString::from(secrets.access_token_seed.clone()),
    );
    account.coordinator_service_token = Some(SecretString::from(secrets.service_token.clone()));
    account.bootstrap_api_key = Some(SecretString::from(api_key.clone()));
    account.tls = tls_of("account")?;
    account.session_lifetime_seconds = u32::try_from(args.session_lifetime).unwrap_or(u32::MAX);
    // The operator console (/admin) reads the coordinator's metrics; the parties' health comes
    // from the coordinator's registry.
    account.console = account_service::console::ConsoleConfig {
        metrics_urls: vec![format!("{}/metrics", endpoints.coordinator_http)],
    };
    account.party_api_url = Some(endpoints.party_api.clone());
    // The credential-failure throttle, as configured for the services themselves.
    account.auth_throttle = auth_throttle()?;
    let resources = account_service::AccountResources {
        db: database(&args, "account").await?,
        bus: bus.clone(),
    };
    let l = account_service::AccountListeners {
        http: listeners.account,
    };
    let s = shutdown.clone();
    tasks.spawn(async move {
        (
            "account".into(),
            account_service::serve(account, resources, l, s)
                .await
                .map_err(Into::into),
        )
    });

    let ready = wait_ready(&endpoints, &tls_of("account")?, &mut tasks, &shutdown).await;
    match ready {
        Ok(()) => print_banner(
            &args,
            &endpoints,
            &api_key,
            created && env_api_key.is_none(),
            env_api_key.is_some(),
            started.elapsed(),
        ),
        Err(e) => {
            shutdown.cancel();
            drain(&mut tasks).await;
            return Err(e);
        }
    }

    // Run until Ctrl-C/SIGTERM, or until a service stops on its own (then stop the rest).
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.unwrap_or_else(|e| ("task".into(), Err(anyhow!("{e}"))));
        if !shutdown.is_cancelled() {
            failure.get_or_insert_with(|| match &result {
                Ok(()) => anyhow!("{name} stopped unexpectedly"),
                Err(e) => anyhow!("{name} failed: {e:#}"),
            });
            shutdown.cancel();
        } else if let Err(e) = result {
            tracing::warn!(service = %name, error = %format!("{e:#}"), "error while stopping");
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            eprintln!("mpc up: stopped");
            Ok(())
        }
    }
}

/// The local CA and a certificate per service and party under `<data-dir>/tls/`, reused when
/// still valid. Certificates name `localhost`, 127.0.0.1 and `--host`.
fn local_pki(args: &UpArgs, party_ids: &[PartyId]) -> Result<mpc_service::tls_gen::LocalPki> {
    use mpc_service::tls_gen::{Subject, ensure_local_pki};
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    if !hosts.contains(&args.host.to_string()) && !args.host.is_unspecified() {
        hosts.push(args.host.to_string());
    }
    let mut subjects: Vec<Subject> = ["account", "coordinator", "router", "party-api"]
        .iter()
        .map(|name| Subject::service(name, &hosts))
        .collect();
    subjects.extend(party_ids.iter().map(|p| Subject::party(p.as_str(), &hosts)));
    ensure_local_pki(&args.data_dir.join("tls"), &subjects).context("creating the local CA")
}

async fn drain(tasks: &mut JoinSet<(String, Result<()>)>) {
    while tasks.join_next().await.is_some() {}
}

/// Polls every service's `/readyz` until all answer 200; fails early if a service stops.
async fn wait_ready(
    endpoints: &Endpoints,
    tls: &mpc_service::TlsConfig,
    tasks: &mut JoinSet<(String, Result<()>)>,
    shutdown: &Shutdown,
) -> Result<()> {
    let client = tls
        .reqwest_builder(reqwest::Client::builder())?
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut pending: Vec<String> = [
        &endpoints.account,
        &endpoints.coordinator_http,
        &endpoints.router_http,
        &endpoints.party_api,
    ]
    .into_iter()
    .chain(endpoints.parties.values())
    .map(|u| format!("{u}/readyz"))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() {
        if shutdown.is_cancelled() {
            bail!("interrupted while starting");
        }
        if let Some(Ok((name, result))) = tasks.try_join_next() {
            return Err(match result {
                Ok(()) => anyhow!("{name} stopped during start-up"),
                Err(e) => anyhow!("{name} failed to start: {e:#}"),
            });
        }
        let mut still = Vec::new();
        for url in pending {
            let ok = matches!(client.get(&url).send().await, Ok(r) if r.status().is_success());
            if !ok {
                still.push(url);
            }
        }
        pending = still;
        if Instant::now() > deadline {
            bail!("services not ready after 120 s: {pending:?}");
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn print_banner(
    args: &UpArgs,
    e: &Endpoints,
    api_key: &str,
    show_key: bool,
    from_env: bool,
    took: Duration,
) {
    let mut out = String::new();
    out.push_str(&format!(
        "\nMPC-System is up ({:.1} s). Data: {}\n\n",
        took.as_secs_f64(),
        args.data_dir.display()
    ));
    out.push_str(&format!(
        "  Account Service      {}   (the public API; X-API-Key on every call)\n",
        e.account
    ));
    out.push_str(&format!("  Server Party API     {}\n", e.party_api));
    out.push_str(&format!(
        "  Session Coordinator  {}   gRPC {}\n",
        e.coordinator_http, e.coordinator_grpc
    ));
    out.push_str(&format!(
        "  Message Router       {}   gRPC {}\n",
        e.router_http, e.router_grpc
    ));
    for (id, url) in &e.parties {
        out.push_str(&format!("  {id:<20} {url}\n"));
    }
    out.push('\n');
    if show_key {
        out.push_str(&format!(
            "  API key (shown once; kept in {}/secrets.json):\n    {api_key}\n\n",
            args.data_dir.display()
        ));
    } else if from_env {
        out.push_str("  API key: MPC_API_KEY from the environment\n\n");
    } else {
        out.push_str(&format!(
            "  API key: generated at first start, kept in {}/secrets.json\n\n",
            args.data_dir.display()
        ));
    }
    if args.tls {
        out.push_str(&format!(
            "  TLS: clients trust {}/tls/ca.pem (curl --cacert …); services use mutual TLS\n\n",
            args.data_dir.display()
        ));
    }
    out.push_str(&format!("  Try it:   mpc demo --url {}\n", e.account));
    out.push_str(&format!("  API docs: {}/docs/\n", e.account));
    out.push_str(&format!(
        "  Console:  {}/admin/   (sign in with the API key)\n",
        e.account
    ));
    out.push_str("  Stop:     Ctrl-C\n");
    eprintln!("{out}");
}

/// `MPC_AUTH_FAILURE_LIMIT` / `MPC_AUTH_FAILURE_WINDOW_SECS` from the environment.
fn auth_throttle() -> anyhow::Result<mpc_service::ThrottleConfig> {
    mpc_service::ThrottleConfig::default()
        .from_vars(|name| std::env::var(name).ok())
        .map_err(anyhow::Error::msg)
}
