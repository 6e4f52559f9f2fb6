//! The router store's SQL, written once and stamped out for each backend by
//! [`router_store_impl!`] in `postgres.rs` and `sqlite.rs`, each of which brings its dialect
//! into scope (`crate::dialect`, which says what differs: ids, times, write transactions, row
//! locks, `NOTIFY`). The macro defines the store type too: it holds only the pool.

macro_rules! router_store_impl {
    ($(#[$doc:meta])* $store:ident) => {
        use std::time::Duration;

        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use mpc_proto::{MessageId, SessionId};
        use sqlx::Row;

        use super::{
            ChangeFeed, Existing, FetchOutcome, Mailbox, NOTIFY_CHANNEL, NewEnvelope,
            RouteOutcome, RouterStore, StoredEnvelope, SweepReport, TOMBSTONE_RETENTION,
            duration_to_chrono, outcome_for_existing, round_from_db, seq_from_db, seq_to_db,
            sorted_recipients,
        };
        use crate::error::StoreError;
        use crate::values::{opt_party_from_db, party_from_db};

        crate::dialect::store_on_pool!($(#[$doc])* $store);

        /// One page of a mailbox in one statement: up to `limit + 1` deliveries after a seq
        /// ($3), with the payload only for those in the page — of the first `limit` ($5) whose
        /// running payload total stays within `max_bytes` ($6), and the first in any case — so
        /// that paging by bytes never reads payloads it will not return. The running total only
        /// grows, so the page is a prefix.
        const FETCH_PAGE: &str =
            "SELECT p.seq, p.message_id, p.from_party, p.to_party, p.round, p.created_at,
                CASE WHEN p.n <= $5 AND (p.n = 1 OR p.running <= $6)
                     THEN (SELECT payload FROM router_messages WHERE message_id = p.message_id)
                END AS payload
             FROM (
                SELECT d.seq, m.message_id, m.from_party, m.to_party, m.round, m.created_at,
                       ROW_NUMBER() OVER (ORDER BY d.seq) AS n,
                       CAST(SUM(m.payload_len) OVER (ORDER BY d.seq) AS BIGINT) AS running
                FROM router_deliveries d
                JOIN router_messages m ON m.message_id = d.message_id
                WHERE d.session_id = $1 AND d.recipient = $2 AND d.seq > $3
                ORDER BY d.seq LIMIT $4
             ) p
             ORDER BY p.seq";

        fn envelope_from_row(row: &Row_, session_id: SessionId) -> Result<StoredEnvelope, StoreError> {
            Ok(StoredEnvelope {
                seq: seq_from_db(row.try_get("seq")?)?,
                message_id: MessageId(from_uid(row.try_get("message_id")?)?),
                session_id,
                from_party: party_from_db(row.try_get("from_party")?)?,
                to_party: opt_party_from_db(row.try_get("to_party")?)?,
                round: round_from_db(row.try_get("round")?)?,
                payload: row.try_get("payload")?,
                created_at: from_ts(row.try_get("created_at")?)?,
            })
        }

        /// The `message_id` exists: a retry of the same envelope is a duplicate, anything else
        /// a conflict.
        async fn compare_with_existing(
            tx: &mut Tx,
            message_id: &Uid,
            envelope: &NewEnvelope,
        ) -> Result<RouteOutcome, StoreError> {
            let row = sqlx::query(
                "SELECT session_id, from_party, to_party, round, payload,
                        (SELECT count(*) FROM router_deliveries d
                         WHERE d.message_id = m.message_id) AS recipients
                 FROM router_messages m WHERE message_id = $1",
            )
            .bind(message_id)
            .fetch_one(&mut **tx)
            .await?;
            Ok(outcome_for_existing(
                Existing {
                    same_session: from_uid(row.try_get("session_id")?)? == envelope.session_id.0,
                    from_party: row.try_get("from_party")?,
                    to_party: row.try_get("to_party")?,
                    round: row.try_get("round")?,
                    payload: row.try_get("payload")?,
                    recipients: row.try_get("recipients")?,
                },
                envelope,
            ))
        }

        #[async_trait]
        impl RouterStore for $store {
            async fn route(&self, envelope: &NewEnvelope) -> Result<RouteOutcome, StoreError> {
                let session = uid(&envelope.session_id.0);
                let message_id = uid(&envelope.message_id.0);
                let mut tx = begin_write(&self.pool).await?;
                sqlx::query(
                    "INSERT INTO router_sessions (session_id, deadline, created_at)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (session_id) DO NOTHING",
                )
                .bind(&session)
                .bind(ts(envelope.session_deadline))
                .bind(ts(envelope.created_at))
                .execute(&mut *tx)
                .await?;
                // PostgreSQL: FOR SHARE, so that concurrent senders proceed together while
                // `end_session` and the sweep (which lock the row for update) wait for them, and
                // nothing lands after the end.
                let ended: bool = sqlx::query_scalar(concat!(
                    "SELECT ended_at IS NOT NULL OR purged_at IS NOT NULL
                     FROM router_sessions WHERE session_id = $1",
                    for_share!()
                ))
                .bind(&session)
                .fetch_one(&mut *tx)
                .await?;
                if ended {
                    tx.rollback().await?;
                    return Ok(RouteOutcome::SessionEnded);
                }

                let inserted = sqlx::query(
                    "INSERT INTO router_messages (message_id, session_id, from_party, to_party,
                         round, payload, payload_len, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (message_id) DO NOTHING",
                )
                .bind(&message_id)
                .bind(&session)
                .bind(envelope.from_party.as_str())
                .bind(envelope.to_party.as_ref().map(|p| p.as_str()))
                .bind(i64::from(envelope.round))
                .bind(envelope.payload.as_slice())
                .bind(i64::try_from(envelope.payload.len()).unwrap_or(i64::MAX))
                .bind(ts(envelope.created_at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    let outcome = compare_with_existing(&mut tx, &message_id, envelope).await?;
                    tx.rollback().await?;
                    return Ok(outcome);
                }

                let mut deliveries = Vec::with_capacity(envelope.recipients.len());
                for recipient in sorted_recipients(envelope) {
                    let seq: i64 = sqlx::query_scalar(
                        "INSERT INTO router_sequences (session_id, recipient, last_seq)
                         VALUES ($1, $2, 1)
                         ON CONFLICT (session_id, recipient)
                         DO UPDATE SET last_seq = router_sequences.last_seq + 1
                         RETURNING last_seq",
                    )
                    .bind(&session)
                    .bind(recipient.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO router_deliveries (session_id, recipient, seq, message_id)
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&session)
                    .bind(recipient.as_str())
                    .bind(seq)
                    .bind(&message_id)
                    .execute(&mut *tx)
                    .await?;
                    let mailbox = Mailbox::new(envelope.session_id, recipient.clone());
                    notify(&mut tx, NOTIFY_CHANNEL, &mailbox.to_notify_payload()).await?;
                    deliveries.push((recipient.clone(), seq_from_db(seq)?));
                }
                tx.commit().await?;
                Ok(RouteOutcome::Stored { deliveries })
            }

            async fn fetch(
                &self,
                mailbox: &Mailbox,
                after_seq: u64,
                limit: u32,
                max_bytes: u64,
            ) -> Result<FetchOutcome, StoreError> {
                let session = uid(&mailbox.session_id.0);
                let rows = sqlx::query(FETCH_PAGE)
                    .bind(&session)
                    .bind(mailbox.recipient.as_str())
                    .bind(seq_to_db(after_seq))
                    .bind(i64::from(limit) + 1)
                    .bind(i64::from(limit))
                    .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                if rows.is_empty() {
                    // Nothing waiting, or nothing left because the session was purged.
                    let purged: Option<bool> = sqlx::query_scalar(
                        "SELECT purged_at IS NOT NULL FROM router_sessions WHERE session_id = $1",
                    )
                    .bind(&session)
                    .fetch_optional(&self.pool)
                    .await?;
                    if purged == Some(true) {
                        return Ok(FetchOutcome::SessionPurged);
                    }
                }
                // Rows past the page come without their payload (NULL): they only say that more
                // wait.
                let in_page = rows
                    .iter()
                    .take_while(|row| {
                        matches!(row.try_get::<Option<&[u8]>, _>("payload"), Ok(Some(_)))
                    })
                    .count();
                let envelopes = rows[..in_page]
                    .iter()
                    .map(|row| envelope_from_row(row, mailbox.session_id))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(FetchOutcome::Envelopes {
                    envelopes,
                    has_more: rows.len() > in_page,
                })
            }

            async fn end_session(
                &self,
                session_id: SessionId,
                deadline: DateTime<Utc>,
                ended_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO router_sessions (session_id, deadline, ended_at, created_at)
                     VALUES ($1, $2, $3, $3)
                     ON CONFLICT (session_id)
                     DO UPDATE SET ended_at = COALESCE(router_sessions.ended_at, EXCLUDED.ended_at)",
                )
                .bind(uid(&session_id.0))
                .bind(ts(deadline))
                .bind(ts(ended_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn sweep(
                &self,
                now: DateTime<Utc>,
                grace: Duration,
            ) -> Result<SweepReport, StoreError> {
                let cutoff = now - duration_to_chrono(grace);
                let due: Vec<Uid> = sqlx::query_scalar(
                    "SELECT session_id FROM router_sessions
                     WHERE purged_at IS NULL AND (ended_at <= $1 OR deadline <= $1)",
                )
                .bind(ts(cutoff))
                .fetch_all(&self.pool)
                .await?;

                let mut report = SweepReport::default();
                for session in due {
                    let mut tx = begin_write(&self.pool).await?;
                    // Re-check: another replica may have purged it meanwhile. PostgreSQL: FOR
                    // UPDATE waits for senders holding the row FOR SHARE.
                    let still_due: Option<bool> = sqlx::query_scalar(concat!(
                        "SELECT purged_at IS NULL FROM router_sessions WHERE session_id = $1",
                        for_update!()
                    ))
                    .bind(&session)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if still_due != Some(true) {
                        tx.rollback().await?;
                        continue;
                    }
                    sqlx::query("DELETE FROM router_deliveries WHERE session_id = $1")
                        .bind(&session)
                        .execute(&mut *tx)
                        .await?;
                    let deleted = sqlx::query("DELETE FROM router_messages WHERE session_id = $1")
                        .bind(&session)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    sqlx::query("DELETE FROM router_sequences WHERE session_id = $1")
                        .bind(&session)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE router_sessions SET purged_at = $2 WHERE session_id = $1")
                        .bind(&session)
                        .bind(ts(now))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    report.purged_sessions.push(SessionId(from_uid(session)?));
                    report.deleted_messages += deleted;
                }

                report.forgotten_sessions = sqlx::query(
                    "DELETE FROM router_sessions WHERE purged_at IS NOT NULL AND deadline <= $1",
                )
                .bind(ts(cutoff - duration_to_chrono(TOMBSTONE_RETENTION)))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(report)
            }

            async fn change_feed(&self) -> Result<Option<ChangeFeed>, StoreError> {
                Ok(listen(&self.pool, NOTIFY_CHANNEL)
                    .await?
                    .map(|listener| ChangeFeed { listener }))
            }
        }
    };
}
