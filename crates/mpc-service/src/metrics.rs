//! A per-service Prometheus registry.
//!
//! Not a process-global recorder: `mpc up` runs every service in one process, and each
//! service's `/metrics` must show only its own metrics, all labelled `service="<name>"`.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use prometheus_client::registry::{Metric, Registry, Unit};

use crate::layers::{GrpcMetrics, HttpMetrics};

/// Cheap-to-clone handle to one service's metric registry.
///
/// Metrics follow `prometheus_client`'s clone-and-register pattern: create the metric, register
/// a clone, keep the original to update it.
///
/// ```
/// use prometheus_client::metrics::counter::Counter;
/// let metrics = mpc_service::Metrics::new("session-coordinator");
/// let created: Counter = Counter::default();
/// metrics.register("mpc_sessions_created", "Sessions created", created.clone());
/// created.inc();
/// assert!(metrics.encode().contains("mpc_sessions_created_total{service=\"session-coordinator\"} 1"));
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    service: &'static str,
    registry: Mutex<Registry>,
    // The middleware metrics are registered once per registry however many routers or
    // servers share it; registering a name twice would emit it twice.
    http: OnceLock<HttpMetrics>,
    grpc: OnceLock<GrpcMetrics>,
}

impl Metrics {
    /// A new, empty registry whose every sample carries the label `service="<service>"`.
    pub fn new(service: &'static str) -> Self {
        let labels = std::iter::once((Cow::Borrowed("service"), Cow::Borrowed(service)));
        Self {
            inner: Arc::new(Inner {
                service,
                registry: Mutex::new(Registry::with_labels(labels)),
                http: OnceLock::new(),
                grpc: OnceLock::new(),
            }),
        }
    }

    /// The `service` label value.
    pub fn service(&self) -> &'static str {
        self.inner.service
    }

    /// Registers any `prometheus_client` metric. Counters get `_total` appended to `name` on
    /// output (`prometheus_client` does that, per OpenMetrics); `help` gets a final full stop.
    pub fn register(&self, name: impl Into<String>, help: impl Into<String>, metric: impl Metric) {
        self.registry().register(name, help, metric);
    }

    /// Like [`Metrics::register`], with a unit appended to the name on output (`_seconds`, …).
    pub fn register_with_unit(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        unit: Unit,
        metric: impl Metric,
    ) {
        self.registry().register_with_unit(name, help, unit, metric);
    }

    /// The registry in the OpenMetrics text format (serve it with [`OPENMETRICS_CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a `String` cannot fail; an error could only come from a metric's own
        // encoder, and a partial scrape is more useful than none.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry()) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }

    pub(crate) fn http(&self) -> HttpMetrics {
        self.inner
            .http
            .get_or_init(|| HttpMetrics::register(self))
            .clone()
    }

    pub(crate) fn grpc(&self) -> GrpcMetrics {
        self.inner
            .grpc
            .get_or_init(|| GrpcMetrics::register(self))
            .clone()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-updated in a way that
        // matters for a scrape, so a poisoned lock is used as is.
        self.inner
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

/// The content type of [`Metrics::encode`]'s output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::Metrics;

    #[test]
    fn registries_are_separate_and_labelled() {
        let a = Metrics::new("alpha");
        let b = Metrics::new("beta");
        let counter: Counter = Counter::default();
        a.register("mpc_things", "Things", counter.clone());
        counter.inc_by(3);
        let text = a.encode();
        assert!(
            text.contains("mpc_things_total{service=\"alpha\"} 3"),
            "{text}"
        );
        assert!(!b.encode().contains("mpc_things"), "{}", b.encode());
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
