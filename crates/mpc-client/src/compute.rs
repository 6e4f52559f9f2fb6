//! The one scarce resource of a party: CPU for the protocol's rounds.
//!
//! A party never holds anything scarce while it waits for other parties (to join, or to send
//! their messages of a round): that is how two parties' pools used to fill with sessions
//! waiting for each other, a wait cycle only the join timeout broke. What is bounded is the
//! CPU-bound work alone — one engine step at a time per permit, a pool sized to the machine —
//! and a step never waits for anything but the CPU, so no cycle can form.
//!
//! Waiting steps are served oldest session first (by the session's creation time, then its
//! id), the same order in every party and every process: whenever the oldest session's parties
//! are all present, its steps go ahead of younger sessions' everywhere, so it always progresses
//! and finishes, and then the next oldest does.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// Which step goes first: older sessions, then the lower session id (a total order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority {
    pub created_at_ms: i64,
    pub session: u128,
}

struct Waiter {
    priority: Priority,
    /// Arrival order among equal priorities (one session's several steps, FIFO).
    seq: u64,
    grant: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.seq) == (other.priority, other.seq)
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}

struct State {
    free: usize,
    next_seq: u64,
    waiting: BinaryHeap<Reverse<Waiter>>,
}

/// A pool of `size` CPU permits, granted in [`Priority`] order. Cheap to clone (shared).
#[derive(Clone)]
pub struct ComputePool {
    size: usize,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for ComputePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("ComputePool")
            .field("size", &self.size)
            .field("free", &state.free)
            .field("waiting", &state.waiting.len())
            .finish()
    }
}

/// One permit: the step runs while it is held; dropping it hands the CPU to the next step.
pub struct ComputePermit {
    state: Arc<Mutex<State>>,
}

impl ComputePool {
    /// `size` permits (at least one).
    pub fn new(size: usize) -> Self {
        Self {
            size: size.max(1),
            state: Arc::new(Mutex::new(State {
                free: size.max(1),
                next_seq: 0,
                waiting: BinaryHeap::new(),
            })),
        }
    }

    /// As many permits as the machine has cores.
    pub fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// The pool of this process, sized to the machine: every party running in one process
    /// (`mpc up` runs them all) shares the same cores, so they share one pool.
    pub fn shared() -> Self {
        static SHARED: std::sync::OnceLock<ComputePool> = std::sync::OnceLock::new();
        SHARED.get_or_init(Self::for_this_machine).clone()
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Steps waiting for a permit now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a permit; among waiters the best [`Priority`] is served first. Dropping the
    /// future gives up the place in line (and a permit granted meanwhile passes on).
    pub async fn acquire(&self, priority: Priority) -> ComputePermit {
        let receiver = {
            let mut state = self.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return ComputePermit {
                    state: self.state.clone(),
                };
            }
            let (grant, receiver) = oneshot::channel();
            let seq = state.next_seq;
            state.next_seq += 1;
            state.waiting.push(Reverse(Waiter {
                priority,
                seq,
                grant,
            }));
            // A permit may be free while others wait only transiently; hand it out now.
            hand_out(&mut state);
            receiver
        };
        let guard = CancelGuard {
            receiver: Some(receiver),
            state: &self.state,
        };
        guard.wait().await;
        ComputePermit {
            state: self.state.clone(),
        }
    }
}

/// Gives free permits to the best waiters whose futures are still there.
fn hand_out(state: &mut State) {
    while state.free > 0 {
        let Some(Reverse(waiter)) = state.waiting.pop() else {
            return;
        };
        if waiter.grant.send(()).is_ok() {
            state.free -= 1;
        }
    }
}

impl Drop for ComputePermit {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.free += 1;
        hand_out(&mut state);
    }
}

/// Waits for the grant; if the waiting future is dropped after a grant was sent, the permit
/// it was given is returned.
struct CancelGuard<'a> {
    receiver: Option<oneshot::Receiver<()>>,
    state: &'a Arc<Mutex<State>>,
}

impl CancelGuard<'_> {
    async fn wait(mut self) {
        if let Some(receiver) = self.receiver.as_mut() {
            // The sender lives in the heap until it is granted; the pool outlives us.
            let _ = receiver.await;
        }
        self.receiver = None;
    }
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        let Some(mut receiver) = self.receiver.take() else {
            return;
        };
        // Refuse further grants; one that already arrived is ours to give back.
        receiver.close();
        if receiver.try_recv().is_ok() {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.free += 1;
            hand_out(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn p(created: i64, session: u128) -> Priority {
        Priority {
            created_at_ms: created,
            session,
        }
    }

    #[tokio::test]
    async fn oldest_session_first() {
        let pool = ComputePool::new(1);
        let held = pool.acquire(p(5, 5)).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (created, session) in [(30, 1), (10, 9), (20, 2), (10, 3)] {
            let pool = pool.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = pool.acquire(p(created, session)).await;
                order
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((created, session));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            tokio::task::yield_now().await;
        }
        while pool.waiting() < 4 {
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("{e}"));
        }
        let order = order.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(order, vec![(10, 3), (10, 9), (20, 2), (30, 1)]);
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_loses_nothing() {
        let pool = ComputePool::new(2);
        let a = pool.acquire(p(1, 1)).await;
        let b = pool.acquire(p(1, 2)).await;
        // Waits, then is dropped: its place (and any grant) must not leak a permit.
        let gone = tokio::time::timeout(Duration::from_millis(20), pool.acquire(p(0, 0))).await;
        assert!(gone.is_err());
        assert_eq!(pool.waiting(), 1, "its entry stays until a grant skips it");
        drop(a);
        drop(b);
        // Both permits are free again: two acquisitions succeed at once.
        let _c = pool.acquire(p(9, 9)).await;
        let _d = tokio::time::timeout(Duration::from_millis(100), pool.acquire(p(9, 9)))
            .await
            .unwrap_or_else(|_| panic!("a permit leaked"));
        assert_eq!(pool.waiting(), 0);
    }

    #[tokio::test]
    async fn never_more_than_size_at_once() {
        let pool = ComputePool::new(3);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..50u128 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = pool.acquire(p(i64::try_from(i % 7).unwrap_or(0), i)).await;
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 3);
        assert_eq!(pool.lock().free, 3);
    }
}
