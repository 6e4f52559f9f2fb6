//! The guide's metrics (§6.3): `mpc_active_sessions`, `mpc_sessions_total{type,outcome}`,
//! `mpc_keygen_duration_seconds{threshold}`, `mpc_sign_duration_seconds{threshold}`,
//! `mpc_session_success_rate`.
//!
//! These names mean the whole system's view of a session (creation to completion, as a wallet
//! back end sees it) and only the coordinator registers them; a server party counts its own part
//! under `mpc_party_*` names. The `threshold` label (`2-of-3`) lets a dashboard hold each
//! configuration to the guide's expected times (§6.2), which differ several-fold between them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mpc_proto::{SessionType, Threshold};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThresholdLabels {
    /// `t-of-n`, e.g. `2-of-3`.
    threshold: String,
}

// The guide expects keygen within 30–240 s and sign within 5–20 s.
fn keygen_histogram() -> Histogram {
    Histogram::new([
        1.0, 5.0, 10.0, 30.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 600.0,
    ])
}

fn sign_histogram() -> Histogram {
    Histogram::new([0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0])
}

#[derive(Clone)]
pub struct CoordinatorMetrics {
    active: Gauge,
    sessions: Family<SessionLabels, Counter>,
    keygen_duration: Family<ThresholdLabels, Histogram>,
    sign_duration: Family<ThresholdLabels, Histogram>,
    success_rate: Gauge<f64, AtomicU64>,
    ended: Arc<AtomicU64>,
    completed: Arc<AtomicU64>,
}

impl CoordinatorMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            active: Gauge::default(),
            sessions: Family::default(),
            keygen_duration: Family::new_with_constructor(keygen_histogram),
            sign_duration: Family::new_with_constructor(sign_histogram),
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
            "Keygen sessions: time from creation to completion, by threshold (t-of-n)",
            this.keygen_duration.clone(),
        );
        metrics.register(
            "mpc_sign_duration_seconds",
            "Sign sessions: time from creation to completion, by the key's threshold (t-of-n)",
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
    pub fn ended(
        &self,
        ty: SessionType,
        threshold: Threshold,
        outcome: Outcome,
        duration_seconds: Option<f64>,
    ) {
        self.sessions
            .get_or_create(&SessionLabels {
                r#type: ty.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        if let Some(seconds) = duration_seconds {
            let labels = ThresholdLabels {
                threshold: format!("{}-of-{}", threshold.t, threshold.n),
            };
            match ty {
                SessionType::Keygen => self.keygen_duration.get_or_create(&labels).observe(seconds),
                SessionType::Sign => self.sign_duration.get_or_create(&labels).observe(seconds),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_labelled_by_threshold() {
        let metrics = Metrics::new("session-coordinator");
        let m = CoordinatorMetrics::register(&metrics);
        let two_of_three = Threshold::new(2, 3).unwrap_or_else(|e| panic!("{e:?}"));
        let three_of_five = Threshold::new(3, 5).unwrap_or_else(|e| panic!("{e:?}"));
        m.ended(
            SessionType::Keygen,
            two_of_three,
            Outcome::Completed,
            Some(40.0),
        );
        m.ended(
            SessionType::Sign,
            three_of_five,
            Outcome::Completed,
            Some(0.2),
        );
        m.ended(SessionType::Sign, three_of_five, Outcome::Failed, None);
        let text = metrics.encode();
        for line in [
            "mpc_keygen_duration_seconds_count{service=\"session-coordinator\",threshold=\"2-of-3\"} 1",
            "mpc_sign_duration_seconds_count{service=\"session-coordinator\",threshold=\"3-of-5\"} 1",
            "mpc_sessions_total{service=\"session-coordinator\",type=\"sign\",outcome=\"failed\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        let rate = text
            .lines()
            .find(|l| l.starts_with("mpc_session_success_rate{"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            rate.starts_with("mpc_session_success_rate{service=\"session-coordinator\"} 0.66"),
            "{rate}"
        );
    }
}
