//! Backpressure at an entrance: at most `budget` units of work in flight, a bounded FIFO queue
//! in front of them, and a quick `429 overloaded` with `Retry-After` beyond both — instead of
//! accepting everything and letting every request slow down until they all time out.
//!
//! A request that finds a free slot goes at once; otherwise it waits in arrival order (tokio's
//! semaphore is fair), at most `max_wait`, and only while fewer than `queue_limit` others
//! wait. Refusing costs nothing: nothing has been created yet when admission is asked.
//!
//! Metrics (the `service` label comes with the registry):
//! `mpc_admission_queue_depth`, `mpc_admission_admitted_total{operation}`,
//! `mpc_admission_rejected_total{operation}`, `mpc_admission_queue_wait_seconds`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mpc_proto::{ApiError, ErrorCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Unit;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::Metrics;

/// How much work an entrance takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Units of work in flight at once (0: no limit).
    pub budget: usize,
    /// Requests that may wait for a slot; more are refused at once.
    pub queue_limit: usize,
    /// The longest a request waits in the queue before it is refused.
    pub max_wait: Duration,
}

impl AdmissionConfig {
    pub fn unlimited() -> Self {
        Self {
            budget: 0,
            queue_limit: 0,
            max_wait: Duration::ZERO,
        }
    }

    /// Reads `<prefix>_BUDGET`, `<prefix>_QUEUE` and `<prefix>_QUEUE_WAIT_MS` over `self`.
    pub fn from_vars(
        mut self,
        prefix: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let number = |name: String| -> Result<Option<u64>, String> {
            var(&name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("{name}: expected a whole number"))
                })
                .transpose()
        };
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        if let Some(v) = number(format!("{prefix}_BUDGET"))? {
            self.budget = size(v);
        }
        if let Some(v) = number(format!("{prefix}_QUEUE"))? {
            self.queue_limit = size(v);
        }
        if let Some(v) = number(format!("{prefix}_QUEUE_WAIT_MS"))? {
            self.max_wait = Duration::from_millis(v);
        }
        Ok(self)
    }
}

