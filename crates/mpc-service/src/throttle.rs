//! Throttling of credential guessing: an address that presents a wrong API key or access token
//! again and again is refused with `429 too_many_failures` (and `Retry-After`) until its window
//! ends.
//!
//! - A window starts at an address's first failure and lasts `window` (default 60 s); after
//!   `max_failures` failures in it (`MPC_AUTH_FAILURE_LIMIT`, default 20) every authenticated
//!   request from the address is refused until the window ends, **whatever credential it
//!   carries**: the check comes before the credential is looked at, so a throttled guesser learns
//!   nothing about its guesses (and a legitimate client behind the same address waits too).
//! - What counts is a refusal of the credential itself, which the authentication middleware marks
//!   with [`AuthFailure`] on its response; other 401s (e.g. an expired join token presented with
//!   a valid API key) do not count.
//! - The first refusal of a window is reported to a [`ThrottleSink`] (the Account Service writes
//!   one audit row); the others are not, so a flood costs one record per window.
//! - Memory is bounded: at most `max_tracked` addresses are remembered. When full, expired windows
//!   are dropped; if it is still full, new addresses share one overflow window, so rotating
//!   addresses throttles them together instead of growing the map. IPv6 addresses count per /64
//!   (what one host is usually given).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mpc_proto::{ApiError, ErrorCode};
use tokio::time::Instant;

/// Marks a response as a refused credential (set by the authentication middleware).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailure;

/// How many failures, in what window, from how many addresses at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures per window before the address is refused; 0 turns throttling off.
    pub max_failures: u32,
    pub window: Duration,
    /// Addresses remembered at once (≈ 64 bytes each).
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            max_failures: 20,
            window: Duration::from_secs(60),
            max_tracked: 65_536,
        }
    }
}

impl ThrottleConfig {
    /// Reads `MPC_AUTH_FAILURE_LIMIT` (failures per window, 0 = off) and
    /// `MPC_AUTH_FAILURE_WINDOW_SECS` (default 60) over `self`.
    pub fn from_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        if let Some(v) = var("MPC_AUTH_FAILURE_LIMIT") {
            self.max_failures = v
                .trim()
                .parse()
                .map_err(|_| "MPC_AUTH_FAILURE_LIMIT: expected a whole number".to_owned())?;
        }
        if let Some(v) = var("MPC_AUTH_FAILURE_WINDOW_SECS") {
            let secs: u64 =
                v.trim().parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    "MPC_AUTH_FAILURE_WINDOW_SECS: expected seconds > 0".to_owned()
                })?;
            self.window = Duration::from_secs(secs);
        }
        Ok(self)
    }
}

/// The first refused request of a window, for the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub ip: IpAddr,
    pub failures: u32,
    pub window: Duration,
    pub retry_after: u32,
}

/// Where the first refusal of each window is reported.
#[async_trait]
pub trait ThrottleSink: Send + Sync {
    async fn throttled(&self, event: &Throttled, request: &axum::http::request::Parts);
}

/// Logs the event at warn level (for services without an audit log).
pub struct LogSink;

#[async_trait]
impl ThrottleSink for LogSink {
    async fn throttled(&self, event: &Throttled, _request: &axum::http::request::Parts) {
        tracing::warn!(
            ip = %event.ip,
            failures = event.failures,
            window_secs = event.window.as_secs(),
            "throttling an address after repeated credential failures"
        );
    }
}

#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
    reported: bool,
}

#[derive(Debug, Default)]
struct Windows {
    by_address: HashMap<IpAddr, Window>,
    overflow: Option<Window>,
}

/// The per-address failure windows.
#[derive(Debug)]
pub struct AuthThrottle {
    config: ThrottleConfig,
    windows: Mutex<Windows>,
}

/// Whether a request may proceed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Refused; `first` is true for the window's first refusal (to be recorded).
    Refused {
        retry_after: u32,
        first: bool,
    },
}

/// IPv4-mapped IPv6 as IPv4; other IPv6 as its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AuthThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            windows: Mutex::new(Windows::default()),
        }
    }

    pub fn config(&self) -> ThrottleConfig {
        self.config
    }

    fn live(&self, w: &Window, now: Instant) -> bool {
        now < w.started + self.config.window
    }

    /// Before authentication: is `ip` refused right now?
    pub fn check(&self, ip: IpAddr) -> Verdict {
        if self.config.max_failures == 0 {
            return Verdict::Allowed;
        }
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let ip = bucket(ip);
        let max = self.config.max_failures;
        let window = self.config.window;
        let w = match windows.by_address.get_mut(&ip) {
            Some(w) => Some(w),
            None => windows.overflow.as_mut(),
        };
        match w {
            Some(w) if w.failures >= max && now < w.started + window => {
                let left = (w.started + window).saturating_duration_since(now);
                let retry_after = u32::try_from(left.as_millis().div_ceil(1000))
                    .unwrap_or(u32::MAX)
                    .max(1);
                let first = !w.reported;
                w.reported = true;
                Verdict::Refused { retry_after, first }
            }
            _ => Verdict::Allowed,
        }
    }

    /// After a refused credential from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        if self.config.max_failures == 0 {
            return;
        }
        let now = Instant::now();
        let fresh = Window {
            started: now,
            failures: 1,
            reported: false,
        };
        let ip = bucket(ip);
        let mut guard = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let windows = &mut *guard;
        if let Some(w) = windows.by_address.get_mut(&ip) {
            if self.live(w, now) {
                w.failures = w.failures.saturating_add(1);
            } else {
                *w = fresh;
            }
            return;
        }
        if windows.by_address.len() >= self.config.max_tracked {
            windows
                .by_address
                .retain(|_, w| now < w.started + self.config.window);
        }
        if windows.by_address.len() < self.config.max_tracked {
            windows.by_address.insert(ip, fresh);
            return;
        }
        match &mut windows.overflow {
            Some(w) if now < w.started + self.config.window => {
                w.failures = w.failures.saturating_add(1);
            }
            slot => *slot = Some(fresh),
        }
    }

    /// Addresses remembered now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_address
            .len()
    }
}

