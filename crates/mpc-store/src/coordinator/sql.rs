//! The coordinator store's SQL, written once and stamped out for each backend by
//! [`coordinator_store_impl!`] in `postgres.rs` and `sqlite.rs`. Each of those modules brings
//! its dialect into scope (`crate::dialect`, which says what differs) and supplies the store
//! type, with a `pool` and three methods that say how a change is announced:
//!
//! - `announce(&self, tx, id)`, inside the transaction (PostgreSQL: `NOTIFY`, sent on commit);
//! - `changed(&self, id)`, after the commit (SQLite: the in-process channel);
//! - `channel(&self)`, the `NOTIFY` channel: parameter `$11` of the participant update.
//!
//! Session and participant ids are bound as `uuid::Uuid` on both backends (sqlx's native
//! encoding: `UUID`, and a 16-byte `BLOB` in the coordinator's SQLite schema).

macro_rules! coordinator_store_impl {
    ($store:ident) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use mpc_proto::SessionId;
        use sqlx::Row;
        use tokio::sync::broadcast;

        use super::{
            Cas, CoordinatorStore, Host, HostedParticipant, NewSession, OutboxEvent, OutboxRecord, ParticipantRecord,
            ParticipantUpdate, SessionChanged, SessionRecord, SessionUpdate, encode_signature,
            recovery_from_db, recovery_to_db, report_from_db, report_to_db, signature_from_db,
        };
        use crate::error::StoreError;
        use crate::values::{
            count_from_db, opt_party_from_db, parse_db, party_from_db, threshold_from_db,
            u16_from_db,
        };

        /// The session and its participants in one statement: a single statement reads one
        /// snapshot on both backends, without the round trips of an explicit read transaction.
        /// Participant columns carry a `p_` prefix (`status` and `updated_at` exist on both
        /// tables); a session without participants yields one row whose `p_` columns are NULL.
        const SESSION_WITH_PARTICIPANTS: &str = "SELECT s.id, s.session_type, s.threshold_t, \
             s.threshold_n, s.status, s.key_id, s.message_hash, s.public_key, s.signature, \
             s.signature_der, s.recovery_target, s.recovery_helpers, s.failure_reason, \
             s.blamed_party, s.created_at, s.expires_at, s.updated_at, s.completed_at, \
             p.party_id AS p_party_id, p.party_index AS p_party_index, \
             p.device_type AS p_device_type, p.status AS p_status, p.joined_at AS p_joined_at, \
             p.identity_public_key AS p_identity_public_key, p.session_key AS p_session_key, \
             p.reported_public_key AS p_reported_public_key, \
             p.reported_signature AS p_reported_signature, p.updated_at AS p_updated_at, \
             p.host_party AS p_host_party, p.host_instance AS p_host_instance \
             FROM mpc_sessions s LEFT JOIN session_participants p ON p.session_id = s.id \
             WHERE s.id = $1 ORDER BY p.party_index";

        /// One statement: the update, and on PostgreSQL a notification only when a row changed.
        const UPDATE_PARTICIPANT: &str = notify_changed!(
            "UPDATE session_participants SET status = $4, updated_at = $5, \
               joined_at = CASE WHEN $6 THEN $5 ELSE joined_at END, \
               identity_public_key = COALESCE($7, identity_public_key), \
               session_key = COALESCE($8, session_key), \
               reported_public_key = COALESCE($9, reported_public_key), \
               reported_signature = COALESCE($10, reported_signature), \
               host_party = CASE WHEN $6 THEN $12 ELSE host_party END, \
               host_instance = CASE WHEN $6 THEN $13 ELSE host_instance END \
             WHERE session_id = $1 AND party_id = $2 AND status = $3",
            "session_id",
            "$11"
        );

        fn session_from_rows(rows: &[Row_]) -> Result<Option<SessionRecord>, StoreError> {
            let Some(row) = rows.first() else {
                return Ok(None);
            };
            let mut participants = Vec::with_capacity(rows.len());
            for row in rows {
                participants.extend(participant_from_row(row)?);
            }
            let session_type: String = row.try_get("session_type")?;
            let status: String = row.try_get("status")?;
            Ok(Some(SessionRecord {
                id: SessionId(row.try_get("id")?),
                session_type: parse_db(&session_type, "session type")?,
                threshold: threshold_from_db(
                    row.try_get("threshold_t")?,
                    row.try_get("threshold_n")?,
                )?,
                status: parse_db(&status, "session status")?,
                key_id: row.try_get("key_id")?,
                message_hash: row.try_get("message_hash")?,
                public_key: row.try_get("public_key")?,
                signature: signature_from_db(
                    row.try_get("signature")?,
                    row.try_get("signature_der")?,
                )?,
                recovery: recovery_from_db(
                    row.try_get("recovery_target")?,
                    row.try_get("recovery_helpers")?,
                )?,
                failure_reason: row.try_get("failure_reason")?,
                blamed_party: opt_party_from_db(row.try_get("blamed_party")?)?,
                created_at: from_ts(row.try_get("created_at")?)?,
                expires_at: from_ts(row.try_get("expires_at")?)?,
                updated_at: from_ts(row.try_get("updated_at")?)?,
                completed_at: opt_from_ts(row.try_get("completed_at")?)?,
                participants,
            }))
        }

        /// The participant of a joined row; `None` for the NULL row of a session without
        /// participants.
        fn participant_from_row(row: &Row_) -> Result<Option<ParticipantRecord>, StoreError> {
            let Some(party_id) = row.try_get::<Option<String>, _>("p_party_id")? else {
                return Ok(None);
            };
            let status: String = row.try_get("p_status")?;
            Ok(Some(ParticipantRecord {
                party_id: party_from_db(&party_id)?,
                party_index: u16_from_db(row.try_get("p_party_index")?, "party_index")?,
                device_type: row.try_get("p_device_type")?,
                status: parse_db(&status, "participant status")?,
                joined_at: opt_from_ts(row.try_get("p_joined_at")?)?,
                identity_public_key: row.try_get("p_identity_public_key")?,
                session_key: row.try_get("p_session_key")?,
                host: match (
                    row.try_get::<Option<String>, _>("p_host_party")?,
                    row.try_get::<Option<String>, _>("p_host_instance")?,
                ) {
                    (Some(party), Some(instance_id)) => Some(Host {
                        party_id: party_from_db(&party)?,
                        instance_id,
                    }),
                    _ => None,
                },
                report: report_from_db(
                    row.try_get("p_reported_public_key")?,
                    row.try_get("p_reported_signature")?,
                )?,
                updated_at: from_ts(row.try_get("p_updated_at")?)?,
            }))
        }

        fn outbox_from_row(row: &Row_) -> Result<OutboxRecord, StoreError> {
            Ok(OutboxRecord {
                id: row.try_get("id")?,
                event_id: row.try_get("event_id")?,
                session_id: SessionId(row.try_get("session_id")?),
                routing_key: row.try_get("routing_key")?,
                payload: row.try_get("payload")?,
                attempts: u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0),
            })
        }

        async fn insert_outbox(
            tx: &mut Tx,
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
            .bind(ts(now))
            .bind(ts(event.claimed_until))
            .fetch_one(&mut **tx)
            .await?;
            Ok(id)
        }

        #[async_trait]
        impl CoordinatorStore for $store {
            async fn create_session(
                &self,
                session: &NewSession,
                event: &OutboxEvent,
            ) -> Result<i64, StoreError> {
                let (target, helpers) = recovery_to_db(session.recovery.as_ref())?;
                let mut tx = begin_write(&self.pool).await?;
                sqlx::query(
                    "INSERT INTO mpc_sessions (id, session_type, threshold_n, threshold_t, \
                     status, message_hash, public_key, created_at, expires_at, key_id, \
                     recovery_target, recovery_helpers, updated_at) \
                     VALUES ($1, $2, $3, $4, 'created', $5, $6, $7, $8, $9, $10, $11, $7)",
                )
                .bind(session.id.0)
                .bind(session.session_type.as_str())
                .bind(i32::from(session.threshold.n))
                .bind(i32::from(session.threshold.t))
                .bind(&session.message_hash)
                .bind(&session.public_key)
                .bind(ts(session.created_at))
                .bind(ts(session.expires_at))
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
                    .bind(ts(session.created_at))
                    .execute(&mut *tx)
                    .await?;
                }
                let outbox_id = insert_outbox(&mut tx, event, session.created_at).await?;
                self.announce(&mut tx, session.id).await?;
                tx.commit().await?;
                self.changed(session.id);
                Ok(outbox_id)
            }

            async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError> {
                let rows = sqlx::query(SESSION_WITH_PARTICIPANTS)
                    .bind(id.0)
                    .fetch_all(&self.pool)
                    .await?;
                session_from_rows(&rows)
            }

            async fn update_participant(
                &self,
                update: &ParticipantUpdate,
            ) -> Result<bool, StoreError> {
                let (identity, session_key) = match &update.join_keys {
                    Some((identity, key)) => (Some(identity), Some(key)),
                    None => (None, None),
                };
                let (reported_key, reported_sig) = report_to_db(update.report.as_ref());
                let result = sqlx::query(UPDATE_PARTICIPANT)
                    .bind(update.session_id.0)
                    .bind(update.party_id.as_str())
                    .bind(update.from.as_str())
                    .bind(update.to.as_str())
                    .bind(ts(update.at))
                    .bind(update.join_keys.is_some())
                    .bind(identity)
                    .bind(session_key)
                    .bind(reported_key)
                    .bind(reported_sig)
                    .bind(self.channel())
                    .bind(update.host.as_ref().map(|h| h.party_id.as_str()))
                    .bind(update.host.as_ref().map(|h| h.instance_id.as_str()))
                    .execute(&self.pool)
                    .await?;
                let changed = result.rows_affected() == 1;
                if changed {
                    self.changed(update.session_id);
                }
                Ok(changed)
            }

            async fn update_session(&self, update: &SessionUpdate) -> Result<Cas, StoreError> {
                let (signature, der) = match &update.signature {
                    Some(sig) => (
                        Some(encode_signature(&sig.r, &sig.s, sig.v)),
                        Some(sig.der.as_slice()),
                    ),
                    None => (None, None),
                };
                let mut tx = begin_write(&self.pool).await?;
                // A concurrent CAS on the same row waits for our commit, then re-checks
                // `status` and matches nothing: exactly one caller wins.
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
                .bind(ts(update.at))
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
                    .bind(ts(update.at))
                    .execute(&mut *tx)
                    .await?;
                }
                let outbox_id = match &update.event {
                    Some(event) => Some(insert_outbox(&mut tx, event, update.at).await?),
                    None => None,
                };
                self.announce(&mut tx, update.session_id).await?;
                tx.commit().await?;
                self.changed(update.session_id);
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
                .bind(ts(now))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(ids.into_iter().map(SessionId).collect())
            }

            async fn unstarted_sessions(
                &self,
                before: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<SessionId>, StoreError> {
                let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
                    "SELECT id FROM mpc_sessions \
                     WHERE status IN ('created', 'waiting') AND created_at <= $1 \
                     ORDER BY created_at LIMIT $2",
                )
                .bind(ts(before))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(ids.into_iter().map(SessionId).collect())
            }

            async fn hosted_by(
                &self,
                host_party: &mpc_proto::PartyId,
                except_instance: Option<&str>,
            ) -> Result<Vec<HostedParticipant>, StoreError> {
                let rows = sqlx::query(
                    "SELECT p.session_id, p.party_id, s.status, p.host_instance \
                     FROM session_participants p JOIN mpc_sessions s ON s.id = p.session_id \
                     WHERE p.host_party = $1 AND p.host_instance IS NOT NULL \
                       AND ($2 IS NULL OR p.host_instance <> $2) \
                       AND s.status IN ('created', 'waiting', 'in_progress') \
                       AND p.status IN ('joined', 'ready', 'computing') \
                     ORDER BY s.created_at",
                )
                .bind(host_party.as_str())
                .bind(except_instance)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let status: String = row.try_get("status")?;
                        let party: String = row.try_get("party_id")?;
                        Ok(HostedParticipant {
                            session_id: SessionId(row.try_get("session_id")?),
                            party_id: party_from_db(&party)?,
                            session_status: parse_db(&status, "session status")?,
                            instance_id: row.try_get("host_instance")?,
                        })
                    })
                    .collect()
            }

            async fn reset_join(
                &self,
                session_id: SessionId,
                party_id: &mpc_proto::PartyId,
                instance_id: &str,
                at: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let mut tx = begin_write(&self.pool).await?;
                let result = sqlx::query(
                    "UPDATE session_participants SET status = 'invited', updated_at = $4, \
                       joined_at = NULL, identity_public_key = NULL, session_key = NULL, \
                       host_party = NULL, host_instance = NULL \
                     WHERE session_id = $1 AND party_id = $2 AND status = 'joined' \
                       AND host_instance = $3 \
                       AND EXISTS (SELECT 1 FROM mpc_sessions \
                                   WHERE id = $1 AND status IN ('created', 'waiting'))",
                )
                .bind(session_id.0)
                .bind(party_id.as_str())
                .bind(instance_id)
                .bind(ts(at))
                .execute(&mut *tx)
                .await?;
                let reset = result.rows_affected() == 1;
                if reset {
                    self.announce(&mut tx, session_id).await?;
                }
                tx.commit().await?;
                if reset {
                    self.changed(session_id);
                }
                Ok(reset)
            }

            async fn count_active_sessions(&self) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM mpc_sessions \
                     WHERE status IN ('created', 'waiting', 'in_progress')",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(count_from_db(n))
            }

            async fn claim_outbox(
                &self,
                now: DateTime<Utc>,
                claim_until: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<OutboxRecord>, StoreError> {
                // One statement: two relays never claim the same row (PostgreSQL skips rows
                // another relay has locked; SQLite runs one writing statement at a time).
                let rows = sqlx::query(concat!(
                    "UPDATE coordinator_outbox SET claimed_until = $2, attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM coordinator_outbox WHERE claimed_until <= $1 \
                                  ORDER BY id LIMIT $3",
                    skip_locked!(),
                    ") RETURNING id, event_id, session_id, routing_key, payload, attempts"
                ))
                .bind(ts(now))
                .bind(ts(claim_until))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut out = rows
                    .iter()
                    .map(outbox_from_row)
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

            async fn retry_outbox_at(
                &self,
                id: i64,
                retry_at: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE coordinator_outbox SET claimed_until = $2 WHERE id = $1")
                    .bind(id)
                    .bind(ts(retry_at))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            fn subscribe_changes(&self) -> broadcast::Receiver<SessionChanged> {
                self.changes.subscribe()
            }
        }
    };
}
