//! The overview's figures, from the coordinator's own metrics (guide §6.3): signatures per
//! minute, success rate, p50/p95 keygen and sign latency per threshold, active sessions.
//!
//! Each console poll may take a sample (at most every [`MIN_SAMPLE_INTERVAL`]); rates and
//! quantiles are computed over the last [`WINDOW`] of samples, the way Prometheus's `rate()` and
//! `histogram_quantile()` would, so the console and the Grafana dashboard agree. Counters of
//! several replicas are summed; a counter that went down (a restart) counts from zero.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;
use utoipa::ToSchema;

use super::prom_text::{self, Sample};

/// Samples closer together than this are not taken (several consoles polling share them).
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Rates and quantiles cover this much history.
pub const WINDOW: Duration = Duration::from_secs(300);

const SESSIONS: &str = "mpc_sessions_total";
const ACTIVE: &str = "mpc_active_sessions";
const KEYGEN: &str = "mpc_keygen_duration_seconds";
const SIGN: &str = "mpc_sign_duration_seconds";

/// A series without its `service`/`instance` labels, so that replicas add up.
type SeriesKey = (String, BTreeMap<String, String>);

#[derive(Clone, Debug)]
struct Snapshot {
    at: Instant,
    counters: BTreeMap<SeriesKey, f64>,
    active: Option<f64>,
}

impl Snapshot {
    fn from_samples(at: Instant, samples: &[Sample]) -> Self {
        let mut counters = BTreeMap::new();
        let mut active: Option<f64> = None;
        for s in samples {
            if s.name == ACTIVE {
                // Every replica reports the count of all replicas: the largest is the latest.
                active = Some(active.map_or(s.value, |a| a.max(s.value)));
                continue;
            }
            let wanted = s.name == SESSIONS
                || [KEYGEN, SIGN]
                    .iter()
                    .any(|h| s.name == format!("{h}_bucket") || s.name == format!("{h}_count"));
            if wanted {
                let mut labels = s.labels.clone();
                labels.remove("service");
                labels.remove("instance");
                *counters.entry((s.name.clone(), labels)).or_insert(0.0) += s.value;
            }
        }
        Self {
            at,
            counters,
            active,
        }
    }

    /// The increase of every series since `base` (a series that went down restarted at zero).
    fn increase_since(&self, base: Option<&Snapshot>) -> BTreeMap<SeriesKey, f64> {
        self.counters
            .iter()
            .map(|(k, &now)| {
                let before = base.and_then(|b| b.counters.get(k)).copied().unwrap_or(0.0);
                (k.clone(), if now >= before { now - before } else { now })
            })
            .collect()
    }
}

fn sum_where(
    series: &BTreeMap<SeriesKey, f64>,
    name: &str,
    keep: impl Fn(&BTreeMap<String, String>) -> bool,
) -> f64 {
    series
        .iter()
        .filter(|((n, labels), _)| n == name && keep(labels))
        .map(|(_, v)| v)
        .sum()
}

/// `histogram_quantile(q, …)` over cumulative buckets `(le, count)`: linear within a bucket,
/// the largest finite bound when the quantile falls in `+Inf`. `None` without observations.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = buckets.to_vec();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 || !buckets.last()?.0.is_infinite() {
        return None;
    }
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for &(le, count) in &buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(previous.0);
            }
            let in_bucket = count - previous.1;
            let fraction = if in_bucket > 0.0 {
                (rank - previous.1) / in_bucket
            } else {
                1.0
            };
            return Some(previous.0 + (le - previous.0) * fraction);
        }
        previous = (le, count);
    }
    None
}

/// p50 and p95 of one histogram (all thresholds, or one).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Latency {
    /// `all`, or `t-of-n`.
    pub threshold: String,
    pub count: u64,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
}

