//! The guide's metrics (§6.3): `mpc_active_sessions`, `mpc_sessions_total{type,outcome}`,
//! `mpc_keygen_duration_seconds`, `mpc_sign_duration_seconds`, `mpc_session_success_rate`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mpc_proto::SessionType;
use mpc_service::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    Expired,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone)]
pub struct CoordinatorMetrics {
    active: Gauge,
    sessions: Family<SessionLabels, Counter>,
    keygen_duration: Histogram,
    sign_duration: Histogram,
    success_rate: Gauge<f64, AtomicU64>,
    ended: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
}

impl CoordinatorMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            active: Gauge::default(),
            sessions: Family::default(),
            // The guide expects keygen within 30–240 s and sign within 5–20 s.
            keygen_duration: Histogram::new([
                1.0, 5.0, 10.0, 30.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 600.0,
            ]),
            sign_duration: Histogram::new([0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0]),
            success_rate: Gauge::default(),
            ended: Arc::default(),
            completed: Arc::default(),
        };
        metrics.register(
            "mpc_active_sessions",
            "Sessions not yet completed, failed or expired (all replicas)",
            this.active.clone(),
        );
        metrics.register(
            "mpc_sessions",
            "Sessions ended by this replica, by type and outcome",
            this.sessions.clone(),
        );
        metrics.register(
            "mpc_keygen_duration_seconds",
            "Keygen sessions: time from creation to completion",
            this.keygen_duration.clone(),
        );
        metrics.register(
            "mpc_sign_duration_seconds",
            "Sign sessions: time from creation to completion",
            this.sign_duration.clone(),
        );
        metrics.register(
            "mpc_session_success_rate",
            "Share of the sessions ended by this replica that completed",
            this.success_rate.clone(),
        );
        this
    }

    pub fn set_active(&self, n: u64) {
        self.active.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a session this replica ended; `duration` (creation → completion) when completed.
    pub fn ended(&self, ty: SessionType, outcome: Outcome, duration_seconds: Option<f64>) {
        self.sessions
            .get_or_create(&SessionLabels {
                r#type: ty.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        if let Some(seconds) = duration_seconds {
            match ty {
                SessionType::Keygen => self.keygen_duration.observe(seconds),
                SessionType::Sign => self.sign_duration.observe(seconds),
                SessionType::Refresh | SessionType::Recovery => {}
            }
        }
        let ended = self.ended.fetch_add(1, Ordering::Relaxed) + 1;
        let completed = self
            .completed
            .fetch_add(u64::from(outcome == Outcome::Completed), Ordering::Relaxed)
            + u64::from(outcome == Outcome::Completed);
        // Counts stay far below 2^52, where f64 is still exact.
        #[allow(clippy::cast_precision_loss)]
        self.success_rate.set(completed as f64 / ended as f64);
    }
}
