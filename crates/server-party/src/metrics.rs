//! The server party's metrics: sessions by type and outcome, sessions running, engine steps waiting for a
//! slot (with the peak of running ones), protocol durations by type.
//!
//! Every name is `mpc_party_*`. The guide's names (§6.3: `mpc_sessions_total`,
//! `mpc_keygen_duration_seconds`, `mpc_sign_duration_seconds`, `mpc_session_success_rate`,
//! `mpc_active_sessions`) are the coordinator's alone and mean the whole session, creation to
//! completion. A party used to register them too, for its own part (joining to reporting, with
//! other buckets), so a query over the guide's names mixed two meanings and two bucket layouts.
//! A party's success rate is `mpc_party_sessions_total{outcome="reported"}` over
//! `reported + failed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use mpc_proto::SessionType;
use mpc_service::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

/// How this party's part of a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalOutcome {
    /// Computed and reported.
    Reported,
    Failed,
    /// Not run: a redelivered event, a session that ended before it started, a frozen key.
    Skipped,
}

impl LocalOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reported => "reported",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Clone)]
pub struct PartyMetrics {
    sessions: Family<SessionLabels, Counter>,
    active: Gauge,
    waiting: Gauge,
    peak: Gauge,
    peak_value: Arc<AtomicI64>,
    duration: Family<TypeLabels, Histogram>,
}

impl PartyMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            sessions: Family::default(),
            active: Gauge::default(),
            waiting: Gauge::default(),
            peak: Gauge::default(),
            peak_value: Arc::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
        };
        metrics.register(
            "mpc_party_sessions",
            "Sessions this party took part in, by type and local outcome",
            this.sessions.clone(),
        );
        metrics.register(
            "mpc_party_active_sessions",
            "Sessions this party is running now",
            this.active.clone(),
        );
        metrics.register(
            "mpc_party_compute_waiting",
            "Engine steps waiting for a CPU permit of this process's compute pool (sampled each second)",
            this.waiting.clone(),
        );
        metrics.register(
            "mpc_party_active_sessions_peak",
            "The most sessions this party has run at once since it started",
            this.peak.clone(),
        );
        metrics.register(
            "mpc_party_protocol_duration_seconds",
            "Time from joining a session to reporting its result, by type",
            this.duration.clone(),
        );
        this
    }

    pub fn ended(&self, ty: SessionType, outcome: LocalOutcome, seconds: Option<f64>) {
        self.sessions
            .get_or_create(&SessionLabels {
                r#type: ty.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        if let Some(seconds) = seconds {
            self.duration
                .get_or_create(&TypeLabels {
                    r#type: ty.as_str(),
                })
                .observe(seconds);
        }
    }

    /// Engine steps waiting for the CPU now.
    pub fn set_compute_waiting(&self, steps: usize) {
        self.waiting.set(i64::try_from(steps).unwrap_or(i64::MAX));
    }

    /// Counts a running session until the guard is dropped.
    pub fn running(&self) -> GaugeGuard {
        let now = self.active.inc() + 1;
        let peak = self.peak_value.fetch_max(now, Ordering::SeqCst).max(now);
        self.peak.set(peak);
        GaugeGuard(self.active.clone())
    }
}

pub struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_counts_its_part_under_its_own_names() {
        let metrics = Metrics::new("server-party");
        let m = PartyMetrics::register(&metrics);
        m.ended(SessionType::Keygen, LocalOutcome::Reported, Some(1.5));
        m.ended(SessionType::Sign, LocalOutcome::Reported, Some(0.02));
        m.ended(SessionType::Sign, LocalOutcome::Failed, Some(3.0));
        m.ended(SessionType::Sign, LocalOutcome::Skipped, None);
        let _running = m.running();
        let text = metrics.encode();
        for line in [
            "mpc_party_sessions_total{service=\"server-party\",type=\"sign\",outcome=\"failed\"} 1",
            "mpc_party_sessions_total{service=\"server-party\",type=\"sign\",outcome=\"skipped\"} 1",
            "mpc_party_protocol_duration_seconds_count{service=\"server-party\",type=\"sign\"} 2",
            "mpc_party_active_sessions{service=\"server-party\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from {text}");
        }
        // The guide's names are the coordinator's (whole sessions); a party never exports them.
        for name in [
            "mpc_sessions_total",
            "mpc_keygen_duration_seconds",
            "mpc_sign_duration_seconds",
            "mpc_session_success_rate",
            "mpc_active_sessions",
        ] {
            assert!(
                !text.lines().any(|l| l.starts_with(name)),
                "{name} in a party's metrics: {text}"
            );
        }
    }
}
