//! PostgreSQL implementation of [`CoordinatorStore`]. Changes are announced with `NOTIFY` on a
//! channel named after the schema, so replicas that share the schema wake each other's watchers.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mpc_proto::SessionId;
use sqlx::postgres::{PgListener, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::{
    CHANGE_CHANNEL_CAPACITY, Cas, CoordinatorStore, NewSession, OutboxEvent, OutboxRecord,
    ParticipantColumns, ParticipantUpdate, SESSION_WITH_PARTICIPANTS, SessionChanged,
    SessionColumns, SessionRecord, SessionUpdate, encode_helpers, encode_signature, report_columns,
};
use crate::error::StoreError;

/// PostgreSQL identifiers (and so `LISTEN` channels) are at most 63 bytes.
const MAX_CHANNEL_LEN: usize = 63;

pub struct PgCoordinatorStore {
    pool: PgPool,
    channel: String,
    changes: broadcast::Sender<SessionChanged>,
    _listener: AbortOnDrop,
}

impl std::fmt::Debug for PgCoordinatorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCoordinatorStore")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// Stops the notification listener when the store goes away.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl PgCoordinatorStore {
    /// Opens the store and starts listening for changes (already listening when this returns, so a
    /// watcher that subscribes afterwards misses nothing). Migrations must have run.
    pub async fn open(pool: PgPool) -> Result<Self, StoreError> {
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        let mut channel = format!("mpc_coordinator_{schema}");
        channel.truncate(MAX_CHANNEL_LEN);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(&channel).await?;
        let (changes, _) = broadcast::channel(CHANGE_CHANNEL_CAPACITY);
        let task = tokio::spawn(listen(
            listener,
            pool.clone(),
            channel.clone(),
            changes.clone(),
        ));
        Ok(Self {
            pool,
            channel,
            changes,
            _listener: AbortOnDrop(task.abort_handle()),
        })
    }

    async fn notify(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        id: SessionId,
    ) -> Result<(), StoreError> {
        // Delivered when the transaction commits, and only then.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Forwards notifications to the broadcast channel until the pool closes or the store is dropped.
async fn listen(
    mut listener: PgListener,
    pool: PgPool,
    channel: String,
    changes: broadcast::Sender<SessionChanged>,
) {
    loop {
        match listener.try_recv().await {
            Ok(Some(note)) => {
                if let Ok(id) = SessionId::parse(note.payload()) {
                    let _ = changes.send(SessionChanged::now(id));
                }
            }
            // The connection dropped and was re-established: notifications in between are lost;
            // watchers re-read periodically, so they catch up.
            Ok(None) => tracing::debug!(%channel, "change listener reconnected"),
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, %channel, "change listener failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                match PgListener::connect_with(&pool).await {
                    Ok(mut fresh) => match fresh.listen(&channel).await {
                        Ok(()) => listener = fresh,
                        Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "change listener cannot reconnect"),
                }
            }
        }
    }
}

