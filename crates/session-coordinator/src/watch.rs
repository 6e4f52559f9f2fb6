//! WatchSession: the current state, then every change, until the session ends.
//!
//! A watcher wakes on the store's change feed (PostgreSQL NOTIFY, so changes made through another
//! replica count too) and also re-reads every `poll` interval, which covers notifications lost
//! while a database connection was re-established.
//!
//! A session has several watchers (each party, the Server Party API, …) and one change wakes
//! them all: they share one read of the session instead of each reading it ([`SharedReads`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mpc_proto::{ApiError, SessionId};
use mpc_service::Shutdown;
use mpc_store::coordinator::{SessionChanged, SessionRecord};
use tokio::sync::{OnceCell, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::service::Coordinator;

/// Watchers that fall this far behind their client are dropped (the client reconnects).
const WATCH_BUFFER: usize = 16;
/// Forgotten reads are pruned from [`SharedReads`] after this many new ones.
const PRUNE_EVERY: usize = 256;

type ReadResult = Result<SessionRecord, ApiError>;

/// One read of a session, which every watcher woken before it began may take.
struct SharedRead {
    began: Instant,
    result: OnceCell<ReadResult>,
}

/// The latest read of each watched session. A read that began after a change was noticed saw
/// that change (it was committed before it was noticed), so every watcher woken by the change
/// can take that read instead of reading again. Watchers hold the reads they took; the map holds them weakly.
#[derive(Default)]
pub struct SharedReads {
    reads: Mutex<(HashMap<SessionId, Weak<SharedRead>>, usize)>,
}

impl SharedReads {
    /// The session as read (by `read_session`, or by another watcher) at some moment after
    /// `woke`.
    async fn read<F>(
        &self,
        id: SessionId,
        woke: Instant,
        read_session: impl FnOnce() -> F,
    ) -> (Arc<SharedRead>, ReadResult)
    where
        F: Future<Output = ReadResult>,
    {
        let shared = {
            // Nothing in the map can be left half-updated by a panic: use it as is.
            let mut guard = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            let (reads, created) = &mut *guard;
            match reads.get(&id).and_then(Weak::upgrade) {
                Some(shared) if shared.began >= woke => shared,
                _ => {
                    let shared = Arc::new(SharedRead {
                        began: Instant::now(),
                        result: OnceCell::new(),
                    });
                    reads.insert(id, Arc::downgrade(&shared));
                    *created += 1;
                    if *created % PRUNE_EVERY == 0 {
                        reads.retain(|_, read| read.strong_count() > 0);
                    }
                    shared
                }
            }
        };
        let result = shared.result.get_or_init(read_session).await.clone();
        (shared, result)
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.reads.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }
}

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReads").finish_non_exhaustive()
    }
}

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
    let (held, first) = coordinator
        .watch_reads
        .read(id, Instant::now(), || coordinator.get(id))
        .await;
    let first = first?;
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    tokio::spawn(run(coordinator, held, first, changes, tx, poll, shutdown));
    Ok(ReceiverStream::new(rx))
}

async fn run(
    coordinator: Arc<Coordinator>,
    mut held: Arc<SharedRead>,
    first: SessionRecord,
    changes: broadcast::Receiver<SessionChanged>,
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
        // The moment after which a read shows what woke us.
        let since = tokio::select! {
            () = shutdown.cancelled() => return,
            () = tx.closed() => return,
            _ = tick.tick() => Instant::now(),
            changed = next_change(&mut changes) => match changed {
                Some(changed) if changed.id != id => continue,
                Some(changed) => changed.noticed,
                None => Instant::now(),
            },
        };
        // Held until the next read, so that watchers woken later can still take it.
        let (read, result) = coordinator
            .watch_reads
            .read(id, since, || coordinator.get(id))
            .await;
        let _previous = std::mem::replace(&mut held, read);
        match result {
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

/// The next change; `None` means "look anyway" (missed notifications).
async fn next_change(
    changes: &mut Option<broadcast::Receiver<SessionChanged>>,
) -> Option<SessionChanged> {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    match rx.recv().await {
        Ok(changed) => Some(changed),
        Err(broadcast::error::RecvError::Lagged(_)) => None,
        Err(broadcast::error::RecvError::Closed) => {
            // The feed is gone: polling alone from now on.
            *changes = None;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use mpc_proto::ErrorCode;

    use super::*;

    /// A stand-in result: the tests count reads, they do not look at sessions.
    fn not_found() -> ReadResult {
        Err(ApiError::new(
            ErrorCode::SessionNotFound,
            "session not found",
        ))
    }

    #[tokio::test]
    async fn watchers_woken_together_share_one_read_and_later_wakes_read_again() {
        let shared = Arc::new(SharedReads::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let id = SessionId::new_random();
        let woke = Instant::now();
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut watchers = Vec::new();
        for _ in 0..5 {
            let (shared, reads, gate) = (shared.clone(), reads.clone(), gate.clone());
            watchers.push(tokio::spawn(async move {
                shared
                    .read(id, woke, || async move {
                        reads.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        not_found()
                    })
                    .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.notify_one();
        let mut held = Vec::new();
        for w in watchers {
            let (read, result) = w.await.unwrap();
            assert!(result.is_err());
            held.push(read);
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one read for five watchers"
        );

        // A wake-up after that read began must not take it: it may predate the change.
        let later = Instant::now();
        let counter = reads.clone();
        let (_, _) = shared
            .read(id, later, || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                not_found()
            })
            .await;
        assert_eq!(reads.load(Ordering::SeqCst), 2);

        // Another session has its own reads.
        let counter = reads.clone();
        let _other = shared
            .read(SessionId::new_random(), woke, || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                not_found()
            })
            .await;
        assert_eq!(reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn reads_nobody_holds_are_pruned() {
        let shared = SharedReads::default();
        for _ in 0..PRUNE_EVERY {
            let _ = shared
                .read(SessionId::new_random(), Instant::now(), || async {
                    not_found()
                })
                .await;
        }
        // The prune ran while the last read was still held.
        assert_eq!(shared.tracked(), 1);
    }
}
