//! The shared bus suite on the in-process bus.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod suite;

use async_trait::async_trait;
use mpc_bus::MemoryBus;

struct Memory(MemoryBus);

#[async_trait]
impl suite::Backend for Memory {
    type Bus = MemoryBus;

    async fn bus(&self) -> MemoryBus {
        self.0.clone()
    }

    fn queue(&self, name: &str) -> String {
        name.to_owned()
    }

    async fn close(&self, bus: &MemoryBus) {
        bus.close();
    }
}

async fn setup(_test: &str) -> Option<Memory> {
    Some(Memory(MemoryBus::new()))
}

async fn teardown(_backend: Memory) {}

bus_suite!(setup, teardown;
    routes_by_topic_pattern,
    delivers_the_event_intact,
    events_wait_in_a_queue_without_consumer,
    ack_removes_the_event,
    dropped_subscription_redelivers_unacked_events,
    nack_requeues_or_drops,
    competing_consumers_get_distinct_events,
    ping_and_close,
);
