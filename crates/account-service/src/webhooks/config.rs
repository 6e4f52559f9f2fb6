//! Webhook settings (`MPC_WEBHOOK_*`).

use std::time::Duration;

use crate::error::AccountError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `MPC_WEBHOOK_MAX_PER_KEY` (10): webhooks one API key may register.
    pub max_per_key: u32,
    /// `MPC_WEBHOOK_TIMEOUT_SECS` (10): connect and whole-request timeout of an attempt.
    pub timeout: Duration,
    /// `MPC_WEBHOOK_BACKOFF_BASE_MS` (5000): the first retry's delay; each next one doubles,
    /// with jitter (a random 50-100 % of it).
    pub backoff_base: Duration,
    /// `MPC_WEBHOOK_BACKOFF_MAX_SECS` (3600): the longest delay between two attempts.
    pub backoff_max: Duration,
    /// `MPC_WEBHOOK_RETRY_WINDOW_SECS` (86400): how long after the event retries go on.
    pub retry_window: Duration,
    /// `MPC_WEBHOOK_POLL_MS` (1000): how often the worker looks for due deliveries.
    pub poll_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            max_per_key: 10,
            timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            retry_window: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl WebhookConfig {
    pub fn from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<Self, AccountError> {
        let mut c = Self::default();
        let num = |name: &str| -> Result<Option<u64>, AccountError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| AccountError::Config(format!("{name}: expected a number")))
                })
                .transpose()
        };
        if let Some(v) = num("MPC_WEBHOOK_MAX_PER_KEY")? {
            c.max_per_key = u32::try_from(v).unwrap_or(u32::MAX);
        }
        if let Some(v) = num("MPC_WEBHOOK_TIMEOUT_SECS")? {
            c.timeout = Duration::from_secs(v);
        }
        if let Some(v) = num("MPC_WEBHOOK_BACKOFF_BASE_MS")? {
            c.backoff_base = Duration::from_millis(v);
        }
        if let Some(v) = num("MPC_WEBHOOK_BACKOFF_MAX_SECS")? {
            c.backoff_max = Duration::from_secs(v);
        }
        if let Some(v) = num("MPC_WEBHOOK_RETRY_WINDOW_SECS")? {
            c.retry_window = Duration::from_secs(v);
        }
        if let Some(v) = num("MPC_WEBHOOK_POLL_MS")? {
            c.poll_interval = Duration::from_millis(v);
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), AccountError> {
        let bad = |m: &str| Err(AccountError::Config(m.to_owned()));
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(60) {
            return bad("MPC_WEBHOOK_TIMEOUT_SECS must be 1 to 60");
        }
        if self.backoff_base.is_zero() || self.poll_interval.is_zero() {
            return bad("MPC_WEBHOOK_BACKOFF_BASE_MS and MPC_WEBHOOK_POLL_MS must be positive");
        }
        if self.backoff_max < self.backoff_base {
            return bad("MPC_WEBHOOK_BACKOFF_MAX_SECS must be at least the base delay");
        }
        Ok(())
    }
}
