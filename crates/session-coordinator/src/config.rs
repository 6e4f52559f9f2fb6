//! The coordinator's configuration. Secrets (the join-token seed, the service token) are
//! `SecretString`s: they never appear in `Debug` output or logs.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use mpc_proto::TokenSigner;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::CoordinatorError;

/// Integration guide: HTTP 8081.
pub const DEFAULT_HTTP_PORT: u16 = 8081;
/// Integration guide: gRPC 50051.
pub const DEFAULT_GRPC_PORT: u16 = 50051;
/// Integration guide §6.1: sessions expire after 10 minutes by default.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(600);
pub const DEFAULT_MAX_SESSION_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a session waits for all its parties to join.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// Where the `mpc` binary connects the coordinator's database (`postgres://…` or `sqlite:…`).
    /// `serve` itself receives the connected pool.
    pub database_url: String,
    /// 32 bytes, base64: the Ed25519 seed that signs join tokens. Required; the `mpc` binary
    /// generates and persists one. Whoever has it can join any session.
    pub join_token_seed: SecretString,
    /// Lifetime of a session created with `lifetime_seconds = 0`.
    pub default_session_lifetime: Duration,
    /// Upper bound on a requested lifetime.
    pub max_session_lifetime: Duration,
    /// A session whose parties have not all joined this long after its creation fails
    /// ("timeout waiting for party … to join") instead of waiting out its lifetime.
    pub join_timeout: Duration,
    /// How often expired sessions are swept (also refreshes the active-sessions gauge).
    pub expiry_interval: Duration,
    /// How often the outbox relay retries events that could not be published at once.
    pub outbox_interval: Duration,
    /// Watchers re-read their session this often even without a change notification, to catch
    /// notifications lost while a database connection was re-established.
    pub watch_poll_interval: Duration,
    /// When set, CreateSession, GetSession and WatchSession (without a join token) need
    /// `authorization: Bearer <token>`.
    pub service_token: Option<SecretString>,
    /// The party registry: refuse sessions naming unknown or dead server parties, and how often
    /// parties heartbeat.
    pub registry: crate::registry::RegistryConfig,
    /// TLS for the listeners and the clients (`MPC_TLS_*`, see `mpc_service::tls`). Default:
    /// plaintext.
    pub tls: mpc_service::TlsConfig,
}