/// The operations the entrances admit (their series are exported from the start).
pub const OPERATIONS: [&str; 4] = ["keygen", "sign", "refresh", "recovery"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

/// One entrance's admission.
#[derive(Clone)]
pub struct Admission {
    config: AdmissionConfig,
    slots: Option<Arc<Semaphore>>,
    waiting: Arc<AtomicUsize>,
    depth: Gauge,
    admitted: Family<OperationLabels, Counter>,
    rejected: Family<OperationLabels, Counter>,
    wait: Histogram,
}

/// A unit of work admitted; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Admission {
    /// Registers its metrics on `metrics`.
    pub fn new(config: AdmissionConfig, metrics: &Metrics) -> Self {
        let admission = Self {
            config,
            slots: (config.budget > 0).then(|| Arc::new(Semaphore::new(config.budget))),
            waiting: Arc::new(AtomicUsize::new(0)),
            depth: Gauge::default(),
            admitted: Family::default(),
            rejected: Family::default(),
            wait: Histogram::new([
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        };
        // Every operation's series exists from the start (at 0), so that dashboards and alerts
        // see a rate of 0 rather than no data.
        for operation in OPERATIONS {
            drop(
                admission
                    .admitted
                    .get_or_create(&OperationLabels { operation }),
            );
            drop(
                admission
                    .rejected
                    .get_or_create(&OperationLabels { operation }),
            );
        }
        metrics.register(
            "mpc_admission_queue_depth",
            "Requests waiting for an admission slot",
            admission.depth.clone(),
        );
        metrics.register(
            "mpc_admission_admitted",
            "Requests admitted, by operation",
            admission.admitted.clone(),
        );
        metrics.register(
            "mpc_admission_rejected",
            "Requests refused with 429 overloaded, by operation",
            admission.rejected.clone(),
        );
        metrics.register_with_unit(
            "mpc_admission_queue_wait",
            "Time admitted requests waited in the queue",
            Unit::Seconds,
            admission.wait.clone(),
        );
        admission
    }

    pub fn config(&self) -> AdmissionConfig {
        self.config
    }

    /// Units of work in flight now.
    pub fn in_flight(&self) -> usize {
        self.slots
            .as_ref()
            .map_or(0, |s| self.config.budget - s.available_permits())
    }

    fn overloaded(&self, operation: &'static str, why: &str) -> ApiError {
        self.rejected
            .get_or_create(&OperationLabels { operation })
            .inc();
        // Long enough for a few sessions to finish; a client retrying then finds room.
        let retry = self.config.max_wait.as_secs().clamp(1, 30);
        ApiError::new(
            ErrorCode::Overloaded,
            format!("the service is at capacity ({why}): retry after a moment"),
        )
        .with_retry_after(u32::try_from(retry).unwrap_or(1))
    }

    /// A slot for one unit of `operation`, waiting in line if need be; `429 overloaded` when
    /// the queue is full or the wait would be longer than `max_wait`.
    pub async fn admit(&self, operation: &'static str) -> Result<Admitted, ApiError> {
        let Some(slots) = &self.slots else {
            return Ok(Admitted { _permit: None });
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            self.admitted
                .get_or_create(&OperationLabels { operation })
                .inc();
            self.wait.observe(0.0);
            return Ok(Admitted {
                _permit: Some(permit),
            });
        }
        // Join the queue, unless it is full.
        let position = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = QueueSeat {
            waiting: self.waiting.clone(),
            depth: self.depth.clone(),
        };
        self.depth
            .set(i64::try_from(position + 1).unwrap_or(i64::MAX));
        if position >= self.config.queue_limit {
            return Err(self.overloaded(operation, "the queue is full"));
        }
        let started = Instant::now();
        match tokio::time::timeout(self.config.max_wait, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => {
                self.admitted
                    .get_or_create(&OperationLabels { operation })
                    .inc();
                self.wait.observe(started.elapsed().as_secs_f64());
                Ok(Admitted {
                    _permit: Some(permit),
                })
            }
            Ok(Err(_)) => Err(ApiError::new(
                ErrorCode::Unavailable,
                "the service is stopping",
            )),
            Err(_) => Err(self.overloaded(operation, "no slot became free in time")),
        }
    }
}

/// Leaves the queue (and updates its gauge) however the wait ends.
struct QueueSeat {
    waiting: Arc<AtomicUsize>,
    depth: Gauge,
}

impl Drop for QueueSeat {
    fn drop(&mut self) {
        let left = self
            .waiting
            .fetch_sub(1, Ordering::SeqCst)
            .saturating_sub(1);
        self.depth.set(i64::try_from(left).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(budget: usize, queue: usize, wait_ms: u64) -> Admission {
        Admission::new(
            AdmissionConfig {
                budget,
                queue_limit: queue,
                max_wait: Duration::from_millis(wait_ms),
            },
            &Metrics::new("test"),
        )
    }

    #[tokio::test]
    async fn beyond_budget_and_queue_a_quick_429() {
        let a = admission(2, 1, 5_000);
        let one = a.admit("sign").await.unwrap_or_else(|e| panic!("{e}"));
        let _two = a.admit("sign").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.in_flight(), 2);
        // The third waits in the queue; the fourth finds it full and is refused at once.
        let queued = {
            let a = a.clone();
            tokio::spawn(async move { a.admit("sign").await.map(drop) })
        };
        while a.waiting.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        let started = Instant::now();
        let refused = a.admit("keygen").await.err();
        assert!(started.elapsed() < Duration::from_secs(1));
        let refused = refused.unwrap_or_else(|| panic!("admitted beyond the queue"));
        assert_eq!(refused.code, ErrorCode::Overloaded);
        assert!(refused.retry_after.is_some());
        // A slot frees: the queued one goes.
        drop(one);
        queued
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[tokio::test]
    async fn a_queued_request_waits_at_most_max_wait() {
        let a = admission(1, 10, 50);
        let _held = a.admit("sign").await.unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let e = a.admit("sign").await.err().map(|e| e.code);
        assert_eq!(e, Some(ErrorCode::Overloaded));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(a.waiting.load(Ordering::SeqCst), 0, "it left the queue");
    }

    #[tokio::test]
    async fn fifo_among_the_queued() {
        let a = admission(1, 10, 5_000);
        let held = a.admit("sign").await.unwrap_or_else(|e| panic!("{e}"));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (queued, order) = (a.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = queued.admit("sign").await;
                order
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(i);
            }));
            while a.waiting.load(Ordering::SeqCst) < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("{e}"));
        }
        let order = order
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn unlimited_admits_everything() {
        let a = Admission::new(AdmissionConfig::unlimited(), &Metrics::new("test"));
        let all: Vec<_> = futures_all(&a).await;
        assert_eq!(all.len(), 100);
        assert_eq!(a.in_flight(), 0);
    }

    async fn futures_all(a: &Admission) -> Vec<Admitted> {
        let mut v = Vec::new();
        for _ in 0..100 {
            v.push(a.admit("sign").await.unwrap_or_else(|e| panic!("{e}")));
        }
        v
    }
}