/// The caller's address: the first `X-Forwarded-For` entry when trusted (behind a proxy that sets
/// it), else the peer's.
pub fn client_ip(req: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(ip);
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// What [`throttle_auth_failures`] needs.
#[derive(Clone)]
pub struct ThrottleState {
    pub throttle: Arc<AuthThrottle>,
    pub sink: Arc<dyn ThrottleSink>,
    pub trust_forwarded_for: bool,
    /// Bodies up to this size are read before a refusal (see [`refuse_after_draining`]).
    pub body_limit: usize,
}

/// The refusal of a throttled address.
pub fn too_many_failures(retry_after: u32) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyFailures,
        "too many failed authentication attempts from this address; retry after the Retry-After delay",
    )
    .with_retry_after(retry_after)
}

/// Middleware around the authenticated routes, outside the authentication (and the audit) layer:
/// refuses throttled addresses, and counts the responses marked [`AuthFailure`].
pub async fn throttle_auth_failures(
    State(state): State<ThrottleState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(ip) = client_ip(&req, state.trust_forwarded_for) else {
        return next.run(req).await;
    };
    match state.throttle.check(ip) {
        Verdict::Allowed => {}
        Verdict::Refused { retry_after, first } => {
            let (parts, body) = req.into_parts();
            if first {
                let event = Throttled {
                    ip,
                    failures: state.throttle.config().max_failures,
                    window: state.throttle.config().window,
                    retry_after,
                };
                state.sink.throttled(&event, &parts).await;
            }
            let req = Request::from_parts(parts, body);
            return refuse_after_draining(req, state.body_limit, too_many_failures(retry_after))
                .await;
        }
    }
    let response = next.run(req).await;
    if response.extensions().get::<AuthFailure>().is_some() {
        state.throttle.record_failure(ip);
    }
    response
}

/// A refusal that reaches the caller whole. Answering before the request body was read and then
/// dropping the connection makes the kernel reset it while the client is still sending, and the
/// client may lose the answer with the reset (seen as ~1% of refused keep-alive POSTs). So the
/// body is read and dropped first (never parsed), up to `body_limit`; a larger one gets the
/// answer with `Connection: close`.
pub async fn refuse_after_draining(
    request: Request,
    body_limit: usize,
    error: ApiError,
) -> Response {
    let drained = axum::body::to_bytes(request.into_body(), body_limit)
        .await
        .is_ok();
    let mut response = error.into_response();
    if !drained {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn config(max_failures: u32, max_tracked: usize) -> ThrottleConfig {
        ThrottleConfig {
            max_failures,
            window: Duration::from_secs(60),
            max_tracked,
        }
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
    }

    #[tokio::test(start_paused = true)]
    async fn refused_after_the_limit_until_the_window_ends() {
        let t = AuthThrottle::new(config(3, 100));
        for _ in 0..3 {
            assert_eq!(t.check(v4(1)), Verdict::Allowed);
            t.record_failure(v4(1));
        }
        assert_eq!(
            t.check(v4(1)),
            Verdict::Refused {
                retry_after: 60,
                first: true
            }
        );
        tokio::time::advance(Duration::from_millis(30_500)).await;
        assert_eq!(
            t.check(v4(1)),
            Verdict::Refused {
                retry_after: 30,
                first: false
            }
        );
        assert_eq!(t.check(v4(2)), Verdict::Allowed, "other addresses are not");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(t.check(v4(1)), Verdict::Allowed, "the window has ended");
        t.record_failure(v4(1));
        assert_eq!(
            t.check(v4(1)),
            Verdict::Allowed,
            "a new window, one failure"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rotating_addresses_do_not_grow_the_map() {
        let t = AuthThrottle::new(config(5, 16));
        for i in 0..=255u8 {
            t.record_failure(v4(i));
        }
        assert_eq!(t.tracked(), 16);
        // The untracked addresses share the overflow window, which is now throttled.
        assert!(matches!(t.check(v4(200)), Verdict::Refused { .. }));
        assert_eq!(t.check(v4(0)), Verdict::Allowed, "tracked: one failure");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(t.check(v4(200)), Verdict::Allowed);
        t.record_failure(v4(250));
        assert_eq!(
            t.tracked(),
            1,
            "expired windows were dropped for the new one"
        );
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bucket(a), bucket(b));
        let mapped: IpAddr = "::ffff:203.0.113.7"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(bucket(mapped), v4(7));
    }

    #[test]
    fn zero_turns_it_off_and_variables_are_read() {
        let t = AuthThrottle::new(config(0, 16));
        for _ in 0..100 {
            t.record_failure(v4(1));
        }
        assert_eq!(t.check(v4(1)), Verdict::Allowed);
        let vars = |k: &str| match k {
            "MPC_AUTH_FAILURE_LIMIT" => Some("7".to_owned()),
            "MPC_AUTH_FAILURE_WINDOW_SECS" => Some("5".to_owned()),
            _ => None,
        };
        let c = ThrottleConfig::default().from_vars(vars);
        assert_eq!(
            c.map(|c| (c.max_failures, c.window)),
            Ok((7, Duration::from_secs(5)))
        );
        let bad = ThrottleConfig::default().from_vars(|_| Some("x".to_owned()));
        assert!(bad.is_err_and(|e| e.contains("MPC_AUTH_FAILURE_LIMIT")));
    }
}
