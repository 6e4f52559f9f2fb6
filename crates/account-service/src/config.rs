//! The Account Service's configuration. Secrets (the bootstrap API key, the coordinator's
//! service token, the access-token seed) are `SecretString`s: never in `Debug` output or logs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::access_token::AccessTokenSigner;
use crate::error::AccountError;

/// Integration guide §1.2: the Account Service listens on 4000.
pub const DEFAULT_HTTP_PORT: u16 = 4000;
/// Short-lived: a device token for the Server Party API.
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Request bodies are small JSON documents (a sign request with shares inline is the largest).
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;
/// A 16-party share is ~1.5 MB, ~3 MB as hex (the Server Party API's limit too).
pub const DEFAULT_SHARE_BODY_LIMIT: usize = 8 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct AccountConfig {
    pub http_addr: SocketAddr,
    /// Where the `mpc` binary connects the database (`postgres://…` or `sqlite:…`); `serve`
    /// receives the connected pool.
    pub database_url: String,
    /// The coordinator's gRPC endpoint, `http://host:50051`.
    pub coordinator_endpoint: String,
    /// Sent as `authorization: Bearer …` on CreateSession and GetSession.
    pub coordinator_service_token: Option<SecretString>,
    /// `MPC_API_KEY`: an admin key that always works (as in the guide's compose file). Optional
    /// once keys have been created through the admin API.
    pub bootstrap_api_key: Option<SecretString>,
    /// 32 bytes, base64: the Ed25519 seed that signs access tokens. Required.
    pub access_token_seed: SecretString,
    pub access_token_lifetime: Duration,
    pub body_limit: usize,
    /// Bodies that carry a device's share (`POST /api/v1/mpc/sign` and the device
    /// operations): as the Server Party API's limit, room for a 16-party share as hex.
    pub share_body_limit: usize,
    /// Session lifetime asked of the coordinator; 0 = the coordinator's default (10 min).
    pub session_lifetime_seconds: u32,
    /// How often sessions still pending here are checked with the coordinator (in case an
    /// event was missed), and the account gauge refreshed.
    pub reconcile_interval: Duration,
    /// Sessions younger than this are left to the event consumer by the reconciler.
    pub reconcile_after: Duration,
    /// Use the first `X-Forwarded-For` address as the client's in the audit log. Only behind a
    /// proxy that sets it: clients can send anything.
    pub trust_forwarded_for: bool,
    /// Deadline for calls to the coordinator.
    pub coordinator_timeout: Duration,
    /// The durable queue session outcomes are consumed from. Replicas share it (competing
    /// consumers); two systems on one broker need different names, or they steal each other's
    /// events. Default `mpc.account`.
    pub bus_queue: String,
    /// Where the operator console finds the services' metrics and the parties.
    pub console: crate::console::ConsoleConfig,
    /// The Server Party API (`http://party-api:8083`), to which the device operations
    /// (`/api/v1/keygen/generate-user-share`, …) and one-call signatures are relayed over the
    /// internal network. Without it those answer 503.
    pub party_api_url: Option<String>,
    /// Deadline of each relayed call: above the Server Party API's own bound (10 min).
    pub party_api_timeout: Duration,
    /// Sessions in flight at once (created here, not ended), the FIFO queue in front of them
    /// and its longest wait; beyond both, keygen/sign/refresh/recover get `429 overloaded`
    /// with `Retry-After` (`MPC_ACCOUNT_ADMISSION_BUDGET`, `…_QUEUE`, `…_QUEUE_WAIT_MS`).
    pub admission: mpc_service::AdmissionConfig,
    /// A session's slot is freed when it ends, or after this at the latest
    /// (`MPC_ACCOUNT_ADMISSION_HOLD_SECS`): one waiting for a device that never comes must not
    /// hold the entrance shut.
    pub admission_hold: Duration,
    /// Webhook delivery settings (`MPC_WEBHOOK_*`).
    pub webhooks: crate::webhooks::WebhookConfig,
    /// TLS for the listeners and the clients (`MPC_TLS_*`, see `mpc_service::tls`). Default:
    /// plaintext.
    pub tls: mpc_service::TlsConfig,
    /// Per-request deadline of the API (`MPC_ACCOUNT_REQUEST_DEADLINE_SECS`, body upload
    /// included); a request still running then is answered 504 `timeout`. The long poll
    /// (`GET /api/v1/mpc/sessions/{id}?wait=`) gets this plus its longest wait (60 s), and the
    /// routes relayed to the Server Party API `party_api_timeout` plus this.
    pub request_deadline: Duration,
    /// Wrong API keys or access tokens per address and window before `429 too_many_failures`
    /// (`MPC_AUTH_FAILURE_LIMIT`, `MPC_AUTH_FAILURE_WINDOW_SECS`).
    pub auth_throttle: mpc_service::ThrottleConfig,
}