fn latencies(series: &BTreeMap<SeriesKey, f64>, histogram: &str) -> Vec<Latency> {
    let bucket_name = format!("{histogram}_bucket");
    let mut by_threshold: BTreeMap<String, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
    for ((name, labels), &count) in series {
        if *name != bucket_name {
            continue;
        }
        let Some(le) = labels.get("le").and_then(|le| match le.as_str() {
            "+Inf" | "Inf" => Some(f64::INFINITY),
            v => v.parse::<f64>().ok(),
        }) else {
            continue;
        };
        let threshold = labels.get("threshold").cloned().unwrap_or_default();
        for key in ["all".to_owned(), threshold] {
            if key.is_empty() {
                continue;
            }
            let entry = by_threshold
                .entry(key)
                .or_default()
                .entry(le.to_bits())
                .or_insert((le, 0.0));
            entry.1 += count;
        }
    }
    by_threshold
        .into_iter()
        .map(|(threshold, buckets)| {
            let buckets: Vec<(f64, f64)> = buckets.into_values().collect();
            let count = buckets
                .iter()
                .find(|(le, _)| le.is_infinite())
                .map_or(0.0, |b| b.1);
            Latency {
                threshold,
                // Counts are whole numbers far below 2^53.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                count: count.round().max(0.0) as u64,
                p50_seconds: histogram_quantile(0.5, &buckets),
                p95_seconds: histogram_quantile(0.95, &buckets),
            }
        })
        .collect()
}

/// One metrics source and whether its last scrape worked.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SourceStatus {
    /// The URL without credentials.
    pub url: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// The overview's figures.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Figures {
    /// False when no metrics source is configured or none answered.
    pub available: bool,
    /// How much history the windowed figures cover; `null` until two samples exist.
    pub window_seconds: Option<f64>,
    /// Sign sessions completed per minute over the window.
    pub signatures_per_minute: Option<f64>,
    /// Completed / ended over the window (`null` when none ended in it).
    pub success_rate: Option<f64>,
    /// Completed / ended since the coordinator started.
    pub success_rate_since_start: Option<f64>,
    pub sessions_ended_in_window: Option<u64>,
    /// Sessions not yet ended (`mpc_active_sessions`).
    pub active_sessions: Option<f64>,
    /// `window` when the window saw keygens/signs, else `since_start`.
    pub latency_scope: String,
    pub keygen: Vec<Latency>,
    pub sign: Vec<Latency>,
    pub sources: Vec<SourceStatus>,
}

#[derive(Default)]
struct History {
    samples: VecDeque<Snapshot>,
    sources: Vec<SourceStatus>,
}

/// Takes samples from the configured `/metrics` URLs and turns them into [`Figures`].
pub struct FigureSampler {
    client: super::HttpGet,
    urls: Vec<String>,
    history: Mutex<History>,
}

impl FigureSampler {
    pub(crate) fn new(client: super::HttpGet, urls: Vec<String>) -> Self {
        Self {
            client,
            urls,
            history: Mutex::new(History::default()),
        }
    }

    async fn scrape(&self, url: &str) -> Result<Vec<Sample>, String> {
        self.client
            .get(url)
            .await
            .map(|text| prom_text::parse(&text))
    }

    /// Samples if the last sample is old enough, then computes the figures.
    pub async fn figures(&self) -> Figures {
        let mut history = self.history.lock().await;
        let now = Instant::now();
        let due = history
            .samples
            .back()
            .is_none_or(|last| now.duration_since(last.at) >= MIN_SAMPLE_INTERVAL);
        if due && !self.urls.is_empty() {
            let mut samples = Vec::new();
            let mut sources = Vec::new();
            // One after the other: a few URLs, each bounded by the client's timeout.
            for url in &self.urls {
                let (ok, error) = match self.scrape(url).await {
                    Ok(s) => {
                        samples.extend(s);
                        (true, None)
                    }
                    Err(e) => (false, Some(e)),
                };
                sources.push(SourceStatus {
                    url: super::display_url(url),
                    ok,
                    error,
                });
            }
            if sources.iter().any(|s| s.ok) {
                history
                    .samples
                    .push_back(Snapshot::from_samples(now, &samples));
            }
            history.sources = sources;
            // Keep one sample older than the window, so that the window is full.
            while history.samples.len() > 2
                && history
                    .samples
                    .get(1)
                    .is_some_and(|s| now.duration_since(s.at) > WINDOW)
            {
                history.samples.pop_front();
            }
        }
        compute(&history.samples, history.sources.clone())
    }
}

