//! Connecting to PostgreSQL or SQLite, and running one service's embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Executor, PgPool, SqlitePool};

use crate::error::StoreError;

/// Which database engine a pool talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A connection pool to either backend.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// How to reach a database.
#[derive(Clone, Debug)]
pub struct DbConfig {
    /// `postgres://…`, `postgresql://…`, `sqlite://path/to/file.db` or `sqlite::memory:`.
    pub url: String,
    /// PostgreSQL only: the schema to use (created if missing). Lets several services, or several
    /// server parties, share one database without seeing each other's tables.
    pub schema: Option<String>,
    pub max_connections: u32,
}

impl DbConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            max_connections: 10,
        }
    }

    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

impl Db {
    /// Connects and checks the connection. SQLite files are created if missing and run in WAL
    /// mode with a busy timeout, so concurrent writers wait instead of failing.
    pub async fn connect(config: &DbConfig) -> Result<Db, StoreError> {
        let url = config.url.as_str();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(config).await
        } else if url.starts_with("sqlite:") {
            Self::connect_sqlite(config).await
        } else {
            Err(StoreError::Config(format!(
                "unsupported database url scheme in {:?}: use postgres:// or sqlite:",
                redact_url(url)
            )))
        }
    }

    async fn connect_postgres(config: &DbConfig) -> Result<Db, StoreError> {
        let mut options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL url: {e}")))?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
        if let Some(schema) = &config.schema {
            validate_schema_name(schema)?;
            // Create the schema over a single connection first, then pin the pool to it.
            let mut conn = options.connect().await.map_err(StoreError::from_connect)?;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .await?;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::from_connect)?;
        Ok(Db::Postgres(pool))
    }

    async fn connect_sqlite(config: &DbConfig) -> Result<Db, StoreError> {
        let memory = config.url.contains(":memory:") || config.url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(&config.url)
            .map_err(|e| StoreError::Config(format!("invalid SQLite url: {e}")))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal)
            // Pages are read through a memory map instead of a read() system call each: every
            // pooled connection has its own page cache, which a commit on another connection
            // invalidates, so reads of hot pages were mostly system calls.
            .pragma("mmap_size", "268435456");
        // `sqlite::memory:` gives every pooled connection its own empty database: use one.
        let max = if memory { 1 } else { config.max_connections };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(StoreError::from_connect)?;
        Ok(Db::Sqlite(pool))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(_) => Backend::Postgres,
            Db::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs `SELECT 1`: what `/readyz` asks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Db::Postgres(p) => p.execute("SELECT 1").await.map(|_| ()),
            Db::Sqlite(p) => p.execute("SELECT 1").await.map(|_| ()),
        }
        .map_err(StoreError::from)
    }

    /// Applies one service's migrations. Each service records them in its own table
    /// (`_mpc_migrations_<service>`), so services may share a database or schema safely.
    pub async fn migrate(
        &self,
        service: &'static str,
        postgres: &Migrator,
        sqlite: &Migrator,
    ) -> Result<(), StoreError> {
        let table = format!("_mpc_migrations_{service}");
        let mut migrator = match self {
            Db::Postgres(_) => clone_migrator(postgres),
            Db::Sqlite(_) => clone_migrator(sqlite),
        };
        migrator.dangerous_set_table_name(table);
        match self {
            // PostgreSQL: sqlx takes an advisory lock, so concurrent starts queue up.
            Db::Postgres(p) => migrator.run(p).await,
            // SQLite has no such lock: two processes starting on one file can both see a
            // migration as pending, and the loser fails ("table already exists") once the winner
            // commits. Running again then finds it applied, so retry a few times before failing.
            Db::Sqlite(p) => {
                let mut attempt = 1;
                loop {
                    match migrator.run(p).await {
                        Err(e) if attempt < SQLITE_MIGRATION_ATTEMPTS => {
                            tracing::debug!(service, attempt, error = %e, "SQLite migration failed; retrying");
                            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                            attempt += 1;
                        }
                        result => break result,
                    }
                }
            }
        }
        .map_err(|e| StoreError::Migration(format!("{service}: {e}")))
    }

    pub async fn close(&self) {
        match self {
            Db::Postgres(p) => p.close().await,
            Db::Sqlite(p) => p.close().await,
        }
    }
}

/// How often a SQLite migration is attempted before its error is reported (see `Db::migrate`).
const SQLITE_MIGRATION_ATTEMPTS: u64 = 6;

fn clone_migrator(m: &Migrator) -> Migrator {
    let mut out = Migrator::with_migrations(m.iter().cloned().collect());
    out.set_ignore_missing(m.ignore_missing);
    out.set_locking(m.locking);
    out
}

fn validate_schema_name(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "invalid schema name {schema:?}: use 1 to 63 characters from a-z 0-9 _, not starting with a digit"
        )))
    }
}

/// The url with any password replaced, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/d"),
            "postgres://u:***@h:5432/d"
        );
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn schema_names() {
        assert!(validate_schema_name("party_1").is_ok());
        for bad in ["", "1a", "A", "a-b", "a;drop", &"a".repeat(64)] {
            assert!(validate_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn unsupported_scheme_is_a_clear_error() {
        let err = Db::connect(&DbConfig::new("mysql://x"))
            .await
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("unsupported database url scheme")));
    }
}

#[cfg(all(test, feature = "testing"))]
mod concurrent_migration_tests {
    use super::*;

    static PG: Migrator = sqlx::migrate!("migrations/coordinator/postgres");
    static SQLITE: Migrator = sqlx::migrate!("migrations/coordinator/sqlite");

    /// Processes (here: separate pools) starting at once on one new SQLite file all end up with a
    /// migrated database. Without the retry in `Db::migrate` this fails within a few rounds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_pools_migrate_one_sqlite_file() {
        for _ in 0..30 {
            let dir = tempfile::tempdir().unwrap();
            let config =
                DbConfig::new(format!("sqlite://{}", dir.path().join("race.db").display()));
            let mut pools = Vec::new();
            for _ in 0..4 {
                pools.push(Db::connect(&config).await.unwrap());
            }
            let runs = pools.iter().map(|p| p.migrate("race", &PG, &SQLITE));
            for r in futures::future::join_all(runs).await {
                r.unwrap();
            }
        }
    }
}