/// Measured on a 2-core machine: ≈ 100 signatures/s, each in flight for tens of ms when the
/// machine is not saturated; 64 in flight keeps both cores busy while bounding the latency of
/// a burst, and a queue twice that absorbs a batch of withdrawals.
pub const DEFAULT_ADMISSION: mpc_service::AdmissionConfig = mpc_service::AdmissionConfig {
    budget: 64,
    queue_limit: 128,
    max_wait: Duration::from_secs(2),
};
pub const DEFAULT_ADMISSION_HOLD: Duration = Duration::from_secs(30);
/// Above the coordinator's deadline (15 s) plus the admission queue's longest wait (2 s).
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(30);

impl AccountConfig {
    /// Defaults for everything but the database url, the coordinator and the access-token seed.
    pub fn new(
        database_url: impl Into<String>,
        coordinator_endpoint: impl Into<String>,
        access_token_seed: SecretString,
    ) -> Self {
        Self {
            http_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_HTTP_PORT)),
            database_url: database_url.into(),
            coordinator_endpoint: coordinator_endpoint.into(),
            coordinator_service_token: None,
            bootstrap_api_key: None,
            access_token_seed,
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            body_limit: DEFAULT_BODY_LIMIT,
            share_body_limit: DEFAULT_SHARE_BODY_LIMIT,
            session_lifetime_seconds: 0,
            reconcile_interval: Duration::from_secs(5),
            reconcile_after: Duration::from_secs(5),
            trust_forwarded_for: false,
            coordinator_timeout: Duration::from_secs(15),
            bus_queue: crate::outcomes::QUEUE.to_owned(),
            console: crate::console::ConsoleConfig::default(),
            party_api_url: None,
            party_api_timeout: Duration::from_secs(630),
            admission: DEFAULT_ADMISSION,
            admission_hold: DEFAULT_ADMISSION_HOLD,
            webhooks: crate::webhooks::WebhookConfig::default(),
            tls: mpc_service::TlsConfig::default(),
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            auth_throttle: mpc_service::ThrottleConfig::default(),
        }
    }

    /// From `MPC_…` variables (read through `var`, e.g. `std::env::var(..).ok()`).
    ///
    /// Required: `MPC_ACCESS_TOKEN_SEED` (base64 of 32 bytes), `MPC_ACCOUNT_DATABASE_URL` or
    /// `DATABASE_URL`. Optional: `MPC_ACCOUNT_HTTP_ADDR`, `MPC_COORDINATOR_GRPC` (default
    /// `http://127.0.0.1:50051`), `MPC_SERVICE_TOKEN`, `MPC_API_KEY`,
    /// `MPC_ACCESS_TOKEN_LIFETIME_SECS`, `MPC_SESSION_LIFETIME_SECS`, `MPC_TRUST_FORWARDED_FOR`,
    /// `MPC_ACCOUNT_BUS_QUEUE`, `MPC_PARTY_API_URL`, and the console's (`crate::console::config`).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, AccountError> {
        let missing = |name: &str| AccountError::Config(format!("{name} is required"));
        let invalid =
            |name: &str, what: &str| AccountError::Config(format!("{name}: expected {what}"));
        let seed = var("MPC_ACCESS_TOKEN_SEED").ok_or_else(|| missing("MPC_ACCESS_TOKEN_SEED"))?;
        let db = var("MPC_ACCOUNT_DATABASE_URL")
            .or_else(|| var("DATABASE_URL"))
            .ok_or_else(|| missing("MPC_ACCOUNT_DATABASE_URL or DATABASE_URL"))?;
        let coordinator =
            var("MPC_COORDINATOR_GRPC").unwrap_or_else(|| "http://127.0.0.1:50051".into());
        let mut c = Self::new(db, coordinator, SecretString::from(seed));
        if let Some(v) = var("MPC_ACCOUNT_HTTP_ADDR") {
            c.http_addr = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_ACCOUNT_HTTP_ADDR", "host:port"))?;
        }
        c.coordinator_service_token = var("MPC_SERVICE_TOKEN")
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        c.bootstrap_api_key = var("MPC_API_KEY")
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        if let Some(v) = var("MPC_ACCESS_TOKEN_LIFETIME_SECS") {
            c.access_token_lifetime = v
                .trim()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| invalid("MPC_ACCESS_TOKEN_LIFETIME_SECS", "seconds"))?;
        }
        if let Some(v) = var("MPC_SESSION_LIFETIME_SECS") {
            c.session_lifetime_seconds = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_SESSION_LIFETIME_SECS", "seconds"))?;
        }
        if let Some(v) = var("MPC_TRUST_FORWARDED_FOR") {
            c.trust_forwarded_for = match v.trim() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                _ => return Err(invalid("MPC_TRUST_FORWARDED_FOR", "true or false")),
            };
        }
        if let Some(v) = var("MPC_ACCOUNT_BUS_QUEUE") {
            c.bus_queue = v.trim().to_owned();
        }
        c.console = crate::console::ConsoleConfig::from_vars(&var)?;
        c.party_api_url = var("MPC_PARTY_API_URL")
            .map(|v| v.trim().trim_end_matches('/').to_owned())
            .filter(|v| !v.is_empty());
        c.admission = c
            .admission
            .from_vars("MPC_ACCOUNT_ADMISSION", &var)
            .map_err(AccountError::Config)?;
        if let Some(v) = var("MPC_ACCOUNT_ADMISSION_HOLD_SECS") {
            c.admission_hold = Duration::from_secs(
                v.trim()
                    .parse()
                    .map_err(|_| invalid("MPC_ACCOUNT_ADMISSION_HOLD_SECS", "seconds"))?,
            );
        }
        c.webhooks = crate::webhooks::WebhookConfig::from_vars(&var)?;
        let bytes = |name: &str| -> Result<Option<usize>, AccountError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| invalid(name, "a number of bytes"))
                })
                .transpose()
        };
        if let Some(v) = bytes("MPC_ACCOUNT_BODY_LIMIT_BYTES")? {
            c.body_limit = v;
        }
        if let Some(v) = bytes("MPC_ACCOUNT_SHARE_BODY_LIMIT_BYTES")? {
            c.share_body_limit = v;
        }
        if let Some(v) = var("MPC_ACCOUNT_REQUEST_DEADLINE_SECS") {
            c.request_deadline = Duration::from_secs(
                v.trim()
                    .parse()
                    .map_err(|_| invalid("MPC_ACCOUNT_REQUEST_DEADLINE_SECS", "seconds"))?,
            );
        }
        c.auth_throttle = c
            .auth_throttle
            .from_vars(&var)
            .map_err(AccountError::Config)?;
        c.validate()?;
        Ok(c)
    }

    /// The access-token seed, from which the webhook secrets' sealing key is derived.
    pub(crate) fn seed(&self) -> Result<Zeroizing<[u8; 32]>, AccountError> {
        decode_seed(self.access_token_seed.expose_secret())
    }

    pub fn access_token_signer(&self) -> Result<AccessTokenSigner, AccountError> {
        let seed = decode_seed(self.access_token_seed.expose_secret())?;
        Ok(AccessTokenSigner::from_seed(&seed))
    }

    pub(crate) fn validate(&self) -> Result<(), AccountError> {
        self.access_token_signer()?;
        self.webhooks.validate()?;
        if self.access_token_lifetime.is_zero() || self.reconcile_interval.is_zero() {
            return Err(AccountError::Config(
                "access_token_lifetime and reconcile_interval must be positive".into(),
            ));
        }
        if self.request_deadline.is_zero() {
            return Err(AccountError::Config(
                "request_deadline (MPC_ACCOUNT_REQUEST_DEADLINE_SECS) must be positive".into(),
            ));
        }
        if self.body_limit < 1024 || self.share_body_limit < self.body_limit {
            return Err(AccountError::Config(
                "body_limit must be at least 1 KiB, and share_body_limit at least body_limit"
                    .into(),
            ));
        }
        if let Some(key) = &self.bootstrap_api_key
            && key.expose_secret().trim().len() < 16
        {
            // The guide generates keys with `openssl rand -base64 48`; refuse trivial ones.
            return Err(AccountError::Config(
                "MPC_API_KEY must be at least 16 characters".into(),
            ));
        }
        if self.bus_queue.is_empty() {
            return Err(AccountError::Config("bus_queue must not be empty".into()));
        }
        if !(self.coordinator_endpoint.starts_with("http://")
            || self.coordinator_endpoint.starts_with("https://"))
        {
            return Err(AccountError::Config(
                "coordinator_endpoint must be an http:// or https:// url".into(),
            ));
        }
        if let Some(url) = &self.party_api_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(AccountError::Config(
                "party_api_url (MPC_PARTY_API_URL) must be an http:// or https:// url".into(),
            ));
        }
        Ok(())
    }
}

