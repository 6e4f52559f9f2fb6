//! The Server Party API's configuration. The identity seed and the share keys are secrets: they
//! never appear in `Debug` output or logs.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use mpc_client::{ClientOptions, DriverOptions, TrustPolicy};
use mpc_proto::{PartyId, TokenVerifier};
use mpc_protocol::{IdentityKey, IdentityPublicKey, SealingKey};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::PartyApiError;
use crate::share::ShareKeys;

/// Integration guide §1.2: the Server Party API listens on 8083.
pub const DEFAULT_HTTP_PORT: u16 = 8083;
pub const DEFAULT_SHARE_KEY_ID: &str = "uk-1";
/// The coordinator's default session lifetime: no request needs to wait longer.
pub const DEFAULT_MAX_REQUEST_TIME: Duration = Duration::from_secs(600);
/// Device sessions running here at once (the admission budget); measured: a 2-of-3 signature
/// keeps this API in flight for ≈ 20–60 ms of a busy machine's time, so 64 in flight is well
/// above what two cores sustain while bounding the latency of a burst.
pub const DEFAULT_MAX_CONCURRENT_SESSIONS: usize = 64;
/// Requests that may wait for a slot beyond the budget, and for how long, before a 429.
pub const DEFAULT_ADMISSION_QUEUE: usize = 256;
pub const DEFAULT_ADMISSION_WAIT: Duration = Duration::from_secs(2);
/// A 16-party share is ~1.5 MB, ~3 MB as hex: room for that and the JSON around it.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;
/// A key the Account Service accepted is trusted this long without asking again.
pub const DEFAULT_API_KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Deadline of the routes that run no session (the share routes add `max_request_time`).
pub const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// The API's id in the coordinator's party registry.
pub const DEFAULT_REGISTRY_ID: &str = "server-party-api";

/// The API's Ed25519 identity seed. The server parties pin its public key as a *delegate*.
#[derive(Clone)]
pub struct IdentitySeed(Zeroizing<[u8; 32]>);

impl fmt::Debug for IdentitySeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentitySeed(public {})", self.public_key())
    }
}

impl IdentitySeed {
    pub fn new(seed: [u8; 32]) -> Self {
        Self(Zeroizing::new(seed))
    }

    pub fn key(&self) -> IdentityKey {
        IdentityKey::from_seed(&self.0)
    }

    pub fn public_key(&self) -> IdentityPublicKey {
        self.key().public_key()
    }
}

#[derive(Clone)]
pub struct PartyApiConfig {
    /// Default `0.0.0.0:8083`.
    pub http_addr: SocketAddr,
    /// The coordinator's gRPC endpoint, `http://host:50051`.
    pub coordinator_endpoint: String,
    /// The router's gRPC endpoint, `http://host:50052`.
    pub router_endpoint: String,
    /// The coordinator's Ed25519 join-token key.
    pub join_token_public_key: [u8; 32],
    /// `X-API-Key` values accepted (`MPC_API_KEY`, plus any for rotation). Compared in constant
    /// time.
    pub api_keys: Vec<SecretString>,
    /// The Account Service's access-token key: when set, `Authorization: Bearer <access token>`
    /// is accepted for sessions of the token's account.
    pub access_token_public_key: Option<[u8; 32]>,
    pub identity_seed: IdentitySeed,
    /// Wraps the shares handed out; earlier keys still open what they wrapped.
    pub share_keys: ShareKeys,
    /// Whose identity keys the API accepts (pin the server parties).
    pub trust: TrustPolicy,
    /// No request holds longer than this (the session's own deadline usually comes first).
    pub max_request_time: Duration,
    /// Admission (sessions in flight at once, the FIFO queue in front of them, its longest
    /// wait); beyond both, `429 overloaded` with `Retry-After`.
    pub admission: mpc_service::AdmissionConfig,
    pub body_limit: usize,
    pub driver: DriverOptions,
    pub client: ClientOptions,
    /// The Account Service's base URL (`MPC_ACCOUNT_SERVICE_URL`): when set, the API keys it
    /// made are accepted too (asked for, and remembered for `api_key_cache_ttl`).
    pub account_service_url: Option<String>,
    /// How long a key the Account Service accepted is trusted without asking again: a
    /// revocation or expiry takes effect here within this time.
    pub api_key_cache_ttl: Duration,
    /// The id under which the API announces itself to the coordinator's party registry.
    pub registry_id: String,
    /// The coordinator's service token (`MPC_SERVICE_TOKEN`), for the registry announcements.
    pub service_token: Option<SecretString>,
    /// CPU for the engine's steps: the process's pool unless set (tests).
    pub compute: Option<mpc_client::ComputePool>,
    /// TLS for the listener and the clients (`MPC_TLS_*`, see `mpc_service::tls`). Default:
    /// plaintext.
    pub tls: mpc_service::TlsConfig,
    /// Per-request deadline (`MPC_PARTY_API_REQUEST_DEADLINE_SECS`, body upload included);
    /// the four share routes get `max_request_time` plus this.
    pub request_deadline: Duration,
    /// Wrong API keys or access tokens per address and window before `429 too_many_failures`
    /// (`MPC_AUTH_FAILURE_LIMIT`, `MPC_AUTH_FAILURE_WINDOW_SECS`).
    pub auth_throttle: mpc_service::ThrottleConfig,
    /// Take the caller's address from `X-Forwarded-For` (`MPC_TRUST_FORWARDED_FOR`): only
    /// behind a proxy that sets it.
    pub trust_forwarded_for: bool,
}

