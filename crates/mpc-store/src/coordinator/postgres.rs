//! The coordinator store on PostgreSQL. Changes are announced with `NOTIFY` on a channel named
//! after the schema, so replicas that share the schema wake each other's watchers.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::AbortHandle;

use crate::dialect::postgres::*;

/// PostgreSQL identifiers (and so `LISTEN` channels) are at most 63 bytes.
const MAX_CHANNEL_LEN: usize = 63;

pub struct PgCoordinatorStore {
    pool: Pool,
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
    pub async fn open(pool: Pool) -> Result<Self, StoreError> {
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        let mut channel = format!("mpc_coordinator_{schema}");
        channel.truncate(MAX_CHANNEL_LEN);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(&channel).await?;
        let (changes, _) = broadcast::channel(super::CHANGE_CHANNEL_CAPACITY);
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

    /// Delivered when the transaction commits, and only then; this store's own listener hears
    /// it too.
    async fn announce(&self, tx: &mut Tx, id: SessionId) -> Result<(), StoreError> {
        notify(tx, &self.channel, &id.to_string()).await
    }

    fn changed(&self, _id: SessionId) {}

    fn channel(&self) -> &str {
        &self.channel
    }
}

/// Forwards notifications to the broadcast channel until the pool closes or the store is dropped.
async fn listen(
    mut listener: PgListener,
    pool: Pool,
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

coordinator_store_impl!(PgCoordinatorStore);