fn decode_seed(b64: &str) -> Result<Zeroizing<[u8; 32]>, AccountError> {
    let invalid =
        || AccountError::Config("access_token_seed must be 32 bytes, base64-encoded".to_owned());
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| invalid())?,
    );
    let mut seed = Zeroizing::new([0u8; 32]);
    if bytes.len() != seed.len() {
        return Err(invalid());
    }
    seed.copy_from_slice(&bytes);
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AccountConfig {
        let seed = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        AccountConfig::new("sqlite::memory:", "http://127.0.0.1:50051", seed.into())
    }

    #[test]
    fn defaults_follow_the_guide() {
        let c = config();
        assert_eq!(c.http_addr.port(), 4000);
        assert_eq!(c.access_token_lifetime, Duration::from_secs(900));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_values_are_refused() {
        let mut c = config();
        c.access_token_seed = SecretString::from("short".to_owned());
        assert!(matches!(c.validate(), Err(AccountError::Config(_))));
        let mut c = config();
        c.bootstrap_api_key = Some(SecretString::from("abc".to_owned()));
        assert!(matches!(c.validate(), Err(AccountError::Config(_))));
        let mut c = config();
        c.coordinator_endpoint = "127.0.0.1:50051".into();
        assert!(matches!(c.validate(), Err(AccountError::Config(_))));
    }

    #[test]
    fn debug_hides_secrets() {
        let mut c = config();
        c.bootstrap_api_key = Some(SecretString::from("bootstrap-secret-key".to_owned()));
        c.coordinator_service_token = Some(SecretString::from("service-secret".to_owned()));
        let shown = format!("{c:?}");
        assert!(!shown.contains("bootstrap-secret-key"), "{shown}");
        assert!(!shown.contains("service-secret"), "{shown}");
        assert!(!shown.contains(&base64::engine::general_purpose::STANDARD.encode([3u8; 32])));
    }
}

