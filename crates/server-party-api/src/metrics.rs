//! The API's metrics: sessions by type and outcome, sessions running now, and how long a
//! request held (from its arrival to the session's end).

use mpc_proto::SessionType;
use mpc_service::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

/// How a request for a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The session completed and the share or signature was answered.
    Completed,
    /// Refused before joining (bad token, share, hash, …): the session was not touched.
    Refused,
    /// Joined, then the session failed, expired or timed out.
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Clone)]
pub struct ApiMetrics {
    sessions: Family<SessionLabels, Counter>,
    active: Gauge,
    duration: Family<TypeLabels, Histogram>,
}

impl ApiMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            sessions: Family::default(),
            active: Gauge::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([
                    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                ])
            }),
        };
        metrics.register(
            "mpc_party_api_sessions",
            "Session requests by type and outcome",
            this.sessions.clone(),
        );
        metrics.register(
            "mpc_party_api_active_sessions",
            "Sessions the API is taking part in now",
            this.active.clone(),
        );
        metrics.register(
            "mpc_party_api_session_duration_seconds",
            "Time from a request's arrival to its session's end, by type",
            this.duration.clone(),
        );
        this
    }

    pub fn ended(&self, ty: SessionType, outcome: Outcome, seconds: Option<f64>) {
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

    /// Counts a running session until the guard is dropped.
    pub fn running(&self) -> RunningGuard {
        self.active.inc();
        RunningGuard(self.active.clone())
    }
}

pub struct RunningGuard(Gauge);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
