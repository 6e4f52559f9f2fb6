//! The server party's configuration. The master key (KEK) is a `SealingKey`: it never appears
//! in `Debug` output or logs.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use mpc_client::{ClientOptions, DriverOptions, TrustPolicy};
use mpc_proto::{PartyId, TokenVerifier};
use mpc_protocol::{IdentityPublicKey, SealingKey};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::PartyServiceError;

/// Integration guide / DESIGN.md §3: server parties serve HTTP from 8091 on.
pub const DEFAULT_HTTP_PORT: u16 = 8091;
/// Sessions a party holds at once (joined, waiting, running): a memory bound, not a CPU one
/// (the engine's steps share the machine's cores through the process's compute pool).
pub const DEFAULT_MAX_CONCURRENT_SESSIONS: usize = 1024;
pub const DEFAULT_MASTER_KEY_ID: &str = "kek-1";

#[derive(Clone)]
pub struct PartyConfig {
    /// This party's id, e.g. `server_party_1`.
    pub party_id: PartyId,
    /// Health, metrics and the identity public key. Default `0.0.0.0:8091`.
    pub http_addr: SocketAddr,
    /// Where the `mpc` binary connects this party's own database; `serve` receives the pool.
    pub database_url: String,
    /// PostgreSQL: this party's own schema.
    pub database_schema: Option<String>,
    /// The coordinator's gRPC endpoint, `http://host:50051`.
    pub coordinator_endpoint: String,
    /// The router's gRPC endpoint, `http://host:50052`.
    pub router_endpoint: String,
    /// The durable queue this party consumes, bound to `session.*`. Default
    /// `mpc.party.<party_id>`; one queue per party, never shared.
    pub bus_queue: String,
    /// The key-encryption key that seals the identity key and the shares at rest.
    pub master_key: SealingKey,
    /// Whose identity keys this party accepts (pin the other server parties).
    pub trust: TrustPolicy,
    /// Sessions held at once at most (a memory bound); more are declined as busy at once
    /// (`overloaded`, nobody blamed). On RabbitMQ the consumer's prefetch must be at least this.
    pub max_concurrent_sessions: usize,
    /// The coordinator's Ed25519 join-token key (verifies the tokens in events).
    pub join_token_public_key: [u8; 32],
    pub driver: DriverOptions,
    pub client: ClientOptions,
    /// After shutdown, how long running sessions get to report their failure and end.
    pub shutdown_grace: Duration,
    /// The coordinator's service token (`MPC_SERVICE_TOKEN`), for the registry announcements.
    pub service_token: Option<SecretString>,
    /// CPU for the engine's steps: the process's pool (`ComputePool::shared`, sized to the
    /// machine) unless set (tests give parties small pools of their own).
    pub compute: Option<mpc_client::ComputePool>,
    /// TLS for the listeners and the clients (`MPC_TLS_*`, see `mpc_service::tls`). Default:
    /// plaintext.
    pub tls: mpc_service::TlsConfig,
}

impl fmt::Debug for PartyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartyConfig")
            .field("party_id", &self.party_id)
            .field("http_addr", &self.http_addr)
            .field(
                "database_url",
                &mpc_store::db::redact_url(&self.database_url),
            )
            .field("database_schema", &self.database_schema)
            .field("coordinator_endpoint", &self.coordinator_endpoint)
            .field("router_endpoint", &self.router_endpoint)
            .field("bus_queue", &self.bus_queue)
            .field("master_key", &self.master_key)
            .field("trust", &self.trust)
            .field("max_concurrent_sessions", &self.max_concurrent_sessions)
            .field(
                "join_token_public_key",
                &hex::encode(self.join_token_public_key),
            )
            .field(
                "service_token",
                &self.service_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish_non_exhaustive()
    }
}

impl PartyConfig {
    /// Defaults for everything but the party id, master key and the coordinator's token key.
    pub fn new(party_id: PartyId, master_key: SealingKey, join_token_public_key: [u8; 32]) -> Self {
        Self {
            bus_queue: queue_name(&party_id),
            party_id,
            http_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_HTTP_PORT)),
            database_url: "sqlite://mpc-data/party.db".into(),
            database_schema: None,
            coordinator_endpoint: "http://127.0.0.1:50051".into(),
            router_endpoint: "http://127.0.0.1:50052".into(),
            master_key,
            trust: TrustPolicy::new(),
            max_concurrent_sessions: DEFAULT_MAX_CONCURRENT_SESSIONS,
            join_token_public_key,
            driver: DriverOptions::default(),
            client: ClientOptions::default(),
            shutdown_grace: Duration::from_secs(10),
            service_token: None,
            compute: None,
            tls: mpc_service::TlsConfig::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<TokenVerifier, PartyServiceError> {
        if self.bus_queue.trim().is_empty() {
            return Err(PartyServiceError::Config(
                "bus_queue must not be empty".into(),
            ));
        }
        if self.max_concurrent_sessions == 0 {
            return Err(PartyServiceError::Config(
                "max_concurrent_sessions must be at least 1".into(),
            ));
        }
        TokenVerifier::from_public_key(&self.join_token_public_key).map_err(|_| {
            PartyServiceError::Config("the join-token public key is not an Ed25519 key".into())
        })
    }

