//! The in-process event bus of the embedded default (`mpc up`): RabbitMQ's semantics without
//! a broker, so that the services behave the same on both.
//!
//! - Topic exchange: a published event goes to every queue with a binding pattern that matches
//!   its routing key (`*` one word, `#` zero or more). With no matching queue it is dropped, as
//!   RabbitMQ drops unroutable messages.
//! - Named queues live as long as the bus; bindings accumulate (a subscription adds its
//!   patterns, none are removed). Events wait in a queue while nobody consumes it.
//! - Several subscriptions to one queue compete: each event goes to one of them.
//! - Manual acknowledgement. An unacknowledged delivery goes back to the front of its queue,
//!   marked `redelivered`, when it is nacked with requeue or when its subscription is dropped;
//!   acknowledging it after that fails with [`BusError::Closed`] (it will be redelivered).
//! - [`MemoryBus::close`] ends every subscription (`next()` returns `None`).
//!
//! Nothing is persisted: the embedded default loses queued events when the process stops.
//! Services must not depend on events for correctness (the coordinator's state is in its
//! database and the parties re-read it on start).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::topic::topic_matches;
use crate::{Acker, BusError, Delivery, EventBus, SessionEvent, Subscription};

/// The in-process bus. Clones share the same exchange and queues.
#[derive(Clone, Default)]
pub struct MemoryBus {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken on anything a waiting subscription may care about: an event enqueued or requeued,
    /// or the bus closing. Waiters re-check their own queue.
    changed: Notify,
}

#[derive(Default)]
struct State {
    closed: bool,
    queues: HashMap<String, Queue>,
    next_delivery_tag: u64,
    next_consumer: u64,
}

#[derive(Default)]
struct Queue {
    bindings: BTreeSet<String>,
    ready: VecDeque<Pending>,
    /// Delivery tag → (consumer, message).
    unacked: HashMap<u64, (u64, Pending)>,
}

#[derive(Clone)]
struct Pending {
    event: SessionEvent,
    redelivered: bool,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every subscription (`next()` → `None`) and refuses further publishing.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_waiters();
    }

    /// Events waiting in `queue` (not counting unacknowledged deliveries); 0 for an unknown
    /// queue. For tests and diagnostics.
    pub fn ready_count(&self, queue: &str) -> usize {
        self.shared
            .lock()
            .queues
            .get(queue)
            .map_or(0, |q| q.ready.len())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before it could panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").finish_non_exhaustive()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, event: &SessionEvent) -> Result<(), BusError> {
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(BusError::Closed);
            }
            let key = event.routing_key();
            for queue in state.queues.values_mut() {
                if queue.bindings.iter().any(|p| topic_matches(p, key)) {
                    queue.ready.push_back(Pending {
                        event: event.clone(),
                        redelivered: false,
                    });
                }
            }
        }
        self.shared.changed.notify_waiters();
        Ok(())
    }

    async fn subscribe(
        &self,
        queue: &str,
        patterns: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        if queue.is_empty() {
            return Err(BusError::Config("queue name must not be empty".into()));
        }
        let mut state = self.shared.lock();
        if state.closed {
            return Err(BusError::Closed);
        }
        let bindings = &mut state.queues.entry(queue.to_owned()).or_default().bindings;
        bindings.extend(patterns.iter().map(|p| (*p).to_owned()));
        state.next_consumer += 1;
        Ok(Box::new(MemorySubscription {
            shared: self.shared.clone(),
            queue: queue.to_owned(),
            consumer: state.next_consumer,
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        if self.shared.lock().closed {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }
}

struct MemorySubscription {
    shared: Arc<Shared>,
    queue: String,
    consumer: u64,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            // Registered before looking, so that a publish between the look and the wait
            // still wakes us.
            let changed = self.shared.changed.notified();
            {
                let mut guard = self.shared.lock();
                let state = &mut *guard;
                if state.closed {
                    return None;
                }
                if let Some(queue) = state.queues.get_mut(&self.queue)
                    && let Some(pending) = queue.ready.pop_front()
                {
                    state.next_delivery_tag += 1;
                    let tag = state.next_delivery_tag;
                    queue.unacked.insert(tag, (self.consumer, pending.clone()));
                    let acker = MemoryAcker {
                        shared: self.shared.clone(),
                        queue: self.queue.clone(),
                        tag,
                    };
                    return Some(Ok(Delivery::new(
                        pending.event,
                        pending.redelivered,
                        Box::new(acker),
                    )));
                }
            }
            changed.await;
        }
    }
}

impl Drop for MemorySubscription {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            let Some(queue) = state.queues.get_mut(&self.queue) else {
                return;
            };
            let mut mine: Vec<u64> = queue
                .unacked
                .iter()
                .filter(|(_, (consumer, _))| *consumer == self.consumer)
                .map(|(tag, _)| *tag)
                .collect();
            // Back to the front in their original order, as RabbitMQ requeues them.
            mine.sort_unstable();
            for tag in mine.into_iter().rev() {
                if let Some((_, mut pending)) = queue.unacked.remove(&tag) {
                    pending.redelivered = true;
                    queue.ready.push_front(pending);
                }
            }
        }
        self.shared.changed.notify_waiters();
    }
}

struct MemoryAcker {
    shared: Arc<Shared>,
    queue: String,
    tag: u64,
}

impl MemoryAcker {
    /// Takes the delivery out of the unacknowledged set; `Closed` when it is no longer there
    /// (its subscription was dropped and it went back to the queue).
    fn settle(&self, state: &mut State) -> Result<Pending, BusError> {
        state
            .queues
            .get_mut(&self.queue)
            .and_then(|q| q.unacked.remove(&self.tag))
            .map(|(_, pending)| pending)
            .ok_or(BusError::Closed)
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.settle(&mut self.shared.lock()).map(drop)
    }

    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        {
            let mut state = self.shared.lock();
            let mut pending = self.settle(&mut state)?;
            if !requeue {
                return Ok(());
            }
            pending.redelivered = true;
            if let Some(queue) = state.queues.get_mut(&self.queue) {
                queue.ready.push_front(pending);
            }
        }
        self.shared.changed.notify_waiters();
        Ok(())
    }
}
