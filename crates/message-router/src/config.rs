//! The router's configuration.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use mpc_proto::{ApiError, TokenVerifier};

/// Default payload bound: DKG messages are about 150 KB; this leaves ample room.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// How the router runs. Build it with [`RouterConfig::new`] (defaults) and adjust fields, or
/// with [`RouterConfig::from_env`].
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// HTTP (JSON mirror, ops endpoints). Default `0.0.0.0:8082`.
    pub http_addr: SocketAddr,
    /// gRPC. Default `0.0.0.0:50052`.
    pub grpc_addr: SocketAddr,
    /// The Session Coordinator's join-token public key (Ed25519).
    pub join_token_public_key: JoinTokenPublicKey,
    /// Largest accepted envelope payload. Default 16 MiB.
    pub max_payload_bytes: usize,
    /// How long a session's envelopes are kept after it ended (or its deadline passed).
    /// Default 10 minutes.
    pub retention_grace: Duration,
    /// How often the retention sweep runs. Default 30 s.
    pub sweep_interval: Duration,
    /// Safety net under the database notifications: how often a waiting subscriber looks at
    /// its mailbox anyway. Default 5 s.
    pub poll_interval: Duration,
    /// Upper bound of a long-polling fetch's `wait_ms`. Default 30 s.
    pub max_fetch_wait: Duration,
    /// The durable event-bus queue the router consumes `session.*` from. Default `mpc.router`.
    pub bus_queue: String,
    /// After shutdown, how long open connections may take to finish before `serve` returns
    /// anyway (a client that stopped reading a stream would otherwise hold it forever).
    /// Default 10 s.
    pub shutdown_grace: Duration,
    /// TLS for the listeners and the clients (`MPC_TLS_*`, see `mpc_service::tls`). Default:
    /// plaintext.
    pub tls: mpc_service::TlsConfig,
}

impl RouterConfig {
    pub fn new(join_token_public_key: JoinTokenPublicKey) -> Self {
        Self {
            http_addr: SocketAddr::from(([0, 0, 0, 0], 8082)),
            grpc_addr: SocketAddr::from(([0, 0, 0, 0], 50052)),
            join_token_public_key,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            retention_grace: Duration::from_secs(600),
            sweep_interval: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
            max_fetch_wait: Duration::from_secs(30),
            bus_queue: "mpc.router".to_owned(),
            shutdown_grace: Duration::from_secs(10),
            tls: mpc_service::TlsConfig::default(),
        }
    }

    /// From `MPC_JOIN_TOKEN_PUBLIC_KEY` (required) and the optional `MPC_ROUTER_HTTP_ADDR`,
    /// `MPC_ROUTER_GRPC_ADDR`, `MPC_ROUTER_MAX_PAYLOAD_BYTES`, `MPC_ROUTER_RETENTION_GRACE_SECS`,
    /// `MPC_ROUTER_SWEEP_INTERVAL_SECS`, `MPC_ROUTER_POLL_INTERVAL_MS`,
    /// `MPC_ROUTER_MAX_FETCH_WAIT_MS`, `MPC_ROUTER_BUS_QUEUE`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let key = var("MPC_JOIN_TOKEN_PUBLIC_KEY")
            .ok_or(ConfigError::Missing("MPC_JOIN_TOKEN_PUBLIC_KEY"))?;
        let mut config = Self::new(key.parse()?);
        let parse = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| ConfigError::Invalid(name))
                })
                .transpose()
        };
        if let Some(v) = var("MPC_ROUTER_HTTP_ADDR") {
            config.http_addr = v
                .parse()
                .map_err(|_| ConfigError::Invalid("MPC_ROUTER_HTTP_ADDR"))?;
        }
        if let Some(v) = var("MPC_ROUTER_GRPC_ADDR") {
            config.grpc_addr = v
                .parse()
                .map_err(|_| ConfigError::Invalid("MPC_ROUTER_GRPC_ADDR"))?;
        }
        if let Some(v) = parse("MPC_ROUTER_MAX_PAYLOAD_BYTES")? {
            config.max_payload_bytes = usize::try_from(v)
                .map_err(|_| ConfigError::Invalid("MPC_ROUTER_MAX_PAYLOAD_BYTES"))?;
        }
        if let Some(v) = parse("MPC_ROUTER_RETENTION_GRACE_SECS")? {
            config.retention_grace = Duration::from_secs(v);
        }
        if let Some(v) = parse("MPC_ROUTER_SWEEP_INTERVAL_SECS")? {
            config.sweep_interval = Duration::from_secs(v);
        }
        if let Some(v) = parse("MPC_ROUTER_POLL_INTERVAL_MS")? {
            config.poll_interval = Duration::from_millis(v);
        }
        if let Some(v) = parse("MPC_ROUTER_MAX_FETCH_WAIT_MS")? {
            config.max_fetch_wait = Duration::from_millis(v);
        }
        if let Some(v) = var("MPC_ROUTER_BUS_QUEUE") {
            config.bus_queue = v;
        }
        config.validate()?;
        Ok(config)
    }

    /// Rejects values the router cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_payload_bytes == 0 {
            return Err(ConfigError::Invalid("max_payload_bytes must be positive"));
        }
        if self.sweep_interval.is_zero() {
            return Err(ConfigError::Invalid("sweep_interval must be positive"));
        }
        if self.poll_interval.is_zero() {
            return Err(ConfigError::Invalid("poll_interval must be positive"));
        }
        if self.bus_queue.is_empty() {
            return Err(ConfigError::Invalid("bus_queue must not be empty"));
        }
        Ok(())
    }
}