    /// Reads the `MPC_…` variables (see the README) through `var`.
    ///
    /// Required: `MPC_PARTY_ID`, `MPC_JOIN_TOKEN_PUBLIC_KEY`, and `MPC_PARTY_MASTER_KEY`
    /// (base64 of 32 bytes) or `MPC_PARTY_MASTER_KEY_FILE`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, PartyServiceError> {
        let invalid = |name: &str, why: &str| PartyServiceError::Config(format!("{name}: {why}"));
        let required = |name: &str| {
            var(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| PartyServiceError::Config(format!("{name} is required")))
        };
        let party_id = PartyId::parse(required("MPC_PARTY_ID")?.trim())
            .map_err(|e| invalid("MPC_PARTY_ID", &e.message))?;
        let key_id = var("MPC_PARTY_MASTER_KEY_ID").unwrap_or_else(|| DEFAULT_MASTER_KEY_ID.into());
        let master_key = match (
            var("MPC_PARTY_MASTER_KEY"),
            var("MPC_PARTY_MASTER_KEY_FILE"),
        ) {
            (Some(b64), None) => master_key_from_base64(&key_id, &b64)?,
            (None, Some(path)) => master_key_from_file(&key_id, std::path::Path::new(path.trim()))?,
            (Some(_), Some(_)) => {
                return Err(PartyServiceError::Config(
                    "set MPC_PARTY_MASTER_KEY or MPC_PARTY_MASTER_KEY_FILE, not both".into(),
                ));
            }
            (None, None) => {
                return Err(PartyServiceError::Config(
                    "MPC_PARTY_MASTER_KEY (base64 of 32 bytes) or MPC_PARTY_MASTER_KEY_FILE is required"
                        .into(),
                ));
            }
        };
        let token_key = parse_key32(&required("MPC_JOIN_TOKEN_PUBLIC_KEY")?).ok_or_else(|| {
            invalid(
                "MPC_JOIN_TOKEN_PUBLIC_KEY",
                "expected 32 bytes as hex or base64",
            )
        })?;
        let mut config = Self::new(party_id, master_key, token_key);
        if let Some(v) = var("MPC_PARTY_HTTP_ADDR") {
            config.http_addr = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_PARTY_HTTP_ADDR", "expected host:port"))?;
        }
        if let Some(v) = var("MPC_PARTY_DATABASE_URL").or_else(|| var("DATABASE_URL")) {
            config.database_url = v;
        }
        config.database_schema = var("MPC_PARTY_DATABASE_SCHEMA").filter(|s| !s.is_empty());
        if let Some(v) = var("MPC_COORDINATOR_GRPC") {
            config.coordinator_endpoint = v;
        }
        if let Some(v) = var("MPC_ROUTER_GRPC") {
            config.router_endpoint = v;
        }
        if let Some(v) = var("MPC_PARTY_BUS_QUEUE").filter(|v| !v.trim().is_empty()) {
            config.bus_queue = v;
        }
        if let Some(v) = var("MPC_PARTY_MAX_SESSIONS") {
            config.max_concurrent_sessions = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_PARTY_MAX_SESSIONS", "expected a number"))?;
        }
        config.service_token = var("MPC_SERVICE_TOKEN")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        config.trust = trust_from_vars(&var)?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_env() -> Result<Self, PartyServiceError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// The default queue of a party: `mpc.party.<party_id>`.
pub fn queue_name(party: &PartyId) -> String {
    format!("mpc.party.{party}")
}

/// `MPC_PARTY_PINNED` (`party=hexkey,party=hexkey`), `MPC_PARTY_DELEGATES` (`hexkey,hexkey`),
/// `MPC_PARTY_ALLOW_UNPINNED` (`true`/`false`, default false).
fn trust_from_vars(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<TrustPolicy, PartyServiceError> {
    let bad =
        |name: &str, item: &str| PartyServiceError::Config(format!("{name}: cannot read {item:?}"));
    let mut trust = TrustPolicy::new();
    for item in list(var("MPC_PARTY_PINNED")) {
        let (party, key) = item
            .split_once('=')
            .ok_or_else(|| bad("MPC_PARTY_PINNED", &item))?;
        let party = PartyId::parse(party.trim()).map_err(|_| bad("MPC_PARTY_PINNED", &item))?;
        let key =
            IdentityPublicKey::from_hex(key.trim()).map_err(|_| bad("MPC_PARTY_PINNED", &item))?;
        trust = trust.pin(party, key);
    }
    for item in list(var("MPC_PARTY_DELEGATES")) {
        let key =
            IdentityPublicKey::from_hex(&item).map_err(|_| bad("MPC_PARTY_DELEGATES", &item))?;
        trust = trust.delegate(key);
    }
    if let Some(v) = var("MPC_PARTY_ALLOW_UNPINNED") {
        let allow = match v.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            _ => return Err(bad("MPC_PARTY_ALLOW_UNPINNED", &v)),
        };
        trust = trust.allow_unpinned(allow);
    }
    Ok(trust)
}

fn list(v: Option<String>) -> Vec<String> {
    v.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_key32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(s).ok()?
    } else {
        base64::engine::general_purpose::STANDARD.decode(s).ok()?
    };
    bytes.try_into().ok()
}