fn session_columns(row: &PgRow) -> Result<SessionColumns, sqlx::Error> {
    Ok(SessionColumns {
        id: row.try_get("id")?,
        session_type: row.try_get("session_type")?,
        threshold_t: i64::from(row.try_get::<i32, _>("threshold_t")?),
        threshold_n: i64::from(row.try_get::<i32, _>("threshold_n")?),
        status: row.try_get("status")?,
        key_id: row.try_get("key_id")?,
        message_hash: row.try_get("message_hash")?,
        public_key: row.try_get("public_key")?,
        signature: row.try_get("signature")?,
        signature_der: row.try_get("signature_der")?,
        recovery_target: row.try_get("recovery_target")?,
        recovery_helpers: row.try_get("recovery_helpers")?,
        failure_reason: row.try_get("failure_reason")?,
        blamed_party: row.try_get("blamed_party")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        updated_at: row.try_get("updated_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

/// The participant of a joined row; `None` for the NULL row of a session without participants.
fn participant_columns(row: &PgRow) -> Result<Option<ParticipantColumns>, sqlx::Error> {
    let Some(party_id) = row.try_get("p_party_id")? else {
        return Ok(None);
    };
    Ok(Some(ParticipantColumns {
        party_id,
        party_index: i64::from(row.try_get::<i32, _>("p_party_index")?),
        device_type: row.try_get("p_device_type")?,
        status: row.try_get("p_status")?,
        joined_at: row.try_get("p_joined_at")?,
        identity_public_key: row.try_get("p_identity_public_key")?,
        session_key: row.try_get("p_session_key")?,
        reported_public_key: row.try_get("p_reported_public_key")?,
        reported_signature: row.try_get("p_reported_signature")?,
        updated_at: row.try_get("p_updated_at")?,
    }))
}

async fn insert_outbox(
    tx: &mut Transaction<'static, Postgres>,
    event: &OutboxEvent,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO coordinator_outbox \
         (event_id, session_id, routing_key, payload, created_at, claimed_until) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(event.event_id)
    .bind(event.session_id.0)
    .bind(&event.routing_key)
    .bind(&event.payload)
    .bind(now)
    .bind(event.claimed_until)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

#[async_trait]
impl CoordinatorStore for PgCoordinatorStore {
    async fn create_session(
        &self,
        session: &NewSession,
        event: &OutboxEvent,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (target, helpers) = match &session.recovery {
            Some(r) => (
                Some(r.target.as_str().to_owned()),
                Some(encode_helpers(&r.helpers)?),
            ),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO mpc_sessions (id, session_type, threshold_n, threshold_t, status, \
             message_hash, public_key, created_at, expires_at, key_id, recovery_target, \
             recovery_helpers, updated_at) \
             VALUES ($1, $2, $3, $4, 'created', $5, $6, $7, $8, $9, $10, $11, $7)",
        )
        .bind(session.id.0)
        .bind(session.session_type.as_str())
        .bind(i32::from(session.threshold.n))
        .bind(i32::from(session.threshold.t))
        .bind(&session.message_hash)
        .bind(&session.public_key)
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(&session.key_id)
        .bind(target)
        .bind(helpers)
        .execute(&mut *tx)
        .await?;
        for p in &session.participants {
            sqlx::query(
                "INSERT INTO session_participants \
                 (id, session_id, party_id, party_index, status, device_type, updated_at) \
                 VALUES ($1, $2, $3, $4, 'invited', $5, $6)",
            )
            .bind(uuid::Uuid::new_v4())
            .bind(session.id.0)
            .bind(p.party_id.as_str())
            .bind(i32::from(p.party_index))
            .bind(&p.device_type)
            .bind(session.created_at)
            .execute(&mut *tx)
            .await?;
        }
        let outbox_id = insert_outbox(&mut tx, event, session.created_at).await?;
        self.notify(&mut tx, session.id).await?;
        tx.commit().await?;
        Ok(outbox_id)
    }

    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let rows = sqlx::query(SESSION_WITH_PARTICIPANTS)
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let session = session_columns(first)?;
        let mut participants = Vec::with_capacity(rows.len());
        for row in &rows {
            participants.extend(participant_columns(row)?);
        }
        session.into_record(participants).map(Some)
    }

    async fn update_participant(&self, update: &ParticipantUpdate) -> Result<bool, StoreError> {
        let (identity, session_key) = match &update.join_keys {
            Some((identity, key)) => (Some(identity), Some(key)),
            None => (None, None),
        };
        let (reported_key, reported_sig) = report_columns(update.report.as_ref());
        // One statement: the update, and a notification only when a row changed.
        let result = sqlx::query(
            "WITH changed AS ( \
               UPDATE session_participants SET status = $4, updated_at = $5, \
                 joined_at = CASE WHEN $6 THEN $5 ELSE joined_at END, \
                 identity_public_key = COALESCE($7, identity_public_key), \
                 session_key = COALESCE($8, session_key), \
                 reported_public_key = COALESCE($9, reported_public_key), \
                 reported_signature = COALESCE($10, reported_signature) \
               WHERE session_id = $1 AND party_id = $2 AND status = $3 \
               RETURNING session_id) \
             SELECT pg_notify($11, session_id::text) FROM changed",
        )
        .bind(update.session_id.0)
        .bind(update.party_id.as_str())
        .bind(update.from.as_str())
        .bind(update.to.as_str())
        .bind(update.at)
        .bind(update.join_keys.is_some())
        .bind(identity)
        .bind(session_key)
        .bind(reported_key)
        .bind(reported_sig)
        .bind(&self.channel)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn update_session(&self, update: &SessionUpdate) -> Result<Cas, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (signature, der) = match &update.signature {
            Some(sig) => (
                Some(encode_signature(&sig.r, &sig.s, sig.v)),
                Some(sig.der.clone()),
            ),
            None => (None, None),
        };
        // A concurrent CAS on the same row waits for our commit, then re-checks `status` and
        // matches nothing: exactly one caller wins.
        let result = sqlx::query(
            "UPDATE mpc_sessions SET status = $3, updated_at = $4, \
               failure_reason = COALESCE($5, failure_reason), \
               blamed_party = COALESCE($6, blamed_party), \
               public_key = COALESCE($7, public_key), \
               signature = COALESCE($8, signature), \
               signature_der = COALESCE($9, signature_der), \
               completed_at = CASE WHEN $10 THEN $4 ELSE completed_at END \
             WHERE id = $1 AND status = $2",
        )
        .bind(update.session_id.0)
        .bind(update.from.as_str())
        .bind(update.to.as_str())
        .bind(update.at)
        .bind(&update.failure_reason)
        .bind(update.blamed_party.as_ref().map(|p| p.as_str()))
        .bind(&update.public_key)
        .bind(signature)
        .bind(der)
        .bind(update.completed)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(Cas::Conflict);
        }
        for (from, to) in &update.participants {
            sqlx::query(
                "UPDATE session_participants SET status = $3, updated_at = $4 \
                 WHERE session_id = $1 AND status = $2",
            )
            .bind(update.session_id.0)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(update.at)
            .execute(&mut *tx)
            .await?;
        }
        let outbox_id = match &update.event {
            Some(event) => Some(insert_outbox(&mut tx, event, update.at).await?),
            None => None,
        };
        self.notify(&mut tx, update.session_id).await?;
        tx.commit().await?;
        Ok(Cas::Applied { outbox_id })
    }

    async fn expired_sessions(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<SessionId>, StoreError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM mpc_sessions \
             WHERE status IN ('created', 'waiting', 'in_progress') AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(SessionId).collect())
    }

    async fn count_active_sessions(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM mpc_sessions \
             WHERE status IN ('created', 'waiting', 'in_progress')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        claim_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        // SKIP LOCKED: two relays never claim the same row.
        let rows = sqlx::query(
            "UPDATE coordinator_outbox SET claimed_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM coordinator_outbox WHERE claimed_until <= $1 \
                          ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, event_id, session_id, routing_key, payload, attempts",
        )
        .bind(now)
        .bind(claim_until)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(|row| -> Result<OutboxRecord, sqlx::Error> {
                Ok(OutboxRecord {
                    id: row.try_get("id")?,
                    event_id: row.try_get("event_id")?,
                    session_id: SessionId(row.try_get("session_id")?),
                    routing_key: row.try_get("routing_key")?,
                    payload: row.try_get("payload")?,
                    attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    async fn delete_outbox(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM coordinator_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn retry_outbox_at(&self, id: i64, retry_at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE coordinator_outbox SET claimed_until = $2 WHERE id = $1")
            .bind(id)
            .bind(retry_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn subscribe_changes(&self) -> broadcast::Receiver<SessionChanged> {
        self.changes.subscribe()
    }
}