fn compute(samples: &VecDeque<Snapshot>, sources: Vec<SourceStatus>) -> Figures {
    let Some(latest) = samples.back() else {
        return Figures {
            available: false,
            window_seconds: None,
            signatures_per_minute: None,
            success_rate: None,
            success_rate_since_start: None,
            sessions_ended_in_window: None,
            active_sessions: None,
            latency_scope: "since_start".into(),
            keygen: Vec::new(),
            sign: Vec::new(),
            sources,
        };
    };
    // The oldest sample within the window (or just before it).
    let base = samples
        .iter()
        .find(|s| latest.at.duration_since(s.at) <= WINDOW + MIN_SAMPLE_INTERVAL)
        .filter(|s| latest.at.duration_since(s.at) >= MIN_SAMPLE_INTERVAL);
    let total = latest.increase_since(None);
    let window = base.map(|b| {
        (
            latest.increase_since(Some(b)),
            latest.at.duration_since(b.at),
        )
    });

    let outcome_sum = |series: &BTreeMap<SeriesKey, f64>, outcome: Option<&str>| {
        sum_where(series, SESSIONS, |l| {
            outcome.is_none_or(|o| l.get("outcome").map(String::as_str) == Some(o))
        })
    };
    let rate = |series: &BTreeMap<SeriesKey, f64>| {
        let ended = outcome_sum(series, None);
        (ended > 0.0).then(|| outcome_sum(series, Some("completed")) / ended)
    };
    let windowed_latency = window.as_ref().is_some_and(|(w, _)| {
        sum_where(w, &format!("{KEYGEN}_count"), |_| true)
            + sum_where(w, &format!("{SIGN}_count"), |_| true)
            > 0.0
    });
    let latency_source = match &window {
        Some((w, _)) if windowed_latency => w,
        _ => &total,
    };
    Figures {
        available: true,
        window_seconds: window.as_ref().map(|(_, d)| d.as_secs_f64()),
        signatures_per_minute: window.as_ref().map(|(w, d)| {
            let signed = sum_where(w, SESSIONS, |l| {
                l.get("type").map(String::as_str) == Some("sign")
                    && l.get("outcome").map(String::as_str) == Some("completed")
            });
            signed * 60.0 / d.as_secs_f64().max(1.0)
        }),
        success_rate: window.as_ref().and_then(|(w, _)| rate(w)),
        success_rate_since_start: rate(&total),
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        sessions_ended_in_window: window
            .as_ref()
            .map(|(w, _)| outcome_sum(w, None).round().max(0.0) as u64),
        active_sessions: latest.active,
        latency_scope: if windowed_latency {
            "window"
        } else {
            "since_start"
        }
        .into(),
        keygen: latencies(latency_source, KEYGEN),
        sign: latencies(latency_source, SIGN),
        sources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_prometheus() {
        // 10 observations: 5 at ≤ 1 s, 4 more at ≤ 5 s, 1 beyond 10 s.
        let buckets = [(1.0, 5.0), (5.0, 9.0), (10.0, 9.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.5, &buckets), Some(1.0));
        // rank 9.5 lands in +Inf: the largest finite bound.
        assert_eq!(histogram_quantile(0.95, &buckets), Some(10.0));
        assert_eq!(histogram_quantile(0.7, &buckets), Some(3.0));
        assert_eq!(
            histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(histogram_quantile(0.5, &[]), None);
    }

    fn text(signs_ok: u32, signs_failed: u32, sign_le_1: u32, active: u32) -> String {
        format!(
            "mpc_sessions_total{{service=\"c\",type=\"sign\",outcome=\"completed\"}} {signs_ok}\n\
             mpc_sessions_total{{service=\"c\",type=\"sign\",outcome=\"failed\"}} {signs_failed}\n\
             mpc_sessions_total{{service=\"c\",type=\"keygen\",outcome=\"completed\"}} 1\n\
             mpc_sign_duration_seconds_bucket{{service=\"c\",threshold=\"2-of-3\",le=\"1.0\"}} {sign_le_1}\n\
             mpc_sign_duration_seconds_bucket{{service=\"c\",threshold=\"2-of-3\",le=\"+Inf\"}} {signs_ok}\n\
             mpc_sign_duration_seconds_count{{service=\"c\",threshold=\"2-of-3\"}} {signs_ok}\n\
             mpc_keygen_duration_seconds_bucket{{service=\"c\",threshold=\"2-of-3\",le=\"60.0\"}} 1\n\
             mpc_keygen_duration_seconds_bucket{{service=\"c\",threshold=\"2-of-3\",le=\"+Inf\"}} 1\n\
             mpc_keygen_duration_seconds_count{{service=\"c\",threshold=\"2-of-3\"}} 1\n\
             mpc_active_sessions{{service=\"c\"}} {active}\n"
        )
    }

    #[test]
    fn rates_and_quantiles_over_the_window() {
        let t0 = Instant::now();
        let snap = |at: Duration, t: String| Snapshot::from_samples(t0 + at, &prom_text::parse(&t));
        // One sample: since-start figures only.
        let mut samples = VecDeque::from([snap(Duration::ZERO, text(10, 0, 10, 2))]);
        let f = compute(&samples, Vec::new());
        assert!(f.available && f.window_seconds.is_none() && f.signatures_per_minute.is_none());
        assert_eq!(f.success_rate_since_start, Some(1.0));
        assert_eq!(f.active_sessions, Some(2.0));
        assert_eq!(f.latency_scope, "since_start");
        let keygen: Vec<&str> = f.keygen.iter().map(|l| l.threshold.as_str()).collect();
        assert_eq!(keygen, ["2-of-3", "all"]);
        assert_eq!(f.keygen[0].p50_seconds, Some(30.0));

        // A minute later: 6 more signs (4 slow), 2 failures.
        samples.push_back(snap(Duration::from_secs(60), text(16, 2, 12, 0)));
        let f = compute(&samples, Vec::new());
        assert_eq!(f.window_seconds, Some(60.0));
        assert_eq!(f.signatures_per_minute, Some(6.0));
        assert_eq!(f.success_rate, Some(0.75));
        assert_eq!(f.sessions_ended_in_window, Some(8));
        assert_eq!(f.success_rate_since_start, Some(17.0 / 19.0));
        assert_eq!(f.latency_scope, "window");
        let all = f
            .sign
            .iter()
            .find(|l| l.threshold == "all")
            .unwrap_or_else(|| panic!("{f:?}"));
        assert_eq!(all.count, 6);
        // 2 of 6 at ≤ 1 s: the median is in +Inf → 1 s; the keygen saw nothing in the window.
        assert_eq!(all.p50_seconds, Some(1.0));
        assert!(
            f.keygen
                .iter()
                .all(|l| l.count == 0 && l.p50_seconds.is_none())
        );

        // A restart: counters went down and count from zero.
        samples.push_back(snap(Duration::from_secs(120), text(3, 0, 3, 0)));
        let f = compute(&samples, Vec::new());
        assert_eq!(f.window_seconds, Some(120.0));
        assert_eq!(f.signatures_per_minute, Some(1.5));
    }

    #[test]
    fn replicas_add_up_and_active_is_not_double_counted() {
        let a = prom_text::parse(&text(2, 0, 2, 5));
        let b = prom_text::parse(&text(3, 1, 3, 5).replace("service=\"c\"", "service=\"c2\""));
        let both: Vec<Sample> = a.into_iter().chain(b).collect();
        let s = Snapshot::from_samples(Instant::now(), &both);
        let f = compute(&VecDeque::from([s]), Vec::new());
        assert_eq!(f.success_rate_since_start, Some(7.0 / 8.0));
        assert_eq!(f.active_sessions, Some(5.0));
    }

    #[test]
    fn nothing_configured_is_unavailable() {
        let f = compute(&VecDeque::new(), Vec::new());
        assert!(!f.available);
    }
}