/// A master key from base64 (of exactly 32 bytes).
pub fn master_key_from_base64(id: &str, b64: &str) -> Result<SealingKey, PartyServiceError> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| {
                PartyServiceError::Config("the master key must be base64 of 32 bytes".into())
            })?,
    );
    SealingKey::from_slice(id, &bytes)
        .map_err(|e| PartyServiceError::Config(format!("master key: {e}")))
}

/// A master key from a file holding 32 raw bytes or their base64.
pub fn master_key_from_file(
    id: &str,
    path: &std::path::Path,
) -> Result<SealingKey, PartyServiceError> {
    let content = Zeroizing::new(std::fs::read(path).map_err(|e| {
        PartyServiceError::Config(format!(
            "cannot read the master key file {}: {e}",
            path.display()
        ))
    })?);
    if content.len() == 32 {
        return SealingKey::from_slice(id, &content)
            .map_err(|e| PartyServiceError::Config(format!("master key: {e}")));
    }
    let text = std::str::from_utf8(&content).map_err(|_| {
        PartyServiceError::Config("the master key file holds neither 32 bytes nor base64".into())
    })?;
    master_key_from_base64(id, text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn reads_the_environment() {
        let token_key = hex::encode(mpc_proto::TokenSigner::from_seed(&[1; 32]).public_key());
        let pin = mpc_protocol::IdentityKey::from_seed(&[2; 32])
            .public_key()
            .to_string();
        let kek = b64(&[7; 32]);
        let pinned = format!("server_party_2={pin}");
        let c = PartyConfig::from_vars(vars(&[
            ("MPC_PARTY_ID", "server_party_1"),
            ("MPC_PARTY_MASTER_KEY", &kek),
            ("MPC_JOIN_TOKEN_PUBLIC_KEY", &token_key),
            ("MPC_PARTY_PINNED", &pinned),
            ("MPC_PARTY_MAX_SESSIONS", "3"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.party_id.as_str(), "server_party_1");
        assert_eq!(c.master_key.id(), "kek-1");
        assert_eq!(c.http_addr.port(), 8091);
        assert_eq!(c.max_concurrent_sessions, 3);
        assert_eq!(c.bus_queue, "mpc.party.server_party_1");
        assert_eq!(c.trust.pinned().len(), 1);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains(&kek) && shown.contains("REDACTED"),
            "{shown}"
        );
    }

    #[test]
    fn rejects_missing_or_bad_keys() {
        let token_key = hex::encode([9u8; 32]);
        for (name, value) in [
            ("MPC_PARTY_MASTER_KEY", "not base64!"),
            ("MPC_PARTY_MASTER_KEY", b64(&[1; 16]).as_str()),
        ] {
            let r = PartyConfig::from_vars(vars(&[
                ("MPC_PARTY_ID", "p1"),
                (name, value),
                ("MPC_JOIN_TOKEN_PUBLIC_KEY", &token_key),
            ]));
            assert!(matches!(r, Err(PartyServiceError::Config(_))), "{value}");
        }
        let r = PartyConfig::from_vars(vars(&[("MPC_PARTY_ID", "p1")]));
        assert!(
            matches!(r, Err(PartyServiceError::Config(m)) if m.contains("MPC_PARTY_MASTER_KEY"))
        );
    }

    #[test]
    fn master_key_file_raw_or_base64() {
        let dir = std::env::temp_dir().join(format!("mpc-kek-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let raw = dir.join("raw");
        std::fs::write(&raw, [3u8; 32]).unwrap_or_else(|e| panic!("{e}"));
        let text = dir.join("text");
        std::fs::write(&text, format!("{}\n", b64(&[3u8; 32]))).unwrap_or_else(|e| panic!("{e}"));
        let a = master_key_from_file("k", &raw).unwrap_or_else(|e| panic!("{e}"));
        let b = master_key_from_file("k", &text).unwrap_or_else(|e| panic!("{e}"));
        // Same key: what one seals the other opens.
        let ctx = mpc_protocol::SealContext {
            key_id: "x",
            party_id: "p",
            party_index: 0,
        };
        let sealed = mpc_protocol::seal::seal(&a, &ctx, b"hello").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            mpc_protocol::seal::open(&b, &ctx, &sealed)
                .map(|p| p.to_vec())
                .ok(),
            Some(b"hello".to_vec())
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
