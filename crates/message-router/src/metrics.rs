//! The router's own metrics (the HTTP/gRPC request metrics come from `mpc-service`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use mpc_service::Metrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;

#[derive(Clone, Debug)]
pub struct RouterMetrics {
    messages: Counter,
    bytes: Counter,
    duplicates: Counter,
    active_subscriptions: Gauge,
    delivery_latency: Histogram,
    purged_sessions: Counter,
}

impl RouterMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            messages: Counter::default(),
            bytes: Counter::default(),
            duplicates: Counter::default(),
            active_subscriptions: Gauge::default(),
            // 1 ms … ~33 s.
            delivery_latency: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            purged_sessions: Counter::default(),
        };
        metrics.register(
            "mpc_router_messages",
            "Envelopes accepted and stored (duplicates excluded)",
            this.messages.clone(),
        );
        metrics.register(
            "mpc_router_bytes",
            "Payload bytes of the envelopes accepted",
            this.bytes.clone(),
        );
        metrics.register(
            "mpc_router_duplicate_messages",
            "Envelopes re-sent with a known message_id and identical content",
            this.duplicates.clone(),
        );
        metrics.register(
            "mpc_router_active_subscriptions",
            "Open SubscribeMessages streams",
            this.active_subscriptions.clone(),
        );
        metrics.register_with_unit(
            "mpc_router_delivery_latency",
            "Time from storing an envelope to handing it to its recipient (stream or fetch)",
            Unit::Seconds,
            this.delivery_latency.clone(),
        );
        metrics.register(
            "mpc_router_purged_sessions",
            "Sessions whose envelopes the retention sweep deleted",
            this.purged_sessions.clone(),
        );
        this
    }

    pub fn stored(&self, payload_len: usize) {
        self.messages.inc();
        self.bytes.inc_by(payload_len as u64);
    }

    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    pub fn delivered(&self, created_at: DateTime<Utc>) {
        let latency = (Utc::now() - created_at).to_std().unwrap_or(Duration::ZERO);
        self.delivery_latency.observe(latency.as_secs_f64());
    }

    pub fn purged(&self, sessions: usize) {
        self.purged_sessions.inc_by(sessions as u64);
    }

    /// Counts an open subscription until the guard is dropped.
    pub fn subscription(&self) -> SubscriptionGauge {
        self.active_subscriptions.inc();
        SubscriptionGauge(self.active_subscriptions.clone())
    }
}

#[derive(Debug)]
pub struct SubscriptionGauge(Gauge);

impl Drop for SubscriptionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}
