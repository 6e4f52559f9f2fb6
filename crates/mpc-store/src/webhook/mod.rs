//! Storage of the Account Service's webhooks (issue 13 §3): the endpoints an API key registered,
//! which key started which session, and the outbox of deliveries with their attempts.
//!
//! A delivery is a row before anything is sent (at least once, across restarts). Workers claim
//! due rows with a lease (`lease_owner`, `lease_until`): on PostgreSQL with `FOR UPDATE SKIP
//! LOCKED`, on SQLite under the write lock, so several replicas share the outbox without sending
//! one delivery twice at once; a worker that dies leaves its lease to expire and the row is
//! claimed again. An attempt is recorded only by the lease holder.
//!
//! The tables live in the Account Service's migrations (`account/*/0004_webhooks.sql`); the SQL
//! is written once (`sql.rs`) and stamped out per backend, as for the account store.

#[macro_use]
mod sql;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mpc_proto::{AccountId, SessionId};

use crate::db::Db;
use crate::error::StoreError;

mod postgres {
    use crate::dialect::postgres::*;
    webhook_store_impl!(
        /// [`super::WebhookStore`] on a PostgreSQL pool.
        PgWebhookStore
    );
}

mod sqlite {
    use crate::dialect::sqlite::*;
    webhook_store_impl!(
        /// [`super::WebhookStore`] on a SQLite pool.
        SqliteWebhookStore
    );
}

pub use postgres::PgWebhookStore;
pub use sqlite::SqliteWebhookStore;

/// Opens the webhook store on `db`, whose account migrations have run (`account::open`).
pub fn open(db: &Db) -> Arc<dyn WebhookStore> {
    match db {
        Db::Postgres(pool) => Arc::new(PgWebhookStore::new(pool.clone())),
        Db::Sqlite(pool) => Arc::new(SqliteWebhookStore::new(pool.clone())),
    }
}

/// A webhook to register. `secret_sealed` is the secret encrypted by the service.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub id: uuid::Uuid,
    pub api_key_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

pub type WebhookRecord = NewWebhook;

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet answered with a 2xx; due at `next_attempt_at`.
    Pending,
    /// A 2xx answer came.
    Delivered,
    /// Retried for the whole retry window without a 2xx: given up.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Corrupt(format!("delivery status {other:?}"))),
        }
    }
}

/// One outcome to enqueue for every webhook of the session's key subscribed to `event`.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub session_id: SessionId,
    pub account_id: AccountId,
    pub event: String,
    pub created_at: DateTime<Utc>,
}

/// A delivery claimed by a worker: what to send where.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: uuid::Uuid,
    pub webhook_id: uuid::Uuid,
    pub url: String,
    pub secret_sealed: Vec<u8>,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// One attempt, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status; `None` when it did not answer.
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// A delivery and its attempts, for `GET /api/v1/webhooks/{id}/deliveries`.
#[derive(Clone, Debug)]
pub struct DeliveryRecord {
    pub id: uuid::Uuid,
    pub webhook_id: uuid::Uuid,
    pub event: String,
    pub session_id: SessionId,
    pub account_id: AccountId,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: Vec<AttemptRecord>,
}

/// What became of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    Delivered,
    /// Try again at this time.
    Retry(DateTime<Utc>),
    /// The retry window is over.
    GiveUp,
}

/// Webhook storage, implemented for PostgreSQL and SQLite.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Registers `webhook` unless its key has `max_per_key` already; returns whether it did.
    async fn create_webhook(
        &self,
        webhook: &NewWebhook,
        max_per_key: u32,
    ) -> Result<bool, StoreError>;

    /// The key's webhooks, oldest first.
    async fn list_webhooks(&self, api_key_id: &str) -> Result<Vec<WebhookRecord>, StoreError>;

    /// The webhook if it belongs to `api_key_id`.
    async fn get_webhook(
        &self,
        id: uuid::Uuid,
        api_key_id: &str,
    ) -> Result<Option<WebhookRecord>, StoreError>;

    /// Removes the key's webhook and its deliveries; returns whether there was one.
    async fn delete_webhook(&self, id: uuid::Uuid, api_key_id: &str) -> Result<bool, StoreError>;

    /// Records that `api_key_id` started `session_id` (before the session is recorded, so that
    /// its outcome always finds its owner).
    async fn set_session_owner(
        &self,
        session_id: SessionId,
        api_key_id: &str,
    ) -> Result<(), StoreError>;

    async fn session_owner(&self, session_id: SessionId) -> Result<Option<String>, StoreError>;

    /// Writes one delivery for each webhook of `api_key_id` subscribed to `event.event`; the
    /// body comes from `body(event_id)`. A (webhook, session, event) enqueued before is not
    /// enqueued again. Returns the number of new deliveries.
    async fn enqueue(
        &self,
        api_key_id: &str,
        event: &NewEvent,
        body: &(dyn Fn(uuid::Uuid) -> String + Send + Sync),
    ) -> Result<u64, StoreError>;

    /// Claims up to `limit` pending deliveries due at `now` whose lease is free, for `owner`
    /// until `lease_until`.
    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    /// Records an attempt by the lease holder `owner` and what follows; returns `false`, and
    /// records nothing, when `owner` no longer holds the lease.
    async fn finish_attempt(
        &self,
        delivery_id: uuid::Uuid,
        owner: &str,
        attempt: &AttemptRecord,
        result: AttemptResult,
    ) -> Result<bool, StoreError>;

    /// The webhook's deliveries, newest first, each with its attempts.
    async fn deliveries(
        &self,
        webhook_id: uuid::Uuid,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
}

pub(crate) fn events_to_db(events: &[String]) -> String {
    format!(",{},", events.join(","))
}

pub(crate) fn events_from_db(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn status_from_db(s: &str) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::parse(s)
}
