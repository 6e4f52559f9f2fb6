//! The party store's SQL, written once and stamped out for each backend by
//! [`party_store_impl!`] in `postgres.rs` and `sqlite.rs`, each of which brings its dialect into
//! scope (`crate::dialect`, which says what differs). The macro defines the store type too: it
//! holds only the pool.
//!
//! Storing a pending share and recording a session's outcome run one at a time per session
//! (`lock_key`; on SQLite the write lock already does this), so that the two never miss each
//! other and leave the share pending forever. The transactions that retire, delete or replace
//! ciphertext first ask the database to overwrite what they free (`erase_freed`).

/// The columns of a share row, in the order [`party_store_impl!`]'s `share_from_row` reads.
macro_rules! share_columns {
    () => {
        "id, key_id, party_id, party_index, threshold_t, threshold_n, public_key, session_id, \
         status, sealed_share, kek_id, created_at, updated_at, activated_at, retired_at"
    };
}

macro_rules! party_store_impl {
    ($(#[$doc:meta])* $store:ident) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use mpc_proto::{PartyId, SessionId, SessionType};
        use sqlx::Row;
        use uuid::Uuid;

        use super::{
            HandledSession, KeyBan, NewShare, OutcomeEffect, PartyStore, PendingOutcome,
            SessionOutcome, ShareRecord, ShareStatus, StoredIdentity,
        };
        use crate::error::StoreError;
        use crate::values::{parse_db, party_from_db, threshold_from_db, u16_from_db};

        crate::dialect::store_on_pool!($(#[$doc])* $store);

        impl $store {
            /// A write transaction that holds the session's lock.
            async fn begin_for_session(&self, session: &Uuid) -> Result<Tx, StoreError> {
                let mut tx = begin_write(&self.pool).await?;
                lock_key(&mut tx, &format!("mpc-party-session:{session}")).await?;
                Ok(tx)
            }
        }

        /// Test support (`mpc_store::testing`): reads no service needs.
        #[cfg(any(test, feature = "testing"))]
        impl $store {
            pub(crate) async fn handled_session(
                &self,
                session_id: SessionId,
            ) -> Result<Option<HandledSession>, StoreError> {
                sqlx::query("SELECT * FROM party_sessions WHERE session_id = $1")
                    .bind(uid(&session_id.0))
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(session_from_row)
                    .transpose()
            }

            pub(crate) async fn kek_usage(&self) -> Result<Vec<(String, u64)>, StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT kek_id, COUNT(*) FROM (
                         SELECT kek_id FROM party_key_shares WHERE kek_id IS NOT NULL
                         UNION ALL SELECT kek_id FROM party_identity
                     ) AS used GROUP BY kek_id ORDER BY kek_id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(kek, n)| (kek, crate::values::count_from_db(n)))
                    .collect())
            }
        }

        fn share_from_row(row: &Row_) -> Result<ShareRecord, StoreError> {
            Ok(ShareRecord {
                id: from_uid(row.try_get("id")?)?,
                key_id: row.try_get("key_id")?,
                party_id: party_from_db(row.try_get("party_id")?)?,
                party_index: u16_from_db(row.try_get("party_index")?, "party_index")?,
                threshold: threshold_from_db(
                    row.try_get("threshold_t")?,
                    row.try_get("threshold_n")?,
                )?,
                public_key: row.try_get("public_key")?,
                session_id: SessionId(from_uid(row.try_get("session_id")?)?),
                status: row.try_get::<&str, _>("status")?.parse::<ShareStatus>()?,
                sealed_share: row.try_get("sealed_share")?,
                kek_id: row.try_get("kek_id")?,
                created_at: from_ts(row.try_get("created_at")?)?,
                updated_at: from_ts(row.try_get("updated_at")?)?,
                activated_at: opt_from_ts(row.try_get("activated_at")?)?,
                retired_at: opt_from_ts(row.try_get("retired_at")?)?,
            })
        }

        fn session_from_row(row: &Row_) -> Result<HandledSession, StoreError> {
            Ok(HandledSession {
                session_id: SessionId(from_uid(row.try_get("session_id")?)?),
                session_type: parse_db(row.try_get("session_type")?, "session type")?,
                key_id: row.try_get("key_id")?,
                local_state: row.try_get::<&str, _>("local_state")?.parse()?,
                outcome: row
                    .try_get::<Option<&str>, _>("outcome")?
                    .map(str::parse)
                    .transpose()?,
                created_at: from_ts(row.try_get("created_at")?)?,
                updated_at: from_ts(row.try_get("updated_at")?)?,
            })
        }

        fn identity_from_row(row: &Row_) -> Result<StoredIdentity, StoreError> {
            Ok(StoredIdentity {
                party_id: party_from_db(row.try_get("party_id")?)?,
                public_key: row.try_get("public_key")?,
                sealed_key: row.try_get("sealed_key")?,
                kek_id: row.try_get("kek_id")?,
                created_at: from_ts(row.try_get("created_at")?)?,
                updated_at: from_ts(row.try_get("updated_at")?)?,
            })
        }

        /// The outcome recorded for a session, in `tx`.
        async fn recorded_outcome(
            tx: &mut Tx,
            session: &Uid,
        ) -> Result<Option<SessionOutcome>, StoreError> {
            let outcome: Option<Option<String>> =
                sqlx::query_scalar("SELECT outcome FROM party_sessions WHERE session_id = $1")
                    .bind(session)
                    .fetch_optional(&mut **tx)
                    .await?;
            outcome.flatten().map(|o| o.parse()).transpose()
        }

        /// Retires (and erases) the key's active share, unless it is `keep`. Returns its id.
        async fn retire_active(
            tx: &mut Tx,
            key_id: &str,
            keep: &Uid,
            now: DateTime<Utc>,
        ) -> Result<Option<Uuid>, StoreError> {
            let retired: Option<Uid> = sqlx::query_scalar(
                "UPDATE party_key_shares
                 SET status = 'retired', sealed_share = NULL, kek_id = NULL,
                     retired_at = $3, updated_at = $3
                 WHERE key_id = $1 AND status = 'active' AND id <> $2
                 RETURNING id",
            )
            .bind(key_id)
            .bind(keep)
            .bind(ts(now))
            .fetch_optional(&mut **tx)
            .await?;
            retired.map(from_uid).transpose()
        }

        #[async_trait]
        impl PartyStore for $store {
            async fn identity(&self) -> Result<Option<StoredIdentity>, StoreError> {
                sqlx::query("SELECT * FROM party_identity")
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(identity_from_row)
                    .transpose()
            }

            async fn create_identity(
                &self,
                identity: &StoredIdentity,
            ) -> Result<StoredIdentity, StoreError> {
                let mut tx = begin_write(&self.pool).await?;
                sqlx::query(
                    "INSERT INTO party_identity
                         (singleton, party_id, public_key, sealed_key, kek_id, created_at,
                          updated_at)
                     VALUES (TRUE, $1, $2, $3, $4, $5, $6)
                     ON CONFLICT (singleton) DO NOTHING",
                )
                .bind(identity.party_id.as_str())
                .bind(&identity.public_key)
                .bind(identity.sealed_key.as_slice())
                .bind(&identity.kek_id)
                .bind(ts(identity.created_at))
                .bind(ts(identity.updated_at))
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query("SELECT * FROM party_identity")
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                identity_from_row(&row)
            }

            async fn reseal_identity(
                &self,
                old_kek: &str,
                sealed_key: &[u8],
                new_kek: &str,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let updated = sqlx::query(
                    "UPDATE party_identity SET sealed_key = $1, kek_id = $2, updated_at = $3
                     WHERE kek_id = $4",
                )
                .bind(sealed_key)
                .bind(new_kek)
                .bind(ts(now))
                .bind(old_kek)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            async fn begin_session(
                &self,
                session_id: SessionId,
                session_type: SessionType,
                key_id: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<HandledSession>, StoreError> {
                let session = uid(&session_id.0);
                let mut tx = self.begin_for_session(&session_id.0).await?;
                let inserted = sqlx::query(
                    "INSERT INTO party_sessions
                         (session_id, session_type, key_id, local_state, created_at, updated_at)
                     VALUES ($1, $2, $3, 'running', $4, $4)
                     ON CONFLICT (session_id) DO NOTHING",
                )
                .bind(&session)
                .bind(session_type.as_str())
                .bind(key_id)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let existing = if inserted == 1 {
                    None
                } else {
                    let row = sqlx::query("SELECT * FROM party_sessions WHERE session_id = $1")
                        .bind(&session)
                        .fetch_one(&mut *tx)
                        .await?;
                    Some(session_from_row(&row)?)
                };
                tx.commit().await?;
                Ok(existing)
            }

            async fn finish_session(
                &self,
                session_id: SessionId,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE party_sessions SET local_state = 'finished', updated_at = $2
                     WHERE session_id = $1 AND local_state = 'running'",
                )
                .bind(uid(&session_id.0))
                .bind(ts(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn put_pending_share(
                &self,
                share: &NewShare,
            ) -> Result<PendingOutcome, StoreError> {
                let session = uid(&share.session_id.0);
                let id = uid(&share.id);
                let mut tx = self.begin_for_session(&share.session_id.0).await?;
                erase_freed(&mut tx).await?;
                let status = match recorded_outcome(&mut tx, &session).await? {
                    Some(o @ (SessionOutcome::Failed | SessionOutcome::Expired)) => {
                        tx.rollback().await?;
                        return Ok(PendingOutcome::Discarded(o));
                    }
                    Some(SessionOutcome::Completed) => ShareStatus::Active,
                    None => ShareStatus::Pending,
                };
                let now = share.created_at;
                let retired = if status == ShareStatus::Active {
                    retire_active(&mut tx, &share.key_id, &id, now).await?
                } else {
                    None
                };
                let inserted = sqlx::query(
                    "INSERT INTO party_key_shares
                         (id, key_id, party_id, party_index, threshold_t, threshold_n, public_key,
                          session_id, status, sealed_share, kek_id, created_at, updated_at,
                          activated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&id)
                .bind(&share.key_id)
                .bind(share.party_id.as_str())
                .bind(i32::from(share.party_index))
                .bind(i32::from(share.threshold.t))
                .bind(i32::from(share.threshold.n))
                .bind(&share.public_key)
                .bind(&session)
                .bind(status.as_str())
                .bind(share.sealed_share.as_slice())
                .bind(&share.kek_id)
                .bind(ts(now))
                .bind((status == ShareStatus::Active).then(|| ts(now)))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    tx.rollback().await?;
                    return Err(StoreError::Conflict(format!(
                        "a share of session {} is stored already",
                        share.session_id
                    )));
                }
                tx.commit().await?;
                Ok(match status {
                    ShareStatus::Active => PendingOutcome::Activated { retired },
                    _ => PendingOutcome::Pending,
                })
            }

            async fn record_outcome(
                &self,
                session_id: SessionId,
                session_type: SessionType,
                key_id: &str,
                outcome: SessionOutcome,
                now: DateTime<Utc>,
            ) -> Result<OutcomeEffect, StoreError> {
                let session = uid(&session_id.0);
                let mut tx = self.begin_for_session(&session_id.0).await?;
                erase_freed(&mut tx).await?;
                sqlx::query(
                    "INSERT INTO party_sessions
                         (session_id, session_type, key_id, local_state, outcome, created_at,
                          updated_at)
                     VALUES ($1, $2, $3, 'unseen', $4, $5, $5)
                     ON CONFLICT (session_id) DO UPDATE
                         SET outcome = $4, updated_at = $5
                         WHERE party_sessions.outcome IS NULL",
                )
                .bind(&session)
                .bind(session_type.as_str())
                .bind(key_id)
                .bind(outcome.as_str())
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
                let recorded = recorded_outcome(&mut tx, &session).await?;
                let mut effect = OutcomeEffect {
                    outcome: recorded,
                    ..OutcomeEffect::default()
                };
                match recorded {
                    Some(SessionOutcome::Completed) => {
                        let pending: Option<(Uid, String)> = sqlx::query_as(
                            "SELECT id, key_id FROM party_key_shares
                             WHERE session_id = $1 AND status = 'pending'",
                        )
                        .bind(&session)
                        .fetch_optional(&mut *tx)
                        .await?;
                        if let Some((id, share_key)) = pending {
                            effect.retired = retire_active(&mut tx, &share_key, &id, now).await?;
                            sqlx::query(
                                "UPDATE party_key_shares
                                 SET status = 'active', activated_at = $2, updated_at = $2
                                 WHERE id = $1",
                            )
                            .bind(&id)
                            .bind(ts(now))
                            .execute(&mut *tx)
                            .await?;
                            effect.activated = Some(from_uid(id)?);
                        }
                    }
                    Some(SessionOutcome::Failed | SessionOutcome::Expired) => {
                        effect.deleted = sqlx::query(
                            "DELETE FROM party_key_shares
                             WHERE session_id = $1 AND status = 'pending'",
                        )
                        .bind(&session)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    }
                    None => {}
                }
                tx.commit().await?;
                Ok(effect)
            }

            async fn active_share(&self, key_id: &str) -> Result<Option<ShareRecord>, StoreError> {
                sqlx::query(concat!(
                    "SELECT ",
                    share_columns!(),
                    " FROM party_key_shares WHERE key_id = $1 AND status = 'active'"
                ))
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(share_from_row)
                .transpose()
            }

            async fn shares(&self, key_id: &str) -> Result<Vec<ShareRecord>, StoreError> {
                sqlx::query(concat!(
                    "SELECT ",
                    share_columns!(),
                    " FROM party_key_shares WHERE key_id = $1 ORDER BY created_at, id"
                ))
                .bind(key_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(share_from_row)
                .collect()
            }

            async fn sealed_under(
                &self,
                kek_id: &str,
                limit: u32,
            ) -> Result<Vec<ShareRecord>, StoreError> {
                sqlx::query(concat!(
                    "SELECT ",
                    share_columns!(),
                    " FROM party_key_shares WHERE kek_id = $1 ORDER BY created_at, id LIMIT $2"
                ))
                .bind(kek_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(share_from_row)
                .collect()
            }

            async fn reseal_share(
                &self,
                id: Uuid,
                old_kek: &str,
                sealed_share: &[u8],
                new_kek: &str,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                // One statement, which takes the write lock itself; the old ciphertext is
                // overwritten on SQLite.
                let mut conn = self.pool.acquire().await?;
                erase_freed(&mut conn).await?;
                let updated = sqlx::query(
                    "UPDATE party_key_shares SET sealed_share = $1, kek_id = $2, updated_at = $3
                     WHERE id = $4 AND kek_id = $5 AND status <> 'retired'",
                )
                .bind(sealed_share)
                .bind(new_kek)
                .bind(ts(now))
                .bind(uid(&id))
                .bind(old_kek)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                Ok(updated == 1)
            }

            async fn ban(&self, ban: &KeyBan) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO party_key_bans (key_id, party_id, reason, session_id, created_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (key_id, party_id) DO NOTHING",
                )
                .bind(&ban.key_id)
                .bind(ban.party_id.as_str())
                .bind(&ban.reason)
                .bind(uid(&ban.session_id.0))
                .bind(ts(ban.created_at))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn bans(&self, key_id: &str) -> Result<Vec<KeyBan>, StoreError> {
                let rows = sqlx::query(
                    "SELECT key_id, party_id, reason, session_id, created_at
                     FROM party_key_bans WHERE key_id = $1 ORDER BY party_id",
                )
                .bind(key_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(KeyBan {
                            key_id: row.try_get("key_id")?,
                            party_id: party_from_db(row.try_get("party_id")?)?,
                            reason: row.try_get("reason")?,
                            session_id: SessionId(from_uid(row.try_get("session_id")?)?),
                            created_at: from_ts(row.try_get("created_at")?)?,
                        })
                    })
                    .collect()
            }

            async fn clear_ban(&self, key_id: &str, party_id: &PartyId) -> Result<bool, StoreError> {
                let deleted =
                    sqlx::query("DELETE FROM party_key_bans WHERE key_id = $1 AND party_id = $2")
                        .bind(key_id)
                        .bind(party_id.as_str())
                        .execute(&self.pool)
                        .await?
                        .rows_affected();
                Ok(deleted == 1)
            }
        }
    };
}