impl fmt::Debug for PartyApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartyApiConfig")
            .field("http_addr", &self.http_addr)
            .field("coordinator_endpoint", &self.coordinator_endpoint)
            .field("router_endpoint", &self.router_endpoint)
            .field(
                "join_token_public_key",
                &hex::encode(self.join_token_public_key),
            )
            .field(
                "api_keys",
                &format_args!("[{} REDACTED]", self.api_keys.len()),
            )
            .field(
                "access_token_public_key",
                &self.access_token_public_key.map(hex::encode),
            )
            .field("identity_seed", &self.identity_seed)
            .field("share_keys", &self.share_keys)
            .field("trust", &self.trust)
            .field("max_request_time", &self.max_request_time)
            .field("admission", &self.admission)
            .field("account_service_url", &self.account_service_url)
            .field("api_key_cache_ttl", &self.api_key_cache_ttl)
            .field("registry_id", &self.registry_id)
            .field("request_deadline", &self.request_deadline)
            .field("auth_throttle", &self.auth_throttle)
            .field(
                "service_token",
                &self.service_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl PartyApiConfig {
    /// Defaults for everything but the secrets and the coordinator's token key. No API key is
    /// accepted until one is added.
    pub fn new(
        identity_seed: IdentitySeed,
        share_key: SealingKey,
        join_token_public_key: [u8; 32],
    ) -> Self {
        Self {
            http_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_HTTP_PORT)),
            coordinator_endpoint: "http://127.0.0.1:50051".into(),
            router_endpoint: "http://127.0.0.1:50052".into(),
            join_token_public_key,
            api_keys: Vec::new(),
            access_token_public_key: None,
            identity_seed,
            // One key: its id cannot clash with itself.
            share_keys: ShareKeys::single(share_key),
            trust: TrustPolicy::new(),
            max_request_time: DEFAULT_MAX_REQUEST_TIME,
            admission: mpc_service::AdmissionConfig {
                budget: DEFAULT_MAX_CONCURRENT_SESSIONS,
                queue_limit: DEFAULT_ADMISSION_QUEUE,
                max_wait: DEFAULT_ADMISSION_WAIT,
            },
            body_limit: DEFAULT_BODY_LIMIT,
            driver: DriverOptions::default(),
            client: ClientOptions::default(),
            account_service_url: None,
            api_key_cache_ttl: DEFAULT_API_KEY_CACHE_TTL,
            registry_id: DEFAULT_REGISTRY_ID.into(),
            service_token: None,
            compute: None,
            tls: mpc_service::TlsConfig::default(),
            request_deadline: DEFAULT_REQUEST_DEADLINE,
            auth_throttle: mpc_service::ThrottleConfig::default(),
            trust_forwarded_for: false,
        }
    }

    pub(crate) fn validate(&self) -> Result<TokenVerifier, PartyApiError> {
        if self.admission.budget == 0 {
            return Err(PartyApiError::Config(
                "the admission budget (MPC_PARTY_API_MAX_SESSIONS) must be at least 1".into(),
            ));
        }
        if self.request_deadline.is_zero() {
            return Err(PartyApiError::Config(
                "request_deadline (MPC_PARTY_API_REQUEST_DEADLINE_SECS) must be positive".into(),
            ));
        }
        if self.max_request_time.is_zero() {
            return Err(PartyApiError::Config(
                "max_request_time must be positive".into(),
            ));
        }
        if self.api_keys.is_empty()
            && self.access_token_public_key.is_none()
            && self.account_service_url.is_none()
        {
            return Err(PartyApiError::Config(
                "no way to authenticate callers: set MPC_API_KEY, MPC_ACCOUNT_SERVICE_URL or MPC_ACCESS_TOKEN_PUBLIC_KEY"
                    .into(),
            ));
        }
        mpc_proto::PartyId::parse(&self.registry_id).map_err(|e| {
            PartyApiError::Config(format!(
                "registry_id (MPC_PARTY_API_PARTY_ID): {}",
                e.message
            ))
        })?;
        TokenVerifier::from_public_key(&self.join_token_public_key).map_err(|_| {
            PartyApiError::Config("the join-token public key is not an Ed25519 key".into())
        })
    }

    /// Reads the `MPC_…` variables (see the README) through `var`.
    ///
    /// Required: `MPC_JOIN_TOKEN_PUBLIC_KEY`, `MPC_PARTY_API_IDENTITY_SEED` (or `…_FILE`),
    /// `MPC_PARTY_API_SHARE_KEY` (or `…_FILE`), and `MPC_API_KEY` or
    /// `MPC_ACCESS_TOKEN_PUBLIC_KEY`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, PartyApiError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let invalid = |name: &str, why: &str| PartyApiError::Config(format!("{name}: {why}"));
        let required = |name: &str| {
            var(name).ok_or_else(|| PartyApiError::Config(format!("{name} is required")))
        };
        let token_key = parse_key32(&required("MPC_JOIN_TOKEN_PUBLIC_KEY")?).ok_or_else(|| {
            invalid(
                "MPC_JOIN_TOKEN_PUBLIC_KEY",
                "expected 32 bytes as hex or base64",
            )
        })?;
        let seed = secret32(
            "MPC_PARTY_API_IDENTITY_SEED",
            var("MPC_PARTY_API_IDENTITY_SEED"),
            var("MPC_PARTY_API_IDENTITY_SEED_FILE"),
        )?;
        let key_id =
            var("MPC_PARTY_API_SHARE_KEY_ID").unwrap_or_else(|| DEFAULT_SHARE_KEY_ID.into());
        let share_key = secret32(
            "MPC_PARTY_API_SHARE_KEY",
            var("MPC_PARTY_API_SHARE_KEY"),
            var("MPC_PARTY_API_SHARE_KEY_FILE"),
        )?;
        let share_key = SealingKey::new(key_id.trim(), *share_key)
            .map_err(|e| invalid("MPC_PARTY_API_SHARE_KEY_ID", &e.to_string()))?;
        let mut config = Self::new(IdentitySeed(seed), share_key.clone(), token_key);
        let mut previous = Vec::new();
        for item in list(var("MPC_PARTY_API_PREVIOUS_SHARE_KEYS")) {
            let bad = || invalid("MPC_PARTY_API_PREVIOUS_SHARE_KEYS", "expected id=base64,…");
            let (id, b64) = item.split_once('=').ok_or_else(bad)?;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| bad())?,
            );
            previous.push(SealingKey::from_slice(id.trim(), &bytes).map_err(|_| bad())?);
        }
        config.share_keys = ShareKeys::new(share_key, previous)
            .map_err(|e| invalid("MPC_PARTY_API_PREVIOUS_SHARE_KEYS", &e))?;
        if let Some(v) = var("MPC_PARTY_API_HTTP_ADDR") {
            config.http_addr = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_PARTY_API_HTTP_ADDR", "expected host:port"))?;
        }
        if let Some(v) = var("MPC_COORDINATOR_GRPC") {
            config.coordinator_endpoint = v;
        }
        if let Some(v) = var("MPC_ROUTER_GRPC") {
            config.router_endpoint = v;
        }
        config.api_keys = var("MPC_API_KEY")
            .into_iter()
            .chain(list(var("MPC_PARTY_API_EXTRA_API_KEYS")))
            .map(|k| SecretString::from(k.trim().to_owned()))
            .collect();
        if let Some(v) = var("MPC_ACCESS_TOKEN_PUBLIC_KEY") {
            config.access_token_public_key = Some(parse_key32(&v).ok_or_else(|| {
                invalid(
                    "MPC_ACCESS_TOKEN_PUBLIC_KEY",
                    "expected 32 bytes as hex or base64",
                )
            })?);
        }
        if let Some(v) = var("MPC_PARTY_API_MAX_REQUEST_SECS") {
            let secs: u64 = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_PARTY_API_MAX_REQUEST_SECS", "expected seconds"))?;
            config.max_request_time = Duration::from_secs(secs);
        }
        if let Some(v) = var("MPC_PARTY_API_MAX_SESSIONS") {
            config.admission.budget = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_PARTY_API_MAX_SESSIONS", "expected a number"))?;
        }
        config.admission = config
            .admission
            .from_vars(
                "MPC_PARTY_API_ADMISSION",
                &var as &dyn Fn(&str) -> Option<String>,
            )
            .map_err(PartyApiError::Config)?;
        config.account_service_url = var("MPC_ACCOUNT_SERVICE_URL")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if let Some(v) = var("MPC_PARTY_API_KEY_CACHE_SECS") {
            config.api_key_cache_ttl = Duration::from_secs(
                v.trim()
                    .parse()
                    .map_err(|_| invalid("MPC_PARTY_API_KEY_CACHE_SECS", "expected seconds"))?,
            );
        }
        if let Some(v) = var("MPC_PARTY_API_PARTY_ID") {
            config.registry_id = v.trim().to_owned();
        }
        config.service_token = var("MPC_SERVICE_TOKEN")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        config.trust = trust_from_vars(&var)?;
        if let Some(v) = var("MPC_PARTY_API_BODY_LIMIT_BYTES") {
            config.body_limit = v
                .trim()
                .parse()
                .map_err(|_| invalid("MPC_PARTY_API_BODY_LIMIT_BYTES", "expected bytes"))?;
        }
        if let Some(v) = var("MPC_PARTY_API_REQUEST_DEADLINE_SECS") {
            config.request_deadline =
                Duration::from_secs(v.trim().parse().map_err(|_| {
                    invalid("MPC_PARTY_API_REQUEST_DEADLINE_SECS", "expected seconds")
                })?);
        }
        config.auth_throttle = config
            .auth_throttle
            .from_vars(&var as &dyn Fn(&str) -> Option<String>)
            .map_err(PartyApiError::Config)?;
        if let Some(v) = var("MPC_TRUST_FORWARDED_FOR") {
            config.trust_forwarded_for = match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(invalid("MPC_TRUST_FORWARDED_FOR", "expected true or false")),
            };
        }
        config.validate()?;
        Ok(config)
    }

    pub fn from_env() -> Result<Self, PartyApiError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// A 32-byte secret from `inline` (base64 or hex) or from `file` (32 raw bytes, base64 or hex).