#[cfg(test)]
mod from_vars_tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn reads_the_documented_variables() {
        let seed = base64::engine::general_purpose::STANDARD.encode([4u8; 32]);
        let c = AccountConfig::from_vars(vars(&[
            ("MPC_ACCESS_TOKEN_SEED", &seed),
            ("DATABASE_URL", "sqlite://a.db"),
            ("MPC_COORDINATOR_GRPC", "http://coordinator:50051"),
            ("MPC_API_KEY", "a-long-enough-bootstrap-key"),
            ("MPC_TRUST_FORWARDED_FOR", "true"),
            ("MPC_PARTY_API_URL", "http://party-api:8083/"),
        ]))
        .unwrap();
        assert_eq!(c.party_api_url.as_deref(), Some("http://party-api:8083"));
        assert_eq!(c.coordinator_endpoint, "http://coordinator:50051");
        assert!(c.bootstrap_api_key.is_some() && c.trust_forwarded_for);
        assert_eq!(c.http_addr.port(), DEFAULT_HTTP_PORT);
        assert_eq!(c.bus_queue, "mpc.account", "the default queue");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(&seed) && !dbg.contains("a-long-enough-bootstrap-key"));
    }

    #[test]
    fn the_bus_queue_is_configurable_but_not_empty() {
        let seed = base64::engine::general_purpose::STANDARD.encode([4u8; 32]);
        let with_queue = |queue: &str| {
            AccountConfig::from_vars(vars(&[
                ("MPC_ACCESS_TOKEN_SEED", &seed),
                ("DATABASE_URL", "sqlite://a.db"),
                ("MPC_ACCOUNT_BUS_QUEUE", queue),
            ]))
        };
        assert_eq!(
            with_queue("mpc.account.blue").unwrap().bus_queue,
            "mpc.account.blue"
        );
        let err = with_queue("  ").unwrap_err().to_string();
        assert!(err.contains("bus_queue"), "{err}");
    }

    #[test]
    fn missing_or_bad_values_name_the_variable() {
        let seed = base64::engine::general_purpose::STANDARD.encode([4u8; 32]);
        for (pairs, name) in [
            (vec![("DATABASE_URL", "x")], "MPC_ACCESS_TOKEN_SEED"),
            (
                vec![("MPC_ACCESS_TOKEN_SEED", seed.as_str())],
                "DATABASE_URL",
            ),
            (
                vec![
                    ("MPC_ACCESS_TOKEN_SEED", seed.as_str()),
                    ("DATABASE_URL", "x"),
                    ("MPC_API_KEY", "short"),
                ],
                "MPC_API_KEY",
            ),
            (
                vec![
                    ("MPC_ACCESS_TOKEN_SEED", seed.as_str()),
                    ("DATABASE_URL", "x"),
                    ("MPC_TRUST_FORWARDED_FOR", "maybe"),
                ],
                "MPC_TRUST_FORWARDED_FOR",
            ),
        ] {
            let err = AccountConfig::from_vars(vars(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
