//! The webhook store's SQL, written once and stamped out for each backend by
//! [`webhook_store_impl!`] in `mod.rs` (each with its `crate::dialect` in scope).

macro_rules! webhook_store_impl {
    ($(#[$doc:meta])* $store:ident) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use mpc_proto::{AccountId, SessionId};
        use sqlx::Row;

        use super::{
            AttemptRecord, AttemptResult, DeliveryRecord, DeliveryStatus, DueDelivery, NewEvent,
            NewWebhook, WebhookRecord, WebhookStore, events_from_db, events_to_db,
            status_from_db,
        };
        use crate::error::StoreError;

        crate::dialect::store_on_pool!($(#[$doc])* $store);

        fn webhook_from_row(row: &Row_) -> Result<WebhookRecord, StoreError> {
            let events: String = row.try_get("events")?;
            Ok(WebhookRecord {
                id: from_uid(row.try_get("id")?)?,
                api_key_id: row.try_get("api_key_id")?,
                url: row.try_get("url")?,
                events: events_from_db(&events),
                secret_sealed: row.try_get("secret_sealed")?,
                created_at: from_ts(row.try_get("created_at")?)?,
            })
        }

        fn u32_from_db(v: i32) -> u32 {
            u32::try_from(v).unwrap_or(0)
        }


        #[async_trait]
        impl WebhookStore for $store {
            async fn create_webhook(
                &self,
                webhook: &NewWebhook,
                max_per_key: u32,
            ) -> Result<bool, StoreError> {
                let mut tx = begin_write(&self.pool).await?;
                // Two registrations at once must not both pass the cap.
                lock_key(&mut tx, &format!("webhooks:{}", webhook.api_key_id)).await?;
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE api_key_id = $1")
                    .bind(&webhook.api_key_id)
                    .fetch_one(&mut *tx)
                    .await?;
                if n >= i64::from(max_per_key) {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO webhooks (id, api_key_id, url, events, secret_sealed, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(uid(&webhook.id))
                .bind(&webhook.api_key_id)
                .bind(&webhook.url)
                .bind(events_to_db(&webhook.events))
                .bind(&webhook.secret_sealed)
                .bind(ts(webhook.created_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn list_webhooks(
                &self,
                api_key_id: &str,
            ) -> Result<Vec<WebhookRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, api_key_id, url, events, secret_sealed, created_at
                     FROM webhooks WHERE api_key_id = $1 ORDER BY created_at, id",
                )
                .bind(api_key_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(webhook_from_row).collect()
            }

            async fn get_webhook(
                &self,
                id: uuid::Uuid,
                api_key_id: &str,
            ) -> Result<Option<WebhookRecord>, StoreError> {
                let row = sqlx::query(
                    "SELECT id, api_key_id, url, events, secret_sealed, created_at
                     FROM webhooks WHERE id = $1 AND api_key_id = $2",
                )
                .bind(uid(&id))
                .bind(api_key_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(webhook_from_row).transpose()
            }

            async fn delete_webhook(
                &self,
                id: uuid::Uuid,
                api_key_id: &str,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND api_key_id = $2")
                    .bind(uid(&id))
                    .bind(api_key_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_session_owner(
                &self,
                session_id: SessionId,
                api_key_id: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO webhook_session_owners (session_id, api_key_id) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                )
                .bind(uid(&session_id.0))
                .bind(api_key_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn session_owner(
                &self,
                session_id: SessionId,
            ) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT api_key_id FROM webhook_session_owners WHERE session_id = $1",
                )
                .bind(uid(&session_id.0))
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn enqueue(
                &self,
                api_key_id: &str,
                event: &NewEvent,
                body: &(dyn Fn(uuid::Uuid) -> String + Send + Sync),
            ) -> Result<u64, StoreError> {
                let mut tx = begin_write(&self.pool).await?;
                let pattern = format!("%,{},%", event.event);
                let hooks: Vec<Uid> = sqlx::query_scalar(
                    "SELECT id FROM webhooks WHERE api_key_id = $1 AND events LIKE $2",
                )
                .bind(api_key_id)
                .bind(&pattern)
                .fetch_all(&mut *tx)
                .await?;
                let mut added = 0;
                for hook in hooks {
                    let id = uuid::Uuid::new_v4();
                    let done = sqlx::query(
                        "INSERT INTO webhook_deliveries (id, webhook_id, event, session_id,
                             account_id, body, status, attempts, next_attempt_at, created_at,
                             updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)
                         ON CONFLICT (webhook_id, session_id, event) DO NOTHING",
                    )
                    .bind(uid(&id))
                    .bind(hook)
                    .bind(&event.event)
                    .bind(uid(&event.session_id.0))
                    .bind(uid(&event.account_id.0))
                    .bind(body(id))
                    .bind(ts(event.created_at))
                    .execute(&mut *tx)
                    .await?;
                    added += done.rows_affected();
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn claim_due(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<DueDelivery>, StoreError> {
                let mut tx = begin_write(&self.pool).await?;
                let ids: Vec<Uid> = sqlx::query_scalar(concat!(
                    "SELECT id FROM webhook_deliveries
                     WHERE status = 'pending' AND next_attempt_at <= $1
                       AND (lease_until IS NULL OR lease_until <= $1)
                     ORDER BY next_attempt_at, id LIMIT $2",
                    skip_locked!()
                ))
                .bind(ts(now))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                let mut due = Vec::with_capacity(ids.len());
                for id in ids {
                    let row = sqlx::query(
                        "UPDATE webhook_deliveries SET lease_owner = $2, lease_until = $3
                         WHERE id = $1
                         RETURNING id, webhook_id, body, attempts, created_at",
                    )
                    .bind(&id)
                    .bind(owner)
                    .bind(ts(lease_until))
                    .fetch_one(&mut *tx)
                    .await?;
                    let webhook_id: Uid = row.try_get("webhook_id")?;
                    let hook = sqlx::query("SELECT url, secret_sealed FROM webhooks WHERE id = $1")
                        .bind(&webhook_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    due.push(DueDelivery {
                        id: from_uid(id)?,
                        webhook_id: from_uid(webhook_id)?,
                        url: hook.try_get("url")?,
                        secret_sealed: hook.try_get("secret_sealed")?,
                        body: row.try_get("body")?,
                        attempts: u32_from_db(row.try_get("attempts")?),
                        created_at: from_ts(row.try_get("created_at")?)?,
                    });
                }
                tx.commit().await?;
                Ok(due)
            }

            async fn finish_attempt(
                &self,
                delivery_id: uuid::Uuid,
                owner: &str,
                attempt: &AttemptRecord,
                result: AttemptResult,
            ) -> Result<bool, StoreError> {
                let (status, next) = match result {
                    AttemptResult::Delivered => (DeliveryStatus::Delivered, attempt.attempted_at),
                    AttemptResult::Retry(at) => (DeliveryStatus::Pending, at),
                    AttemptResult::GiveUp => (DeliveryStatus::Failed, attempt.attempted_at),
                };
                let mut tx = begin_write(&self.pool).await?;
                let attempts: Option<i32> = sqlx::query_scalar(
                    "UPDATE webhook_deliveries
                     SET attempts = attempts + 1, status = $3, next_attempt_at = $4,
                         lease_owner = NULL, lease_until = NULL, updated_at = $5
                     WHERE id = $1 AND lease_owner = $2 AND status = 'pending'
                     RETURNING attempts",
                )
                .bind(uid(&delivery_id))
                .bind(owner)
                .bind(status.as_str())
                .bind(ts(next))
                .bind(ts(attempt.attempted_at))
                .fetch_optional(&mut *tx)
                .await?;
                let Some(n) = attempts else {
                    return Ok(false);
                };
                sqlx::query(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at,
                         status_code, error, duration_ms)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(uid(&delivery_id))
                .bind(n)
                .bind(ts(attempt.attempted_at))
                .bind(attempt.status_code.map(i32::from))
                .bind(attempt.error.as_deref())
                .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn deliveries(
                &self,
                webhook_id: uuid::Uuid,
                limit: u32,
            ) -> Result<Vec<DeliveryRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT id, webhook_id, event, session_id, account_id, status,
                         next_attempt_at, created_at, updated_at
                     FROM webhook_deliveries WHERE webhook_id = $1
                     ORDER BY created_at DESC, id LIMIT $2",
                )
                .bind(uid(&webhook_id))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    let id: Uid = row.try_get("id")?;
                    let status = status_from_db(&row.try_get::<String, _>("status")?)?;
                    let attempts = sqlx::query(
                        "SELECT attempt, attempted_at, status_code, error, duration_ms
                         FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt",
                    )
                    .bind(&id)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|a| {
                        Ok(AttemptRecord {
                            attempt: u32_from_db(a.try_get("attempt")?),
                            attempted_at: from_ts(a.try_get("attempted_at")?)?,
                            status_code: a
                                .try_get::<Option<i32>, _>("status_code")?
                                .and_then(|c| u16::try_from(c).ok()),
                            error: a.try_get("error")?,
                            duration_ms: u64::try_from(a.try_get::<i64, _>("duration_ms")?)
                                .unwrap_or(0),
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                    out.push(DeliveryRecord {
                        id: from_uid(id)?,
                        webhook_id: from_uid(row.try_get("webhook_id")?)?,
                        event: row.try_get("event")?,
                        session_id: SessionId(from_uid(row.try_get("session_id")?)?),
                        account_id: AccountId(from_uid(row.try_get("account_id")?)?),
                        next_attempt_at: (status == DeliveryStatus::Pending)
                            .then(|| from_ts(row.try_get("next_attempt_at")?))
                            .transpose()?,
                        status,
                        attempts,
                        created_at: from_ts(row.try_get("created_at")?)?,
                        updated_at: from_ts(row.try_get("updated_at")?)?,
                    });
                }
                Ok(out)
            }
        }

    };
}