fn secret32(
    name: &str,
    inline: Option<String>,
    file: Option<String>,
) -> Result<Zeroizing<[u8; 32]>, PartyApiError> {
    let bad = || PartyApiError::Config(format!("{name}: expected 32 bytes as base64 or hex"));
    let text = match (inline, file) {
        (Some(v), None) => Zeroizing::new(v),
        (None, Some(path)) => {
            let content = Zeroizing::new(std::fs::read(path.trim()).map_err(|e| {
                PartyApiError::Config(format!("{name}_FILE: cannot read {path}: {e}"))
            })?);
            if let Ok(raw) = <[u8; 32]>::try_from(content.as_slice()) {
                return Ok(Zeroizing::new(raw));
            }
            Zeroizing::new(String::from_utf8(content.to_vec()).map_err(|_| bad())?)
        }
        (Some(_), Some(_)) => {
            return Err(PartyApiError::Config(format!(
                "set {name} or {name}_FILE, not both"
            )));
        }
        (None, None) => {
            return Err(PartyApiError::Config(format!(
                "{name} (32 bytes as base64 or hex) or {name}_FILE is required"
            )));
        }
    };
    parse_key32(&text).map(Zeroizing::new).ok_or_else(bad)
}

/// `MPC_PARTY_API_PINNED` (`party=hexkey,…`: the server parties), `MPC_PARTY_API_DELEGATES`
/// (`hexkey,…`), `MPC_PARTY_API_ALLOW_UNPINNED` (`true`/`false`, default false).
fn trust_from_vars(var: &impl Fn(&str) -> Option<String>) -> Result<TrustPolicy, PartyApiError> {
    let bad =
        |name: &str, item: &str| PartyApiError::Config(format!("{name}: cannot read {item:?}"));
    let mut trust = TrustPolicy::new();
    for item in list(var("MPC_PARTY_API_PINNED")) {
        let (party, key) = item
            .split_once('=')
            .ok_or_else(|| bad("MPC_PARTY_API_PINNED", &item))?;
        let party = PartyId::parse(party.trim()).map_err(|_| bad("MPC_PARTY_API_PINNED", &item))?;
        let key = IdentityPublicKey::from_hex(key.trim())
            .map_err(|_| bad("MPC_PARTY_API_PINNED", &item))?;
        trust = trust.pin(party, key);
    }
    for item in list(var("MPC_PARTY_API_DELEGATES")) {
        let key = IdentityPublicKey::from_hex(&item)
            .map_err(|_| bad("MPC_PARTY_API_DELEGATES", &item))?;
        trust = trust.delegate(key);
    }
    if let Some(v) = var("MPC_PARTY_API_ALLOW_UNPINNED") {
        let allow = match v.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(bad("MPC_PARTY_API_ALLOW_UNPINNED", &v)),
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

/// 32 bytes as 64 hex characters or as base64.
fn parse_key32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let bytes = Zeroizing::new(
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(s).ok()?
        } else {
            base64::engine::general_purpose::STANDARD.decode(s).ok()?
        },
    );
    bytes.as_slice().try_into().ok()
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
    fn reads_the_environment_and_hides_secrets() {
        let token_key = hex::encode(mpc_proto::TokenSigner::from_seed(&[1; 32]).public_key());
        let seed = b64(&[2; 32]);
        let share_key = hex::encode([3u8; 32]);
        let old_key = format!("uk-0={}", b64(&[4; 32]));
        let pin = IdentityKey::from_seed(&[5; 32]).public_key().to_string();
        let pinned = format!("server_party_1={pin}");
        let c = PartyApiConfig::from_vars(vars(&[
            ("MPC_JOIN_TOKEN_PUBLIC_KEY", &token_key),
            ("MPC_PARTY_API_IDENTITY_SEED", &seed),
            ("MPC_PARTY_API_SHARE_KEY", &share_key),
            ("MPC_PARTY_API_PREVIOUS_SHARE_KEYS", &old_key),
            ("MPC_API_KEY", "a-long-enough-api-key"),
            ("MPC_PARTY_API_PINNED", &pinned),
            ("MPC_PARTY_API_MAX_SESSIONS", "3"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.http_addr.port(), 8083);
        assert_eq!(c.api_keys.len(), 1);
        assert_eq!(c.share_keys.current().id(), "uk-1");
        assert_eq!(c.admission.budget, 3);
        assert_eq!(c.trust.pinned().len(), 1);
        assert_eq!(
            c.identity_seed.public_key(),
            IdentityKey::from_seed(&[2; 32]).public_key()
        );
        let shown = format!("{c:?}");
        for secret in [seed.as_str(), share_key.as_str(), "a-long-enough-api-key"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(!shown.contains(&hex::encode([2u8; 32])), "{shown}");
    }

    #[test]
    fn refuses_missing_or_bad_settings() {
        let token_key = hex::encode(mpc_proto::TokenSigner::from_seed(&[1; 32]).public_key());
        let seed = b64(&[2; 32]);
        let key = b64(&[3; 32]);
        let base = [
            ("MPC_JOIN_TOKEN_PUBLIC_KEY", token_key.as_str()),
            ("MPC_PARTY_API_IDENTITY_SEED", seed.as_str()),
            ("MPC_PARTY_API_SHARE_KEY", key.as_str()),
            ("MPC_API_KEY", "k"),
        ];
        let without = |name: &str| -> Vec<(&str, &str)> {
            base.iter().copied().filter(|(n, _)| *n != name).collect()
        };
        for name in [
            "MPC_JOIN_TOKEN_PUBLIC_KEY",
            "MPC_PARTY_API_IDENTITY_SEED",
            "MPC_PARTY_API_SHARE_KEY",
            "MPC_API_KEY",
        ] {
            let r = PartyApiConfig::from_vars(vars(&without(name)));
            assert!(matches!(r, Err(PartyApiError::Config(_))), "{name}");
        }
        let mut short = base.to_vec();
        short[2] = ("MPC_PARTY_API_SHARE_KEY", "c2hvcnQ=");
        assert!(PartyApiConfig::from_vars(vars(&short)).is_err());
        let mut dup = base.to_vec();
        let same_id = format!("uk-1={key}");
        dup.push(("MPC_PARTY_API_PREVIOUS_SHARE_KEYS", &same_id));
        assert!(PartyApiConfig::from_vars(vars(&dup)).is_err());
        // An access-token key alone is enough to authenticate callers.
        let mut bearer_only = without("MPC_API_KEY");
        let access = hex::encode([7u8; 32]);
        bearer_only.push(("MPC_ACCESS_TOKEN_PUBLIC_KEY", &access));
        assert!(PartyApiConfig::from_vars(vars(&bearer_only)).is_ok());
    }
}