impl CoordinatorConfig {
    /// Defaults for everything but the database url and the join-token seed.
    pub fn new(database_url: impl Into<String>, join_token_seed: SecretString) -> Self {
        Self {
            http_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_HTTP_PORT)),
            grpc_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_GRPC_PORT)),
            database_url: database_url.into(),
            join_token_seed,
            default_session_lifetime: DEFAULT_SESSION_LIFETIME,
            max_session_lifetime: DEFAULT_MAX_SESSION_LIFETIME,
            join_timeout: DEFAULT_JOIN_TIMEOUT,
            expiry_interval: Duration::from_secs(1),
            outbox_interval: Duration::from_secs(1),
            watch_poll_interval: Duration::from_secs(2),
            service_token: None,
            registry: crate::registry::RegistryConfig::default(),
            tls: mpc_service::TlsConfig::default(),
        }
    }

    /// From `MPC_…` variables (read through `var`, e.g. `std::env::var(..).ok()`).
    ///
    /// Required: `MPC_JOIN_TOKEN_SEED` (base64 of 32 bytes) and `MPC_COORDINATOR_DATABASE_URL` or
    /// `DATABASE_URL`. Optional: `MPC_COORDINATOR_HTTP_ADDR`, `MPC_COORDINATOR_GRPC_ADDR`,
    /// `MPC_SERVICE_TOKEN`, `MPC_SESSION_LIFETIME_SECS`, `MPC_MAX_SESSION_LIFETIME_SECS`,
    /// `MPC_JOIN_TIMEOUT_SECS`, `MPC_COORDINATOR_EXPIRY_INTERVAL_MS`, `MPC_REGISTRY_ENFORCE` (`true`/`false`),
    /// `MPC_REGISTRY_HEARTBEAT_MS`, `MPC_REGISTRY_LIVENESS_MS`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, CoordinatorError> {
        let missing = |name: &str| CoordinatorError::Config(format!("{name} is required"));
        let invalid =
            |name: &str, what: &str| CoordinatorError::Config(format!("{name}: expected {what}"));
        let seed = var("MPC_JOIN_TOKEN_SEED").ok_or_else(|| missing("MPC_JOIN_TOKEN_SEED"))?;
        let db = var("MPC_COORDINATOR_DATABASE_URL")
            .or_else(|| var("DATABASE_URL"))
            .ok_or_else(|| missing("MPC_COORDINATOR_DATABASE_URL or DATABASE_URL"))?;
        let mut c = Self::new(db, SecretString::from(seed));
        if let Some(v) = var("MPC_COORDINATOR_HTTP_ADDR") {
            c.http_addr = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_COORDINATOR_HTTP_ADDR", "host:port"))?;
        }
        if let Some(v) = var("MPC_COORDINATOR_GRPC_ADDR") {
            c.grpc_addr = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_COORDINATOR_GRPC_ADDR", "host:port"))?;
        }
        c.service_token = var("MPC_SERVICE_TOKEN")
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        let secs = |name: &str| -> Result<Option<Duration>, CoordinatorError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|_| invalid(name, "seconds"))
                })
                .transpose()
        };
        if let Some(d) = secs("MPC_SESSION_LIFETIME_SECS")? {
            c.default_session_lifetime = d;
        }
        if let Some(d) = secs("MPC_MAX_SESSION_LIFETIME_SECS")? {
            c.max_session_lifetime = d;
        }
        if let Some(d) = secs("MPC_JOIN_TIMEOUT_SECS")? {
            c.join_timeout = d;
        }
        if let Some(v) = var("MPC_COORDINATOR_EXPIRY_INTERVAL_MS") {
            c.expiry_interval = v
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| invalid("MPC_COORDINATOR_EXPIRY_INTERVAL_MS", "milliseconds"))?;
        }
        if let Some(v) = var("MPC_REGISTRY_ENFORCE") {
            c.registry.enforce = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(invalid("MPC_REGISTRY_ENFORCE", "true or false")),
            };
        }
        let ms = |name: &str| -> Result<Option<Duration>, CoordinatorError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_millis)
                        .map_err(|_| invalid(name, "milliseconds"))
                })
                .transpose()
        };
        if let Some(v) = var("MPC_REGISTRY_FAIL_SILENT_HOSTS") {
            c.registry.fail_silent_hosts = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => return Err(invalid("MPC_REGISTRY_FAIL_SILENT_HOSTS", "true or false")),
            };
        }
        if let Some(d) = ms("MPC_REGISTRY_HEARTBEAT_MS")? {
            c.registry.heartbeat_interval = d;
        }
        if let Some(d) = ms("MPC_REGISTRY_LIVENESS_MS")? {
            c.registry.liveness_timeout = d;
        }
        c.validate()?;
        Ok(c)
    }

    /// The join-token signer from the configured seed.
    pub fn token_signer(&self) -> Result<TokenSigner, CoordinatorError> {
        let seed = decode_seed(self.join_token_seed.expose_secret())?;
        Ok(TokenSigner::from_seed(&seed))
    }

    /// The Ed25519 public key that verifies this coordinator's join tokens (for the router).
    pub fn join_token_public_key(&self) -> Result<[u8; 32], CoordinatorError> {
        Ok(self.token_signer()?.public_key())
    }

    pub(crate) fn validate(&self) -> Result<(), CoordinatorError> {
        self.token_signer()?;
        let positive = [
            ("default_session_lifetime", self.default_session_lifetime),
            ("max_session_lifetime", self.max_session_lifetime),
            ("expiry_interval", self.expiry_interval),
            ("join_timeout", self.join_timeout),
            ("outbox_interval", self.outbox_interval),
            ("watch_poll_interval", self.watch_poll_interval),
            (
                "registry.heartbeat_interval",
                self.registry.heartbeat_interval,
            ),
            ("registry.liveness_timeout", self.registry.liveness_timeout),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(CoordinatorError::Config(format!("{name} must be positive")));
            }
        }
        if self.default_session_lifetime > self.max_session_lifetime {
            return Err(CoordinatorError::Config(
                "default_session_lifetime exceeds max_session_lifetime".into(),
            ));
        }
        if self.registry.liveness_timeout < self.registry.heartbeat_interval {
            return Err(CoordinatorError::Config(
                "registry.liveness_timeout must be at least the heartbeat interval (a few heartbeats is usual)".into(),
            ));
        }
        if let Some(token) = &self.service_token
            && token.expose_secret().trim().is_empty()
        {
            return Err(CoordinatorError::Config(
                "service_token is set but empty".into(),
            ));
        }
        Ok(())
    }
}

