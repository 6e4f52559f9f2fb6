//! The router's background work: learning from the event bus which sessions ended, and the
//! retention sweep that deletes their envelopes after the grace period.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mpc_bus::{Delivery, EventBus, EventKind};
use mpc_store::router::RouterStore;

use crate::hub::Hub;
use crate::metrics::RouterMetrics;
use crate::{Shutdown, sleep_or_shutdown};

/// The bus patterns the router's queue is bound to.
pub const BUS_PATTERNS: [&str; 1] = ["session.*"];

/// Consumes `session.completed/failed/expired` from the durable `queue` and marks those sessions
/// ended, until `shutdown`. Other events are acknowledged and ignored. A failed store write is
/// requeued (redelivered later), so an end is not lost while the database is away.
pub async fn consume_session_events(
    bus: Arc<dyn EventBus>,
    queue: String,
    store: Arc<dyn RouterStore>,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let subscription = tokio::select! {
            () = shutdown.cancelled() => return,
            s = bus.subscribe(&queue, &BUS_PATTERNS) => s,
        };
        let mut subscription = match subscription {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, queue, "cannot subscribe to session events; retrying");
                if sleep_or_shutdown(backoff, &shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = subscription.next() => next,
            };
            match next {
                Some(Ok(delivery)) => {
                    if !handle(delivery, &*store).await
                        && sleep_or_shutdown(backoff, &shutdown).await
                    {
                        return;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, queue, "session event subscription failed; resubscribing");
                    break;
                }
                None => {
                    tracing::debug!(queue, "session event subscription ended");
                    if sleep_or_shutdown(backoff, &shutdown).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Handles one delivery; false when it was requeued because the store failed.
async fn handle(delivery: Delivery, store: &dyn RouterStore) -> bool {
    let event = &delivery.event;
    let ends = matches!(
        event.kind,
        EventKind::Completed | EventKind::Failed | EventKind::Expired
    );
    if ends {
        let session_id = event.session_id;
        let result = store
            .end_session(
                session_id,
                event.expires_at,
                event.occurred_at.min(Utc::now()),
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, %session_id, "cannot record the end of a session; requeueing");
            if let Err(e) = delivery.nack(true).await {
                tracing::warn!(error = %e, "cannot requeue a session event");
            }
            return false;
        }
        tracing::info!(%session_id, kind = event.kind.routing_key(), "session ended");
    }
    if let Err(e) = delivery.ack().await {
        tracing::warn!(error = %e, "cannot acknowledge a session event");
    }
    true
}

/// Runs the retention sweep every `interval` until `shutdown`. Sessions that are purged wake
/// their waiters, which then end with "session not found".
pub async fn sweep_periodically(
    store: Arc<dyn RouterStore>,
    hub: Hub,
    metrics: RouterMetrics,
    grace: Duration,
    interval: Duration,
    shutdown: Shutdown,
) {
    loop {
        match store.sweep(Utc::now(), grace).await {
            Ok(report) => {
                if !report.purged_sessions.is_empty() {
                    metrics.purged(report.purged_sessions.len());
                    hub.wake_all();
                }
                for session_id in &report.purged_sessions {
                    tracing::info!(%session_id, "session messages deleted after retention grace");
                }
                if report.forgotten_sessions > 0 {
                    tracing::debug!(
                        count = report.forgotten_sessions,
                        "session tombstones removed"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; will retry"),
        }
        if sleep_or_shutdown(interval, &shutdown).await {
            return;
        }
    }
}
