//! `mpc serve --service …`: one service per process, for production. Configuration comes from
//! `MPC_…` environment variables over an optional env file (`--config`); the event bus is
//! RabbitMQ (`AMQP_URL`), the database PostgreSQL or SQLite (`DATABASE_URL` or the service's own
//! `MPC_<SERVICE>_DATABASE_URL`, with an optional `MPC_DATABASE_SCHEMA`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::{Args, ValueEnum};
use mpc_bus::EventBus;
use mpc_bus::rabbitmq::{RabbitBus, RabbitConfig};
use mpc_service::Shutdown;
use mpc_store::{Db, DbConfig};
use tokio::net::TcpListener;

use crate::vars::Vars;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Service {
    Account,
    Coordinator,
    Router,
    Party,
    PartyApi,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The service this process runs.
    #[arg(long, value_enum)]
    pub service: Service,
    /// An env file (`KEY=VALUE` lines) read under the environment; the environment wins.
    #[arg(long, env = "MPC_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let vars = Vars::load(args.config.as_deref())?;
    mpc_service::init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args.service, vars))
}

/// Connects the database named by the first of `names` that is set.
async fn database(vars: &Vars, names: &[&str]) -> Result<Db> {
    let url = names
        .iter()
        .find_map(|n| vars.get(n))
        .ok_or_else(|| anyhow!("set {} (postgres://… or sqlite://…)", names.join(" or ")))?;
    let mut config = DbConfig::new(url);
    if let Some(schema) = vars.get("MPC_DATABASE_SCHEMA") {
        config = config.with_schema(schema);
    }
    if let Some(max) = vars.get("MPC_DATABASE_MAX_CONNECTIONS") {
        config.max_connections = max
            .parse()
            .context("MPC_DATABASE_MAX_CONNECTIONS: expected a number")?;
    }
    Db::connect(&config)
        .await
        .context("connecting the database")
}

async fn bus(vars: &Vars) -> Result<Arc<dyn EventBus>> {
    let url = vars
        .get("AMQP_URL")
        .ok_or_else(|| anyhow!("set AMQP_URL (amqp://user:password@host:5672/%2f)"))?;
    let mut config = RabbitConfig::new(url);
    if let Some(exchange) = vars.get("MPC_BUS_EXCHANGE") {
        config.exchange = exchange;
    }
    Ok(Arc::new(
        RabbitBus::connect(config)
            .await
            .context("connecting RabbitMQ")?,
    ))
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener on {addr}"))
}

/// A shutdown token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_on_signal() -> Shutdown {
    let shutdown = Shutdown::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        mpc_service::shutdown_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    shutdown
}

async fn serve(service: Service, vars: Vars) -> Result<()> {
    let get = |name: &str| vars.get(name);
    let shutdown = shutdown_on_signal();
    // MPC_TLS_* (see mpc_service::tls): one certificate per process, for its listeners and
    // its clients; a bad setting stops the start here.
    let tls = mpc_service::TlsConfig::from_vars(get).context("TLS configuration")?;
    match service {
        Service::Coordinator => {
            let mut config = session_coordinator::CoordinatorConfig::from_vars(get)?;
            config.tls = tls.clone();
            let db = database(&vars, &["MPC_COORDINATOR_DATABASE_URL", "DATABASE_URL"]).await?;
            let listeners = session_coordinator::CoordinatorListeners {
                http: bind(config.http_addr, "HTTP").await?,
                grpc: bind(config.grpc_addr, "gRPC").await?,
            };
            let resources = session_coordinator::CoordinatorResources {
                db,
                bus: bus(&vars).await?,
            };
            session_coordinator::serve(config, resources, listeners, shutdown).await?;
        }
        Service::Router => {
            let mut config = message_router::RouterConfig::from_vars(get)?;
            config.tls = tls.clone();
            let db = database(&vars, &["MPC_ROUTER_DATABASE_URL", "DATABASE_URL"]).await?;
            let listeners = message_router::RouterListeners::bind(&config)
                .await
                .context("binding the router")?;
            let resources = message_router::RouterResources {
                db,
                bus: bus(&vars).await?,
            };
            message_router::serve(config, resources, listeners, shutdown).await?;
        }
        Service::Party => {
            let mut config = server_party::PartyConfig::from_vars(get)?;
            config.tls = tls.clone();
            let mut db_config = DbConfig::new(config.database_url.clone());
            if let Some(schema) = &config.database_schema {
                db_config = db_config.with_schema(schema.clone());
            }
            let db = Db::connect(&db_config)
                .await
                .context("connecting the party database")?;
            let listeners = server_party::PartyListeners::bind(&config)
                .await
                .context("binding the party")?;
            let resources = server_party::PartyResources {
                db,
                bus: bus(&vars).await?,
            };
            server_party::serve(config, resources, listeners, shutdown).await?;
        }
        Service::PartyApi => {
            let mut config = server_party_api::PartyApiConfig::from_vars(get)?;
            config.tls = tls.clone();
            let listeners = server_party_api::PartyApiListeners::bind(&config)
                .await
                .context("binding the Server Party API")?;
            server_party_api::serve(config, listeners, shutdown).await?;
        }
        Service::Account => {
            let mut config = account_service::AccountConfig::from_vars(get)?;
            config.tls = tls.clone();
            let db = database(&vars, &["MPC_ACCOUNT_DATABASE_URL", "DATABASE_URL"]).await?;
            let listeners = account_service::AccountListeners {
                http: bind(config.http_addr, "HTTP").await?,
            };
            let resources = account_service::AccountResources {
                db,
                bus: bus(&vars).await?,
            };
            account_service::serve(config, resources, listeners, shutdown).await?;
        }
    }
    Ok(())
}
