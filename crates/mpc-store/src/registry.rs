//! The party registry, in the coordinator's database: which server parties (and Server Party
//! APIs) exist, with their identity keys, versions and when each was last heard from. Replicas
//! of the coordinator share it through the database.
//!
//! One small table with the same SQL on both backends (times are BIGINT milliseconds, `$n`
//! parameters work on both); the migrations are recorded in `_mpc_migrations_registry`, apart
//! from the coordinator's own, so either can evolve without renumbering the other.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mpc_proto::PartyId;
use sqlx::migrate::Migrator;

use crate::db::Db;
use crate::error::StoreError;

pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/registry/postgres");
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/registry/sqlite");

/// Applies the registry's migrations and opens it on `db` (the coordinator's database).
pub async fn open(db: &Db) -> Result<Arc<dyn RegistryStore>, StoreError> {
    db.migrate("registry", &POSTGRES_MIGRATIONS, &SQLITE_MIGRATIONS)
        .await?;
    Ok(Arc::new(SqlRegistryStore { db: db.clone() }))
}

/// What a registered party is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartyKind {
    /// Holds shares and joins sessions by itself.
    Server,
    /// The Server Party API: joins for device participants.
    PartyApi,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Server => "server",
            PartyKind::PartyApi => "party_api",
        }
    }
}

impl fmt::Display for PartyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PartyKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "server" => Ok(PartyKind::Server),
            "party_api" => Ok(PartyKind::PartyApi),
            other => Err(StoreError::Corrupt(format!("unknown party kind {other:?}"))),
        }
    }
}

/// One announcement (a start or a heartbeat).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub party_id: PartyId,
    pub kind: PartyKind,
    pub identity_public_key: [u8; 32],
    pub version: String,
    pub active_sessions: u32,
    pub at: DateTime<Utc>,
    /// The announcing process's instance id (fresh at every start).
    pub instance_id: String,
}

/// A registry row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredParty {
    pub party_id: PartyId,
    pub kind: PartyKind,
    pub identity_public_key: Vec<u8>,
    pub version: String,
    pub active_sessions: u32,
    pub registered_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The instance that announced last.
    pub instance_id: String,
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Inserts the party, or updates its row (kind, key, version, sessions, last seen; the
    /// first registration time stays). A `last_seen` never moves backwards.
    async fn announce(&self, a: &Announcement) -> Result<(), StoreError>;

    /// Every registered party, by id.
    async fn list(&self) -> Result<Vec<RegisteredParty>, StoreError>;
}

struct SqlRegistryStore {
    db: Db,
}

const ANNOUNCE: &str = "INSERT INTO mpc_party_registry \
     (party_id, kind, identity_public_key, version, active_sessions, registered_at_ms, last_seen_ms, \
      instance_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
     ON CONFLICT (party_id) DO UPDATE SET kind = excluded.kind, instance_id = excluded.instance_id, \
     identity_public_key = excluded.identity_public_key, version = excluded.version, \
     active_sessions = excluded.active_sessions, \
     last_seen_ms = CASE WHEN excluded.last_seen_ms > mpc_party_registry.last_seen_ms \
         THEN excluded.last_seen_ms ELSE mpc_party_registry.last_seen_ms END";

const LIST: &str = "SELECT party_id, kind, identity_public_key, version, active_sessions, \
     registered_at_ms, last_seen_ms, instance_id FROM mpc_party_registry ORDER BY party_id";

fn from_ms(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

/// A row as both backends read it.
type RowTuple = (String, String, Vec<u8>, String, i64, i64, i64, String);

fn party_from_row(row: RowTuple) -> Result<RegisteredParty, StoreError> {
    let (party, kind, identity_public_key, version, sessions, registered, seen, instance_id) = row;
    Ok(RegisteredParty {
        party_id: PartyId::parse(&party)
            .map_err(|_| StoreError::Corrupt(format!("invalid party id {party:?}")))?,
        kind: kind.parse()?,
        identity_public_key,
        version,
        active_sessions: u32::try_from(sessions).unwrap_or(u32::MAX),
        registered_at: from_ms(registered)?,
        last_seen: from_ms(seen)?,
        instance_id,
    })
}

#[async_trait]
impl RegistryStore for SqlRegistryStore {
    async fn announce(&self, a: &Announcement) -> Result<(), StoreError> {
        let key = a.identity_public_key.to_vec();
        let sessions = i64::from(a.active_sessions);
        let at = a.at.timestamp_millis();
        match &self.db {
            Db::Postgres(pool) => {
                sqlx::query(ANNOUNCE)
                    .bind(a.party_id.as_str())
                    .bind(a.kind.as_str())
                    .bind(key)
                    .bind(&a.version)
                    .bind(sessions)
                    .bind(at)
                    .bind(&a.instance_id)
                    .execute(pool)
                    .await?;
            }
            Db::Sqlite(pool) => {
                sqlx::query(ANNOUNCE)
                    .bind(a.party_id.as_str())
                    .bind(a.kind.as_str())
                    .bind(key)
                    .bind(&a.version)
                    .bind(sessions)
                    .bind(at)
                    .bind(&a.instance_id)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn list(&self) -> Result<Vec<RegisteredParty>, StoreError> {
        let rows: Vec<RowTuple> = match &self.db {
            Db::Postgres(pool) => sqlx::query_as(LIST).fetch_all(pool).await?,
            Db::Sqlite(pool) => sqlx::query_as(LIST).fetch_all(pool).await?,
        };
        rows.into_iter().map(party_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::testing::TestDb;

    fn announcement(id: &str, at: DateTime<Utc>) -> Announcement {
        Announcement {
            party_id: PartyId::parse(id).unwrap_or_else(|e| panic!("{e}")),
            kind: PartyKind::Server,
            identity_public_key: [7; 32],
            version: "0.1.0".into(),
            active_sessions: 3,
            at,
            instance_id: "i-1".into(),
        }
    }

    async fn announce_and_list(t: TestDb) {
        let store = open(&t.db).await.unwrap_or_else(|e| panic!("{e}"));
        let t0 = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_else(Utc::now);
        store
            .announce(&announcement("server_party_2", t0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .announce(&announcement("server_party_1", t0))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A heartbeat: new key, version and load; the first registration time stays.
        let mut beat = announcement("server_party_1", t0 + TimeDelta::seconds(5));
        beat.identity_public_key = [8; 32];
        beat.version = "0.2.0".into();
        beat.active_sessions = 0;
        beat.kind = PartyKind::PartyApi;
        store
            .announce(&beat)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // A late, older announcement does not move last_seen backwards.
        store
            .announce(&announcement("server_party_2", t0 - TimeDelta::seconds(60)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let all = store.list().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].party_id.as_str(), "server_party_1");
        assert_eq!(all[0].kind, PartyKind::PartyApi);
        assert_eq!(all[0].identity_public_key, vec![8; 32]);
        assert_eq!(all[0].version, "0.2.0");
        assert_eq!(all[0].active_sessions, 0);
        assert_eq!(all[0].registered_at, t0);
        assert_eq!(all[0].last_seen, t0 + TimeDelta::seconds(5));
        assert_eq!(all[1].last_seen, t0);
        // Opening again (a restart, another replica) keeps the rows.
        let again = open(&t.db).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            again.list().await.unwrap_or_else(|e| panic!("{e}")).len(),
            2
        );
    }

    crate::backend_tests!(registry_announce_and_list, announce_and_list);
}
