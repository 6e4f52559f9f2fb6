//! The session event bus: the coordinator publishes `session.created/started/completed/failed/
//! expired`; server parties (and the router) consume them from their own durable queues, with
//! manual acknowledgement and redelivery of whatever a crashed consumer had not acknowledged.
//!
//! Two implementations of one trait: RabbitMQ for production (`rabbitmq`), and an in-process bus
//! for the embedded default (`memory`). The same test suite runs against both.
#![forbid(unsafe_code)]

pub mod event;
pub mod memory;
pub mod rabbitmq;
#[cfg(feature = "testing")]
pub mod testing;
pub mod topic;

use async_trait::async_trait;

pub use event::{EventKind, EventParticipant, SessionEvent};
pub use memory::MemoryBus;
pub use rabbitmq::{RabbitBus, RabbitConfig};
pub use topic::topic_matches;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached or the connection dropped.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// A message on the queue is not a valid event (it is rejected, not redelivered).
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error("event bus configuration: {0}")]
    Config(String),
    /// The subscription or bus was closed.
    #[error("event bus closed")]
    Closed,
}

/// Publishes and consumes session events.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes durably: when this returns `Ok`, the broker has the event.
    async fn publish(&self, event: &SessionEvent) -> Result<(), BusError>;

    /// Consumes from the durable queue `queue` (created if missing), bound to the topic
    /// `patterns` (`session.created`, `session.*`). Several subscriptions to one queue share its
    /// events (competing consumers). Events published while nobody listens wait in the queue.
    async fn subscribe(
        &self,
        queue: &str,
        patterns: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError>;

    /// Checks the broker is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), BusError>;
}

/// A stream of deliveries from one queue. Dropping it without acknowledging returns the
/// unacknowledged events to the queue for redelivery.
#[async_trait]
pub trait Subscription: Send {
    /// The next delivery; `None` when the bus shut down.
    async fn next(&mut self) -> Option<Result<Delivery, BusError>>;
}

/// One delivered event. Acknowledge it once it is handled; an unacknowledged delivery is
/// redelivered (to this or another consumer of the queue) when the subscription goes away.
pub struct Delivery {
    pub event: SessionEvent,
    /// True when the broker delivered this event before (a consumer crashed or nacked it).
    pub redelivered: bool,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("event", &self.event)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

impl Delivery {
    pub fn new(event: SessionEvent, redelivered: bool, acker: Box<dyn Acker>) -> Self {
        Self {
            event,
            redelivered,
            acker,
        }
    }

    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    /// Gives the event back: `requeue` redelivers it, otherwise it is dropped.
    pub async fn nack(self, requeue: bool) -> Result<(), BusError> {
        self.acker.nack(requeue).await
    }
}

/// Backend-specific acknowledgement of one delivery.
#[async_trait]
pub trait Acker: Send + Sync {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BusError>;
}
