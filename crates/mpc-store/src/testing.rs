//! Fresh databases for tests: a new SQLite file, or a new PostgreSQL schema, per test.
//!
//! PostgreSQL tests use `DATABASE_URL`. When it is unset they are skipped with a notice, except
//! under CI (`CI` set), where a missing or unreachable server fails the test instead.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Executor, Row};

use crate::db::{Db, DbConfig};

/// A database that exists only for one test.
pub struct TestDb {
    pub db: Db,
    /// Connect a second pool (a second service replica) to the same database with this.
    pub config: DbConfig,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new SQLite file in a temporary directory (a file, not `:memory:`, so that several pools
    /// can share it like replicas would).
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let path = dir.path().join("test.db");
        let config = DbConfig::new(format!("sqlite://{}", path.display()));
        let db = Db::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("sqlite: {e}"));
        TestDb {
            db,
            config,
            _dir: Some(dir),
        }
    }

    /// A new schema in the `DATABASE_URL` database, or `None` when PostgreSQL tests are off.
    pub async fn postgres() -> Option<TestDb> {
        let url = postgres_url()?;
        let schema = fresh_schema_name();
        let admin = Db::connect(&DbConfig::new(url.clone()))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at DATABASE_URL is unreachable: {e}"));
        drop_stale_schemas(&admin).await;
        admin.close().await;
        let config = DbConfig::new(url).with_schema(schema);
        let db = Db::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
        Some(TestDb {
            db,
            config,
            _dir: None,
        })
    }
}

/// `DATABASE_URL`, or `None` (tests skip) when unset outside CI. Panics when unset under CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("DATABASE_URL must be set under CI: PostgreSQL tests may not be skipped")
        }
        _ => {
            eprintln!("note: DATABASE_URL is not set; skipping the PostgreSQL run of this test");
            None
        }
    }
}

fn fresh_schema_name() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("t_{now}_{}", &rand[..12])
}

/// Test schemas are named `t_<unix seconds>_<random>`; drop those older than two hours so the
/// shared CI database does not fill up with leftovers.
async fn drop_stale_schemas(admin: &Db) {
    let Db::Postgres(pool) = admin else { return };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let Ok(rows) = pool
        .fetch_all("SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%'")
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String, _>(0) else {
            continue;
        };
        let Some(ts) = name.split('_').nth(1).and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        if ts + 7200 < now {
            let _ = pool
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                )))
                .await;
        }
    }
}

/// Runs an async test suite `fn(TestDb) -> impl Future` once on SQLite and once on PostgreSQL.
///
/// ```ignore
/// mpc_store::backend_tests!(join_is_idempotent, suite::join_is_idempotent);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($name:ident, $suite:path) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $suite($crate::testing::TestDb::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::testing::TestDb::postgres().await {
                    $suite(db).await;
                }
            }
        }
    };
}

/// Reads of a server party's database that its tests need and its service does not.
pub mod party {
    use mpc_proto::SessionId;

    use crate::db::Db;
    use crate::party::{HandledSession, PgPartyStore, SqlitePartyStore};

    /// The party's record of a session, read without changing it (unlike `begin_session`).
    pub async fn handled_session(db: &Db, session_id: SessionId) -> Option<HandledSession> {
        match db {
            Db::Postgres(pool) => {
                PgPartyStore::new(pool.clone())
                    .handled_session(session_id)
                    .await
            }
            Db::Sqlite(pool) => {
                SqlitePartyStore::new(pool.clone())
                    .handled_session(session_id)
                    .await
            }
        }
        .unwrap_or_else(|e| panic!("party session {session_id}: {e}"))
    }

    /// Every KEK id something is sealed under, with how many items (the identity included).
    pub async fn kek_usage(db: &Db) -> Vec<(String, u64)> {
        match db {
            Db::Postgres(pool) => PgPartyStore::new(pool.clone()).kek_usage().await,
            Db::Sqlite(pool) => SqlitePartyStore::new(pool.clone()).kek_usage().await,
        }
        .unwrap_or_else(|e| panic!("kek usage: {e}"))
    }
}