/// The coordinator's Ed25519 public key: 32 bytes given as 64 hex digits or base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct JoinTokenPublicKey(pub [u8; 32]);

impl JoinTokenPublicKey {
    pub fn verifier(&self) -> Result<TokenVerifier, ApiError> {
        TokenVerifier::from_public_key(&self.0)
    }
}

impl fmt::Debug for JoinTokenPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinTokenPublicKey({})", hex::encode(self.0))
    }
}

impl FromStr for JoinTokenPublicKey {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(s).ok()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
                .ok()
        };
        bytes
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Self)
            .ok_or(ConfigError::Invalid(
                "join-token public key: expected 32 bytes as 64 hex digits or base64",
            ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing configuration: {0}")]
    Missing(&'static str),
    #[error("invalid configuration: {0}")]
    Invalid(&'static str),
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn public_key_in_hex_and_base64() {
        let from_hex: JoinTokenPublicKey = HEX.parse().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(from_hex.0);
        let from_b64: JoinTokenPublicKey = b64.parse().unwrap();
        assert_eq!(from_hex, from_b64);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(from_hex.0);
        assert_eq!(url.parse::<JoinTokenPublicKey>().unwrap(), from_hex);
        for bad in ["", "abcd", &HEX[..62], "!!!!", &format!("{HEX}00")] {
            assert!(bad.parse::<JoinTokenPublicKey>().is_err(), "{bad}");
        }
        assert!(from_hex.verifier().is_ok());
    }

    proptest::proptest! {
        #[test]
        fn public_key_parse_never_panics(s in "\\PC{0,100}") {
            let _ = s.parse::<JoinTokenPublicKey>();
        }
    }

    #[test]
    fn from_vars_defaults_and_overrides() {
        let mut vars: HashMap<&str, &str> = HashMap::new();
        fn get<'a>(vars: &'a HashMap<&str, &str>) -> impl Fn(&str) -> Option<String> + 'a {
            |k| vars.get(k).map(|v| v.to_string())
        }
        assert!(matches!(
            RouterConfig::from_vars(get(&vars)),
            Err(ConfigError::Missing(_))
        ));
        vars.insert("MPC_JOIN_TOKEN_PUBLIC_KEY", HEX);
        let c = RouterConfig::from_vars(get(&vars)).unwrap();
        assert_eq!(c.http_addr.port(), 8082);
        assert_eq!(c.grpc_addr.port(), 50052);
        assert_eq!(c.max_payload_bytes, 16 * 1024 * 1024);
        assert_eq!(c.retention_grace, Duration::from_secs(600));
        assert_eq!(c.bus_queue, "mpc.router");

        vars.insert("MPC_ROUTER_GRPC_ADDR", "127.0.0.1:1234");
        vars.insert("MPC_ROUTER_RETENTION_GRACE_SECS", "5");
        vars.insert("MPC_ROUTER_MAX_PAYLOAD_BYTES", "1024");
        let c = RouterConfig::from_vars(get(&vars)).unwrap();
        assert_eq!(c.grpc_addr, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(c.retention_grace, Duration::from_secs(5));
        assert_eq!(c.max_payload_bytes, 1024);

        vars.insert("MPC_ROUTER_SWEEP_INTERVAL_SECS", "soon");
        assert!(matches!(
            RouterConfig::from_vars(get(&vars)),
            Err(ConfigError::Invalid("MPC_ROUTER_SWEEP_INTERVAL_SECS"))
        ));
        vars.insert("MPC_ROUTER_SWEEP_INTERVAL_SECS", "0");
        assert!(RouterConfig::from_vars(get(&vars)).is_err());
    }
}
