//! The delivery worker: claims due deliveries (with a lease a little longer than the request
//! timeout), POSTs each with its signature, and records the attempt and what follows it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use mpc_service::Shutdown;
use mpc_store::webhook::{AttemptRecord, AttemptResult, DueDelivery};
use sha2::Sha256;
use tokio::task::JoinSet;

use super::{WebhookConfig, Webhooks};

/// Deliveries claimed at a time (and sent concurrently) by one replica.
const BATCH: u32 = 32;
/// The receiver's answer kept in the attempt log, at most.
const ERROR_LEN: usize = 200;

/// `v1=` and the lowercase hex HMAC-SHA256 under `secret` of `timestamp`, `.`, `body`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delay before attempt `attempts + 1`: base × 2^(attempts-1), capped, times a random
/// 50-100 % so that receivers coming back are not hit by every sender at once.
pub fn backoff(config: &WebhookConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let full = config
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(config.backoff_max);
    let mut r = [0u8; 4];
    let frac = if getrandom::fill(&mut r).is_ok() {
        0.5 + f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX) / 2.0
    } else {
        1.0
    };
    full.mul_f64(frac)
}

fn next_step(config: &WebhookConfig, due: &DueDelivery, now: DateTime<Utc>) -> AttemptResult {
    let next = now + TimeDelta::from_std(backoff(config, due.attempts + 1)).unwrap_or_default();
    let window = TimeDelta::from_std(config.retry_window).unwrap_or(TimeDelta::days(1));
    if next > due.created_at + window {
        AttemptResult::GiveUp
    } else {
        AttemptResult::Retry(next)
    }
}

impl Webhooks {
    async fn attempt(&self, due: &DueDelivery) {
        let started = Instant::now();
        let attempted_at = Utc::now();
        let timestamp = attempted_at.timestamp();
        let (status_code, error) = match self.open(due.webhook_id, &due.secret_sealed) {
            Err(_) => (None, Some("the webhook's secret does not open".to_owned())),
            Ok(secret) => {
                let sent = self
                    .client
                    .post(&due.url)
                    .header("content-type", "application/json")
                    .header("user-agent", "mpc-system-webhooks/1")
                    .header("x-mpc-timestamp", timestamp.to_string())
                    .header(
                        "x-mpc-signature",
                        signature(&secret, timestamp, due.body.as_bytes()),
                    )
                    .header("x-mpc-event-id", due.id.to_string())
                    .body(due.body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
                    Ok(r) => (
                        Some(r.status().as_u16()),
                        Some(format!("answered {}", r.status())),
                    ),
                    Err(e) if e.is_timeout() => (None, Some("timed out".to_owned())),
                    Err(e) if e.is_connect() => (None, Some("could not connect".to_owned())),
                    Err(_) => (None, Some("request failed".to_owned())),
                }
            }
        };
        let delivered = error.is_none();
        let result = if delivered {
            AttemptResult::Delivered
        } else {
            next_step(&self.config, due, attempted_at)
        };
        self.metrics.count(match result {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Retry(_) => "retry",
            AttemptResult::GiveUp => "failed",
        });
        let record = AttemptRecord {
            attempt: due.attempts + 1,
            attempted_at,
            status_code,
            error: error.map(|e| e.chars().take(ERROR_LEN).collect()),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        match self
            .store
            .finish_attempt(due.id, &self.worker_id, &record, result)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::debug!(delivery = %due.id, "lease lost; attempt not recorded"),
            Err(e) => {
                tracing::warn!(error = %e, delivery = %due.id, "could not record a webhook attempt")
            }
        }
        if !delivered {
            tracing::info!(delivery = %due.id, webhook = %due.webhook_id, attempt = record.attempt, status = ?status_code, "webhook delivery not accepted");
        }
    }

    /// Claims and sends one batch; returns how many were claimed.
    async fn run_once(self: &Arc<Self>) -> usize {
        let now = Utc::now();
        // The lease outlives the request (timeout) plus the time to record it.
        let lease = TimeDelta::from_std(self.config.timeout * 2 + Duration::from_secs(5))
            .unwrap_or(TimeDelta::minutes(1));
        let due = match self
            .store
            .claim_due(&self.worker_id, now, now + lease, BATCH)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim webhook deliveries");
                return 0;
            }
        };
        let n = due.len();
        let mut tasks = JoinSet::new();
        for d in due {
            let this = self.clone();
            tasks.spawn(async move { this.attempt(&d).await });
        }
        while tasks.join_next().await.is_some() {}
        n
    }
}

/// Sends due deliveries until `stop`. Every replica runs one; leases keep them apart.
pub async fn run_worker(webhooks: Arc<Webhooks>, stop: Shutdown) {
    loop {
        let claimed = tokio::select! {
            () = stop.cancelled() => return,
            n = webhooks.run_once() => n,
        };
        if claimed == BATCH as usize {
            continue; // more may be due
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(webhooks.config.poll_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // HMAC-SHA256("key", "1700000000.{}") computed independently (Python's hmac module).
        assert_eq!(
            signature(b"key", 1_700_000_000, b"{}"),
            "v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let c = WebhookConfig {
            backoff_base: Duration::from_secs(4),
            backoff_max: Duration::from_secs(20),
            ..WebhookConfig::default()
        };
        for (attempts, full) in [(1, 4), (2, 8), (3, 16), (4, 20), (40, 20)] {
            let d = backoff(&c, attempts);
            assert!(
                d >= Duration::from_secs(full) / 2 && d <= Duration::from_secs(full),
                "{attempts}: {d:?}"
            );
        }
    }
}