fn decode_seed(b64: &str) -> Result<Zeroizing<[u8; 32]>, CoordinatorError> {
    let invalid =
        || CoordinatorError::Config("join_token_seed must be 32 bytes, base64-encoded".to_owned());
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

    fn config(seed: &str) -> CoordinatorConfig {
        CoordinatorConfig::new("sqlite::memory:", SecretString::from(seed.to_owned()))
    }

    #[test]
    fn seed_must_be_32_bytes_of_base64() {
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(config(&good).validate().is_ok());
        assert_eq!(
            config(&good).join_token_public_key().unwrap(),
            TokenSigner::from_seed(&[7u8; 32]).public_key()
        );
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        for bad in ["", "not base64!", short.as_str()] {
            assert!(
                matches!(config(bad).validate(), Err(CoordinatorError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let seed = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let mut c = config(&seed);
        c.service_token = Some(SecretString::from("service-secret".to_owned()));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains(&seed) && !shown.contains("service-secret"),
            "{shown}"
        );
    }

    #[test]
    fn defaults_follow_the_guide() {
        let c = config("");
        assert_eq!(c.http_addr.port(), 8081);
        assert_eq!(c.grpc_addr.port(), 50051);
        assert_eq!(c.default_session_lifetime, Duration::from_secs(600));
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
        let seed = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let c = CoordinatorConfig::from_vars(vars(&[
            ("MPC_JOIN_TOKEN_SEED", &seed),
            ("DATABASE_URL", "postgres://db/x"),
            ("MPC_COORDINATOR_GRPC_ADDR", "127.0.0.1:6000"),
            ("MPC_SERVICE_TOKEN", "tok"),
            ("MPC_SESSION_LIFETIME_SECS", "30"),
        ]))
        .unwrap();
        assert_eq!(c.database_url, "postgres://db/x");
        assert_eq!(c.grpc_addr.port(), 6000);
        assert_eq!(c.http_addr.port(), DEFAULT_HTTP_PORT);
        assert_eq!(c.default_session_lifetime, Duration::from_secs(30));
        assert!(c.service_token.is_some());
        assert!(!format!("{c:?}").contains(&seed));
    }

    #[test]
    fn missing_or_bad_values_name_the_variable() {
        let seed = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        for (pairs, name) in [
            (vec![("DATABASE_URL", "x")], "MPC_JOIN_TOKEN_SEED"),
            (vec![("MPC_JOIN_TOKEN_SEED", seed.as_str())], "DATABASE_URL"),
            (
                vec![("MPC_JOIN_TOKEN_SEED", "short"), ("DATABASE_URL", "x")],
                "join_token_seed",
            ),
            (
                vec![
                    ("MPC_JOIN_TOKEN_SEED", seed.as_str()),
                    ("DATABASE_URL", "x"),
                    ("MPC_SESSION_LIFETIME_SECS", "soon"),
                ],
                "MPC_SESSION_LIFETIME_SECS",
            ),
        ] {
            let err = CoordinatorError::to_string(
                &CoordinatorConfig::from_vars(vars(&pairs)).unwrap_err(),
            );
            assert!(err.contains(name), "{err}");
        }
    }
}
