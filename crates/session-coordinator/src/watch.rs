//! WatchSession: the current state, then every change, until the session ends.
//!
//! A watcher wakes on the store's change feed (PostgreSQL NOTIFY, so changes made through another
//! replica count too) and also re-reads every `poll` interval, which covers notifications lost
//! while a database connection was re-established.

use std::sync::Arc;
use std::time::Duration;

use mpc_proto::{ApiError, SessionId};
use mpc_service::Shutdown;
use mpc_store::coordinator::SessionRecord;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::service::Coordinator;

/// Watchers that fall this far behind their client are dropped (the client reconnects).
const WATCH_BUFFER: usize = 16;

pub type WatchStream = ReceiverStream<Result<SessionRecord, ApiError>>;

/// Starts watching `id`. Fails at once when the session does not exist.
pub async fn watch(
    coordinator: Arc<Coordinator>,
    id: SessionId,
    poll: Duration,
    shutdown: Shutdown,
) -> Result<WatchStream, ApiError> {
    // Subscribe before the first read, so no change between the two is missed.
    let changes = coordinator.store.subscribe_changes();
    let first = coordinator.get(id).await?;
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    tokio::spawn(run(coordinator, first, changes, tx, poll, shutdown));
    Ok(ReceiverStream::new(rx))
}

async fn run(
    coordinator: Arc<Coordinator>,
    first: SessionRecord,
    changes: broadcast::Receiver<SessionId>,
    tx: mpsc::Sender<Result<SessionRecord, ApiError>>,
    poll: Duration,
    shutdown: Shutdown,
) {
    let id = first.id;
    let mut last = first;
    if tx.send(Ok(last.clone())).await.is_err() || last.status.is_terminal() {
        return;
    }
    let mut changes = Some(changes);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tx.closed() => return,
            _ = tick.tick() => {}
            changed = next_change(&mut changes) => match changed {
                Some(changed) if changed != id => continue,
                _ => {}
            },
        }
        match coordinator.get(id).await {
            Ok(session) if session != last => {
                let terminal = session.status.is_terminal();
                if tx.send(Ok(session.clone())).await.is_err() || terminal {
                    return;
                }
                last = session;
            }
            Ok(_) => {}
            // Transient (database briefly away): the next tick tries again.
            Err(e) => tracing::debug!(session_id = %id, error = %e, "watch cannot read session"),
        }
    }
}

/// The next changed session id; `None` means "look anyway" (missed notifications).
async fn next_change(changes: &mut Option<broadcast::Receiver<SessionId>>) -> Option<SessionId> {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(id) => Some(id),
        Err(broadcast::error::RecvError::Lagged(_)) => None,
        Err(broadcast::error::RecvError::Closed) => {
            // The feed is gone: polling alone from now on.
            *changes = None;
            None
        }
    }
}
