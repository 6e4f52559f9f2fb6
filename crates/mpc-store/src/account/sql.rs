//! The account store's SQL, written once and stamped out for each backend by
//! [`account_store_impl!`] in `postgres.rs` and `sqlite.rs`, each of which brings its dialect
//! into scope (`crate::dialect`: how ids and times are stored, how a write transaction begins,
//! and the audit log's `INET` column). The macro defines the store type too: it holds only the
//! pool.

macro_rules! account_store_impl {
    ($(#[$doc:meta])* $store:ident) => {
        use async_trait::async_trait;
        use chrono::{DateTime, TimeDelta, Utc};
        use mpc_proto::{AccountId, SessionId, SessionType};
        use sqlx::Row;
        use sqlx::types::Json;

        use super::{
            AccountRecord, AccountSearch, AccountSessionRecord, AccountStatus, AccountStore,
            ApiKeyRecord, AuditEntry, AuditFilter, IdempotencyClaim, IdempotencyKey, NewAccount,
            NewAccountSession, NewApiKey, NewAuditEntry, NewShare, RecoveryPlan, SessionCount,
            SessionFilter, SessionOutcome, ShareRecord, ethereum_address, hash_from_db,
            limit_to_db, offset_to_db,
        };
        use super::search::TextMatch;
        use crate::error::StoreError;
        use crate::values::{
            count_from_db, opt_party_from_db, party_from_db, threshold_from_db, u16_from_db,
        };

        crate::dialect::store_on_pool!($(#[$doc])* $store);

        const ACCOUNT_COLUMNS: &str = "id, username, email, public_key, threshold_n, threshold_t, \
             status, created_at, keygen_session_id, failure_reason, updated_at";

        fn account_from_row(row: &Row_) -> Result<AccountRecord, StoreError> {
            let status: String = row.try_get("status")?;
            Ok(AccountRecord {
                id: AccountId(from_uid(row.try_get("id")?)?),
                username: row.try_get("username")?,
                email: row.try_get("email")?,
                public_key: row.try_get("public_key")?,
                threshold: threshold_from_db(
                    row.try_get("threshold_t")?,
                    row.try_get("threshold_n")?,
                )?,
                status: status.parse()?,
                keygen_session_id: row
                    .try_get::<Option<Uid>, _>("keygen_session_id")?
                    .map(from_uid)
                    .transpose()?
                    .map(SessionId),
                failure_reason: row.try_get("failure_reason")?,
                created_at: from_ts(row.try_get("created_at")?)?,
                updated_at: from_ts(row.try_get("updated_at")?)?,
            })
        }

        fn share_from_row(row: &Row_) -> Result<ShareRecord, StoreError> {
            let share_type: String = row.try_get("share_type")?;
            let party: String = row.try_get("party_id")?;
            Ok(ShareRecord {
                id: from_uid(row.try_get("id")?)?,
                account_id: AccountId(from_uid(row.try_get("account_id")?)?),
                share_type: share_type.parse()?,
                party_id: party_from_db(&party)?,
                party_index: u16_from_db(row.try_get("party_index")?, "party_index")?,
                device_type: row.try_get("device_type")?,
                storage_location: row.try_get("storage_location")?,
                is_active: row.try_get("is_active")?,
                created_at: from_ts(row.try_get("created_at")?)?,
                session_id: row
                    .try_get::<Option<Uid>, _>("session_id")?
                    .map(from_uid)
                    .transpose()?
                    .map(SessionId),
            })
        }

        fn session_from_row(row: &Row_) -> Result<AccountSessionRecord, StoreError> {
            let session_type: String = row.try_get("session_type")?;
            let status: String = row.try_get("status")?;
            let lost = opt_party_from_db(row.try_get("lost_party_id")?)?;
            let new = opt_party_from_db(row.try_get("new_party_id")?)?;
            let recovery = match (lost, new) {
                (Some(lost_party_id), Some(new_party_id)) => Some(RecoveryPlan {
                    lost_party_id,
                    new_party_id,
                    new_device_type: row.try_get("new_device_type")?,
                }),
                _ => None,
            };
            Ok(AccountSessionRecord {
                session_id: SessionId(from_uid(row.try_get("session_id")?)?),
                account_id: AccountId(from_uid(row.try_get("account_id")?)?),
                session_type: session_type
                    .parse::<SessionType>()
                    .map_err(|_| StoreError::Corrupt(format!("session type {session_type:?}")))?,
                status: status.parse()?,
                recovery,
                failure_reason: row.try_get("failure_reason")?,
                blamed_party: opt_party_from_db(row.try_get("blamed_party")?)?,
                created_at: from_ts(row.try_get("created_at")?)?,
                updated_at: from_ts(row.try_get("updated_at")?)?,
            })
        }

        fn api_key_from_row(row: &Row_) -> Result<ApiKeyRecord, StoreError> {
            let scope: String = row.try_get("scope")?;
            let opt_ts = |col: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
                row.try_get::<Option<Ts>, _>(col)?.map(from_ts).transpose()
            };
            Ok(ApiKeyRecord {
                id: from_uid(row.try_get("id")?)?,
                name: row.try_get("name")?,
                key_hash: hash_from_db(row.try_get("key_hash")?)?,
                prefix: row.try_get("prefix")?,
                scope: scope.parse()?,
                created_at: from_ts(row.try_get("created_at")?)?,
                expires_at: opt_ts("expires_at")?,
                revoked_at: opt_ts("revoked_at")?,
                last_used_at: opt_ts("last_used_at")?,
            })
        }

        fn audit_from_row(row: &Row_) -> Result<AuditEntry, StoreError> {
            let status: Option<i32> = row.try_get("response_status")?;
            let body: Option<Json<serde_json::Value>> = row.try_get("request_body")?;
            Ok(AuditEntry {
                id: row.try_get("id")?,
                session_id: row
                    .try_get::<Option<Uid>, _>("session_id")?
                    .map(from_uid)
                    .transpose()?
                    .map(SessionId),
                account_id: row
                    .try_get::<Option<Uid>, _>("account_id")?
                    .map(from_uid)
                    .transpose()?
                    .map(AccountId),
                operation: row.try_get("operation")?,
                user_id: row.try_get("user_id")?,
                ip_address: row.try_get("ip_address")?,
                user_agent: row.try_get("user_agent")?,
                request_body: body.map(|b| b.0),
                response_status: status.map(|s| u16_from_db(s, "response_status")).transpose()?,
                created_at: from_ts(row.try_get("created_at")?)?,
            })
        }

        /// Which unique value of a new account is taken, for a conflict message.
        async fn taken_field(store: &$store, account: &NewAccount) -> Result<&'static str, StoreError> {
            for (column, value) in [("username", &account.username), ("email", &account.email)] {
                let Some(value) = value else { continue };
                let sql = if column == "username" {
                    "SELECT COUNT(*) FROM accounts WHERE username = $1"
                } else {
                    "SELECT COUNT(*) FROM accounts WHERE email = $1"
                };
                let n: i64 = sqlx::query_scalar(sql).bind(value).fetch_one(&store.pool).await?;
                if n > 0 {
                    return Ok(column);
                }
            }
            Ok("username or email")
        }

        async fn insert_share(
            tx: &mut Tx,
            account: &Uid,
            share: &NewShare,
            session: &Uid,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO account_shares (id, account_id, share_type, party_id, party_index,
                     device_type, storage_location, is_active, created_at, session_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(uid(&uuid::Uuid::new_v4()))
            .bind(account)
            .bind(share.share_type.as_str())
            .bind(share.party_id.as_str())
            .bind(i32::from(share.party_index))
            .bind(&share.device_type)
            .bind(&share.storage_location)
            .bind(true)
            .bind(ts(now))
            .bind(session)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        impl $store {
            /// Stores the address of every account that has a key but no address yet (keys
            /// written before the address column existed). Idempotent; replicas may race.
            pub(crate) async fn fill_in_addresses(&self) -> Result<u64, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, public_key FROM accounts
                     WHERE public_key IS NOT NULL AND ethereum_address IS NULL",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut filled = 0;
                for row in &rows {
                    let id: Uid = row.try_get("id")?;
                    let key: Vec<u8> = row.try_get("public_key")?;
                    let Some(address) = ethereum_address(&key) else {
                        continue;
                    };
                    filled += sqlx::query(
                        "UPDATE accounts SET ethereum_address = $2
                         WHERE id = $1 AND ethereum_address IS NULL",
                    )
                    .bind(&id)
                    .bind(address)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                }
                if filled > 0 {
                    tracing::info!(accounts = filled, "stored the addresses of existing accounts");
                }
                Ok(filled)
            }
        }

        #[async_trait]
        impl AccountStore for $store {
            async fn create_account(&self, account: &NewAccount) -> Result<(), StoreError> {
                let result = sqlx::query(
                    "INSERT INTO accounts (id, username, email, public_key, threshold_n,
                         threshold_t, status, created_at, keygen_session_id, failure_reason,
                         updated_at)
                     VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, NULL, NULL, $7)",
                )
                .bind(uid(&account.id.0))
                .bind(&account.username)
                .bind(&account.email)
                .bind(i32::from(account.threshold.n))
                .bind(i32::from(account.threshold.t))
                .bind(AccountStatus::Pending.as_str())
                .bind(ts(account.created_at))
                .execute(&self.pool)
                .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let e = StoreError::from(e);
                        if e.is_unique_violation() {
                            let field = taken_field(self, account).await?;
                            Err(StoreError::Conflict(format!("{field} is taken")))
                        } else {
                            Err(e)
                        }
                    }
                }
            }

            async fn delete_unstarted_account(&self, id: AccountId) -> Result<(), StoreError> {
                sqlx::query(
                    "DELETE FROM accounts WHERE id = $1 AND status = 'pending'
                         AND keygen_session_id IS NULL",
                )
                .bind(uid(&id.0))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"
                )))
                .bind(uid(&id.0))
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(account_from_row).transpose()
            }

            async fn list_accounts(
                &self,
                status: Option<AccountStatus>,
                limit: u32,
                offset: u64,
            ) -> Result<(Vec<AccountRecord>, u64), StoreError> {
                let status = status.map(AccountStatus::as_str);
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts
                     WHERE ($1 IS NULL OR status = $1)
                     ORDER BY created_at, id LIMIT $2 OFFSET $3"
                )))
                .bind(status)
                .bind(limit_to_db(limit))
                .bind(offset_to_db(offset))
                .fetch_all(&self.pool)
                .await?;
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM accounts WHERE ($1 IS NULL OR status = $1)",
                )
                .bind(status)
                .fetch_one(&self.pool)
                .await?;
                let accounts = rows.iter().map(account_from_row).collect::<Result<_, _>>()?;
                Ok((accounts, count_from_db(total)))
            }

            async fn shares(
                &self,
                account: AccountId,
                include_inactive: bool,
            ) -> Result<Vec<ShareRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, account_id, share_type, party_id, party_index, device_type,
                         storage_location, is_active, created_at, session_id
                     FROM account_shares
                     WHERE account_id = $1 AND (is_active OR $2)
                     ORDER BY party_index, is_active DESC, created_at",
                )
                .bind(uid(&account.0))
                .bind(include_inactive)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(share_from_row).collect()
            }

            async fn transition_account(
                &self,
                id: AccountId,
                from: &[AccountStatus],
                to: AccountStatus,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let mut tx = begin_write(&self.pool).await?;
                let current: Option<String> =
                    sqlx::query_scalar("SELECT status FROM accounts WHERE id = $1")
                        .bind(uid(&id.0))
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(current) = current else {
                    return Ok(false);
                };
                let current: AccountStatus = current.parse()?;
                if !from.contains(&current) {
                    return Ok(false);
                }
                let changed = sqlx::query(
                    "UPDATE accounts SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4",
                )
                .bind(uid(&id.0))
                .bind(to.as_str())
                .bind(ts(now))
                .bind(current.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(changed == 1)
            }

            async fn count_accounts_by_status(
                &self,
            ) -> Result<Vec<(AccountStatus, u64)>, StoreError> {
                let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM accounts GROUP BY status")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let status: String = row.try_get("status")?;
                        let n: i64 = row.try_get("n")?;
                        Ok((status.parse()?, count_from_db(n)))
                    })
                    .collect()
            }

            async fn record_session(&self, session: &NewAccountSession) -> Result<(), StoreError> {
                let mut tx = begin_write(&self.pool).await?;
                let recovery = session.recovery.as_ref();
                sqlx::query(
                    "INSERT INTO account_sessions (session_id, account_id, session_type, status,
                         lost_party_id, new_party_id, new_device_type, failure_reason,
                         blamed_party, created_at, updated_at)
                     VALUES ($1, $2, $3, 'pending', $4, $5, $6, NULL, NULL, $7, $7)",
                )
                .bind(uid(&session.session_id.0))
                .bind(uid(&session.account_id.0))
                .bind(session.session_type.as_str())
                .bind(recovery.map(|r| r.lost_party_id.as_str()))
                .bind(recovery.map(|r| r.new_party_id.as_str()))
                .bind(recovery.and_then(|r| r.new_device_type.as_deref()))
                .bind(ts(session.created_at))
                .execute(&mut *tx)
                .await?;
                if session.session_type == SessionType::Keygen {
                    sqlx::query(
                        "UPDATE accounts SET keygen_session_id = $2, updated_at = $3 WHERE id = $1",
                    )
                    .bind(uid(&session.account_id.0))
                    .bind(uid(&session.session_id.0))
                    .bind(ts(session.created_at))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_session(
                &self,
                session_id: SessionId,
            ) -> Result<Option<AccountSessionRecord>, StoreError> {
                let row = sqlx::query("SELECT * FROM account_sessions WHERE session_id = $1")
                    .bind(uid(&session_id.0))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(session_from_row).transpose()
            }

            async fn pending_sessions(
                &self,
                before: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<AccountSessionRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM account_sessions WHERE status = 'pending' AND created_at < $1
                     ORDER BY created_at LIMIT $2",
                )
                .bind(ts(before))
                .bind(limit_to_db(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(session_from_row).collect()
            }

            async fn pending_sessions_of_account(
                &self,
                account_id: AccountId,
            ) -> Result<Vec<AccountSessionRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT * FROM account_sessions WHERE account_id = $1 AND status = 'pending'
                     ORDER BY created_at",
                )
                .bind(uid(&account_id.0))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(session_from_row).collect()
            }

            async fn finish_session(
                &self,
                session_id: SessionId,
                outcome: &SessionOutcome,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let (reason, blamed) = match outcome {
                    SessionOutcome::Failed { reason, blamed_party } => {
                        (Some(reason.as_str()), blamed_party.as_ref().map(|p| p.as_str()))
                    }
                    SessionOutcome::Expired { reason } => (Some(reason.as_str()), None),
                    _ => (None, None),
                };
                let mut tx = begin_write(&self.pool).await?;
                let sid = uid(&session_id.0);
                let changed = sqlx::query(
                    "UPDATE account_sessions
                     SET status = $2, failure_reason = $3, blamed_party = $4, updated_at = $5
                     WHERE session_id = $1 AND status = 'pending'",
                )
                .bind(&sid)
                .bind(outcome.status().as_str())
                .bind(reason)
                .bind(blamed)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Ok(false);
                }
                let row = sqlx::query("SELECT * FROM account_sessions WHERE session_id = $1")
                    .bind(&sid)
                    .fetch_one(&mut *tx)
                    .await?;
                let session = session_from_row(&row)?;
                let account = uid(&session.account_id.0);
                match (session.session_type, outcome) {
                    (SessionType::Keygen, SessionOutcome::KeygenCompleted { public_key, shares }) => {
                        sqlx::query(
                            "UPDATE accounts SET status = 'active', public_key = $2,
                                 failure_reason = NULL, updated_at = $3, ethereum_address = $4
                             WHERE id = $1 AND status = 'pending'",
                        )
                        .bind(&account)
                        .bind(public_key.as_slice())
                        .bind(ts(now))
                        .bind(ethereum_address(public_key))
                        .execute(&mut *tx)
                        .await?;
                        for share in shares {
                            insert_share(&mut tx, &account, share, &sid, now).await?;
                        }
                    }
                    (SessionType::Keygen, SessionOutcome::Failed { reason, .. })
                    | (SessionType::Keygen, SessionOutcome::Expired { reason }) => {
                        sqlx::query(
                            "UPDATE accounts SET status = 'failed', failure_reason = $2,
                                 updated_at = $3
                             WHERE id = $1 AND status = 'pending'",
                        )
                        .bind(&account)
                        .bind(reason.as_str())
                        .bind(ts(now))
                        .execute(&mut *tx)
                        .await?;
                    }
                    (SessionType::Recovery, SessionOutcome::RecoveryCompleted { new_share }) => {
                        if let Some(plan) = &session.recovery {
                            sqlx::query(
                                "UPDATE account_shares SET is_active = $3
                                 WHERE account_id = $1 AND party_id = $2 AND is_active",
                            )
                            .bind(&account)
                            .bind(plan.lost_party_id.as_str())
                            .bind(false)
                            .execute(&mut *tx)
                            .await?;
                        }
                        insert_share(&mut tx, &account, new_share, &sid, now).await?;
                        sqlx::query("UPDATE accounts SET updated_at = $2 WHERE id = $1")
                            .bind(&account)
                            .bind(ts(now))
                            .execute(&mut *tx)
                            .await?;
                    }
                    _ => {}
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn insert_api_key(&self, key: &NewApiKey) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO api_keys (id, name, key_hash, prefix, scope, created_at,
                         expires_at, revoked_at, last_used_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)",
                )
                .bind(uid(&key.id))
                .bind(&key.name)
                .bind(key.key_hash.as_slice())
                .bind(&key.prefix)
                .bind(key.scope.as_str())
                .bind(ts(key.created_at))
                .bind(key.expires_at.map(ts))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn find_api_key_by_hash(
                &self,
                hash: &[u8; 32],
            ) -> Result<Option<ApiKeyRecord>, StoreError> {
                let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1")
                    .bind(hash.as_slice())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(api_key_from_row).transpose()
            }

            async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
                let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(api_key_from_row).collect()
            }

            async fn revoke_api_key(
                &self,
                id: uuid::Uuid,
                now: DateTime<Utc>,
            ) -> Result<Option<ApiKeyRecord>, StoreError> {
                sqlx::query(
                    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                )
                .bind(uid(&id))
                .bind(ts(now))
                .execute(&self.pool)
                .await?;
                let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
                    .bind(uid(&id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(api_key_from_row).transpose()
            }

            async fn touch_api_key(
                &self,
                id: uuid::Uuid,
                now: DateTime<Utc>,
                resolution: TimeDelta,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE api_keys SET last_used_at = $2
                     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
                )
                .bind(uid(&id))
                .bind(ts(now))
                .bind(ts(now - resolution))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn claim_idempotency_key(
                &self,
                key: &IdempotencyKey,
                request_hash: &[u8; 32],
                now: DateTime<Utc>,
                stale_after: TimeDelta,
            ) -> Result<IdempotencyClaim, StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO idempotency_keys (api_key_id, route, idempotency_key,
                         request_hash, response_status, response_body, created_at)
                     VALUES ($1, $2, $3, $4, NULL, NULL, $5)
                     ON CONFLICT DO NOTHING",
                )
                .bind(&key.api_key_id)
                .bind(&key.route)
                .bind(&key.key)
                .bind(request_hash.as_slice())
                .bind(ts(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(IdempotencyClaim::Claimed);
                }
                let row = sqlx::query(
                    "SELECT request_hash, response_status, response_body, created_at
                     FROM idempotency_keys
                     WHERE api_key_id = $1 AND route = $2 AND idempotency_key = $3",
                )
                .bind(&key.api_key_id)
                .bind(&key.route)
                .bind(&key.key)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else {
                    // Released between our insert and read: try once more from the start.
                    return Err(StoreError::Conflict("idempotency key changed hands".into()));
                };
                let stored_hash = hash_from_db(row.try_get("request_hash")?)?;
                let status: Option<i32> = row.try_get("response_status")?;
                let body: Option<String> = row.try_get("response_body")?;
                let created: Ts = row.try_get("created_at")?;
                if let (Some(status), Some(body)) = (status, body) {
                    return Ok(IdempotencyClaim::Completed {
                        request_hash: stored_hash,
                        status: u16_from_db(status, "response_status")?,
                        body,
                    });
                }
                if from_ts(created)? < now - stale_after {
                    let taken = sqlx::query(
                        "UPDATE idempotency_keys SET request_hash = $4, created_at = $5
                         WHERE api_key_id = $1 AND route = $2 AND idempotency_key = $3
                             AND response_status IS NULL AND created_at = $6",
                    )
                    .bind(&key.api_key_id)
                    .bind(&key.route)
                    .bind(&key.key)
                    .bind(request_hash.as_slice())
                    .bind(ts(now))
                    .bind(created)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    if taken == 1 {
                        return Ok(IdempotencyClaim::Claimed);
                    }
                }
                Ok(IdempotencyClaim::InProgress { request_hash: stored_hash })
            }

            async fn complete_idempotency_key(
                &self,
                key: &IdempotencyKey,
                status: u16,
                body: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE idempotency_keys SET response_status = $4, response_body = $5
                     WHERE api_key_id = $1 AND route = $2 AND idempotency_key = $3",
                )
                .bind(&key.api_key_id)
                .bind(&key.route)
                .bind(&key.key)
                .bind(i32::from(status))
                .bind(body)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn release_idempotency_key(&self, key: &IdempotencyKey) -> Result<(), StoreError> {
                sqlx::query(
                    "DELETE FROM idempotency_keys
                     WHERE api_key_id = $1 AND route = $2 AND idempotency_key = $3
                         AND response_status IS NULL",
                )
                .bind(&key.api_key_id)
                .bind(&key.route)
                .bind(&key.key)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn purge_idempotency_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
                Ok(sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(ts(before))
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            async fn insert_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
                let id: i64 = sqlx::query_scalar(concat!(
                    "INSERT INTO mpc_audit_logs (session_id, account_id, operation, user_id,
                         ip_address, user_agent, request_body, response_status, created_at)
                     VALUES ($1, $2, $3, $4, ",
                    inet!("$5"),
                    ", $6, $7, $8, $9) RETURNING id"
                ))
                .bind(entry.session_id.map(|s| uid(&s.0)))
                .bind(entry.account_id.map(|a| uid(&a.0)))
                .bind(&entry.operation)
                .bind(&entry.user_id)
                .bind(entry.ip_address.map(|ip| ip.to_string()))
                .bind(&entry.user_agent)
                .bind(entry.request_body.as_ref().map(Json))
                .bind(entry.response_status.map(i32::from))
                .bind(ts(entry.created_at))
                .fetch_one(&self.pool)
                .await?;
                Ok(id)
            }

            async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT id, session_id, account_id, operation, user_id, ",
                    inet_text!("ip_address"),
                    " AS ip_address, user_agent, request_body, response_status, created_at
                     FROM mpc_audit_logs
                     WHERE ($1 IS NULL OR response_status >= $1)
                       AND ($2 IS NULL OR response_status <= $2)
                       AND ($3 IS NULL OR operation = $3)
                       AND ($4 IS NULL OR session_id = $4)
                       AND ($5 IS NULL OR account_id = $5)
                       AND ($6 IS NULL OR created_at >= $6)
                       AND ($7 IS NULL OR created_at <= $7)
                       AND ($8 IS NULL OR id < $8)
                     ORDER BY id DESC LIMIT $9"
                ))
                .bind(filter.status_min.map(i32::from))
                .bind(filter.status_max.map(i32::from))
                .bind(&filter.operation)
                .bind(filter.session_id.map(|s| uid(&s.0)))
                .bind(filter.account_id.map(|a| uid(&a.0)))
                .bind(filter.since.map(ts))
                .bind(filter.until.map(ts))
                .bind(filter.before_id)
                .bind(limit_to_db(filter.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(audit_from_row).collect()
            }

            async fn search_accounts(
                &self,
                search: &AccountSearch,
            ) -> Result<(Vec<AccountRecord>, u64), StoreError> {
                const WHERE: &str = "WHERE ($1 IS NULL OR status = $1)
                       AND ($2 = FALSE OR id = $3 OR LOWER(username) LIKE $4 ESCAPE '\\'
                            OR LOWER(email) LIKE $4 ESCAPE '\\' OR ethereum_address = $5)";
                let text = TextMatch::new(search.text.as_deref());
                let status = search.status.map(AccountStatus::as_str);
                let id = text.id.as_ref().map(uid);
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts {WHERE}
                     ORDER BY created_at, id LIMIT $6 OFFSET $7"
                )))
                .bind(status)
                .bind(text.any)
                .bind(&id)
                .bind(&text.pattern)
                .bind(&text.address)
                .bind(limit_to_db(search.limit))
                .bind(offset_to_db(search.offset))
                .fetch_all(&self.pool)
                .await?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM accounts {WHERE}"
                )))
                .bind(status)
                .bind(text.any)
                .bind(&id)
                .bind(&text.pattern)
                .bind(&text.address)
                .fetch_one(&self.pool)
                .await?;
                let accounts = rows.iter().map(account_from_row).collect::<Result<_, _>>()?;
                Ok((accounts, count_from_db(total)))
            }

            async fn list_sessions(
                &self,
                filter: &SessionFilter,
            ) -> Result<(Vec<AccountSessionRecord>, u64), StoreError> {
                const WHERE: &str = "WHERE ($1 IS NULL OR session_type = $1)
                       AND ($2 IS NULL OR status = $2)
                       AND ($3 IS NULL OR account_id = $3)
                       AND ($4 IS NULL OR created_at >= $4)
                       AND ($5 IS NULL OR created_at <= $5)";
                let ty = filter.session_type.map(|t| t.as_str());
                let status = filter.status.map(|s| s.as_str());
                let account = filter.account_id.map(|a| uid(&a.0));
                let since = filter.since.map(ts);
                let until = filter.until.map(ts);
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM account_sessions {WHERE}
                     ORDER BY created_at DESC, session_id DESC LIMIT $6 OFFSET $7"
                )))
                .bind(ty)
                .bind(status)
                .bind(&account)
                .bind(since)
                .bind(until)
                .bind(limit_to_db(filter.limit))
                .bind(offset_to_db(filter.offset))
                .fetch_all(&self.pool)
                .await?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM account_sessions {WHERE}"
                )))
                .bind(ty)
                .bind(status)
                .bind(&account)
                .bind(since)
                .bind(until)
                .fetch_one(&self.pool)
                .await?;
                let sessions = rows.iter().map(session_from_row).collect::<Result<_, _>>()?;
                Ok((sessions, count_from_db(total)))
            }

            async fn count_sessions(
                &self,
                since: DateTime<Utc>,
            ) -> Result<Vec<SessionCount>, StoreError> {
                let rows = sqlx::query(
                    "SELECT session_type, status, COUNT(*) AS n FROM account_sessions
                     WHERE created_at >= $1 GROUP BY session_type, status
                     ORDER BY session_type, status",
                )
                .bind(ts(since))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let ty: String = row.try_get("session_type")?;
                        let status: String = row.try_get("status")?;
                        let n: i64 = row.try_get("n")?;
                        Ok(SessionCount {
                            session_type: ty
                                .parse::<SessionType>()
                                .map_err(|_| StoreError::Corrupt(format!("session type {ty:?}")))?,
                            status: status.parse()?,
                            count: count_from_db(n),
                        })
                    })
                    .collect()
            }
        }
    };
}
