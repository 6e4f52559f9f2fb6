//! Who may call the API: the wallet back end with an API key (`X-API-Key`, as in the guide), or
//! a device with a scoped access token from the Account Service (`Authorization: Bearer …`),
//! which is good only for sessions of its own account.
//!
//! API keys are the configured ones (`MPC_API_KEY`, …) or, when the Account Service's URL is
//! configured, any key the Account Service accepts (made with `POST /api/v1/admin/api-keys`):
//! the API asks `GET /api/v1/api-keys/self` and keeps a positive answer for a short time
//! ([`AccountKeys`]), so a revoked or expired key stops working here within that time.
//!
//! [`Authenticator`] is the seam: [`HeaderAuthenticator`] implements both schemes; another
//! scheme (mTLS identities, an external IdP) is another implementation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use chrono::{DateTime, Utc};
use mpc_proto::{AccessTokenVerifier, AccountId, ApiError, ErrorBody, ErrorCode};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

pub const API_KEY_HEADER: &str = "x-api-key";

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Holds an API key: any session (the join token still decides which party it is).
    Service,
    /// Holds an access token for this account: only sessions whose `key_id` is the account.
    Account(AccountId),
}

impl Caller {
    /// Whether this caller may act in a session of `key_id`.
    pub fn check_key(&self, key_id: &str) -> Result<(), ApiError> {
        match self {
            Caller::Service => Ok(()),
            Caller::Account(account) if account.to_string() == key_id => Ok(()),
            Caller::Account(_) => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "the access token is for another account than this session's",
            )),
        }
    }
}

/// Authenticates a request from its headers.
#[async_trait]
pub trait Authenticator: Send + Sync {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError>;
}

/// `X-API-Key` against the configured keys (and the Account Service's, when set), or a Bearer
/// access token when a verifier is set.
pub struct HeaderAuthenticator {
    api_keys: Vec<SecretString>,
    access: Option<AccessTokenVerifier>,
    accounts: Option<AccountKeys>,
}

/// Longer header values are not keys (as in the Account Service).
const MAX_KEY_LEN: usize = 512;
/// Bound on the remembered keys; beyond it the memory is emptied and refilled on demand.
const MAX_REMEMBERED_KEYS: usize = 10_000;

/// The Account Service's API keys, asked for and remembered for `ttl`.
pub struct AccountKeys {
    client: reqwest::Client,
    self_url: String,
    ttl: Duration,
    /// SHA-256 of a key → until when it is known good. (The hash of a secret reveals nothing
    /// about it; a lookup by hash leaks nothing through its timing.)
    known: Mutex<HashMap<[u8; 32], Instant>>,
}

#[derive(serde::Deserialize)]
struct KeySelf {
    expires_at: Option<DateTime<Utc>>,
}

impl AccountKeys {
    /// `account_url`: the Account Service's base URL (`http://account:4000`); `ttl`: how long a
    /// verified key is trusted without asking again (a revocation takes effect within it).
    pub fn new(
        account_url: &str,
        ttl: Duration,
        timeout: Duration,
        tls: &mpc_service::TlsConfig,
    ) -> Result<Self, ApiError> {
        let client = tls
            .reqwest_builder(reqwest::Client::builder())
            .map_err(|e| ApiError::invalid_argument(format!("TLS: {e}")))?
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| ApiError::invalid_argument(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            self_url: format!("{}/api/v1/api-keys/self", account_url.trim_end_matches('/')),
            ttl,
            known: Mutex::new(HashMap::new()),
        })
    }

    fn remembered(&self, hash: &[u8; 32]) -> bool {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(hash).is_some_and(|until| *until > Instant::now())
    }

    fn remember(&self, hash: [u8; 32], until: Instant) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_REMEMBERED_KEYS {
            let now = Instant::now();
            known.retain(|_, t| *t > now);
            if known.len() >= MAX_REMEMBERED_KEYS {
                known.clear();
            }
        }
        known.insert(hash, until);
    }

    /// Whether the Account Service accepts `key`; its refusal ("API key revoked", …) is passed
    /// on, and an Account Service that cannot be asked is 503, never a wrong 401.
    pub async fn verify(&self, key: &str) -> Result<(), ApiError> {
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if self.remembered(&hash) {
            return Ok(());
        }
        let unavailable = || {
            ApiError::new(
                ErrorCode::Unavailable,
                "cannot verify the API key: the Account Service did not answer",
            )
            .with_retry_after(1)
        };
        let response = self
            .client
            .get(&self.self_url)
            .header(API_KEY_HEADER, key)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot reach the Account Service to verify an API key");
                unavailable()
            })?;
        let status = response.status();
        if status.is_success() {
            let body: KeySelf = response.json().await.map_err(|_| unavailable())?;
            let mut until = Instant::now() + self.ttl;
            if let Some(expires) = body.expires_at {
                let left = (expires - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                until = until.min(Instant::now() + left);
            }
            self.remember(hash, until);
            return Ok(());
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let message = response
                .json::<ErrorBody>()
                .await
                .map(|b| b.error.message)
                .unwrap_or_else(|_| "invalid API key".into());
            return Err(ApiError::new(ErrorCode::InvalidApiKey, message));
        }
        tracing::warn!(%status, "the Account Service answered an API key check with an unexpected status");
        Err(unavailable())
    }
}

impl fmt::Debug for HeaderAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderAuthenticator")
            .field(
                "api_keys",
                &format_args!("[{} REDACTED]", self.api_keys.len()),
            )
            .field("access", &self.access)
            .finish()
    }
}

impl HeaderAuthenticator {
    pub fn new(api_keys: Vec<SecretString>, access: Option<AccessTokenVerifier>) -> Self {
        Self {
            api_keys,
            access,
            accounts: None,
        }
    }

    /// Also accept the keys the Account Service accepts.
    pub fn with_account_keys(mut self, accounts: AccountKeys) -> Self {
        self.accounts = Some(accounts);
        self
    }
}

fn missing_credentials() -> ApiError {
    ApiError::from_code(ErrorCode::InvalidApiKey)
}

#[async_trait]
impl Authenticator for HeaderAuthenticator {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if let Some(key) = headers.get(API_KEY_HEADER) {
            // Every configured key is compared (no early exit): timing says nothing about which.
            let presented = key.as_bytes();
            let known = self.api_keys.iter().fold(false, |found, k| {
                found | mpc_service::hash_eq(k.expose_secret().as_bytes(), presented)
            });
            // A wrong key is refused even if a token is also present: no falling through.
            if known {
                return Ok(Caller::Service);
            }
            let usable = key
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN);
            return match (&self.accounts, usable) {
                (Some(accounts), Some(key)) => accounts.verify(key).await.map(|()| Caller::Service),
                _ => Err(missing_credentials()),
            };
        }
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match (bearer, &self.access) {
            (Some(token), Some(verifier)) => verifier
                .verify(token)
                .map(|claims| Caller::Account(claims.sub)),
            _ => Err(missing_credentials()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use axum::http::HeaderValue;
    use mpc_proto::AccessTokenSigner;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                *k,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
        }
        h
    }

    #[tokio::test]
    async fn api_keys_and_access_tokens() {
        let signer = AccessTokenSigner::from_seed(&[1; 32]);
        let auth = HeaderAuthenticator::new(
            vec![SecretString::from("key-one"), SecretString::from("key-two")],
            Some(signer.verifier()),
        );
        assert_eq!(
            auth.authenticate(&headers(&[("x-api-key", "key-two")]))
                .await,
            Ok(Caller::Service)
        );
        let account = AccountId::new_random();
        let (token, _) = signer
            .issue(account, Duration::from_secs(60), SystemTime::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let bearer = format!("Bearer {token}");
        let caller = auth
            .authenticate(&headers(&[("authorization", &bearer)]))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(caller, Caller::Account(account));
        assert!(caller.check_key(&account.to_string()).is_ok());
        assert_eq!(
            caller
                .check_key(&AccountId::new_random().to_string())
                .map_err(|e| e.code),
            Err(ErrorCode::PermissionDenied)
        );
        // A wrong API key is refused even with a valid token beside it.
        for bad in [
            headers(&[]),
            headers(&[("x-api-key", "key-three")]),
            headers(&[("x-api-key", "key-on")]),
            headers(&[("x-api-key", "wrong"), ("authorization", &bearer)]),
            headers(&[("authorization", "Bearer not-a-token")]),
            headers(&[("authorization", &token)]),
        ] {
            assert_eq!(
                auth.authenticate(&bad).await.map_err(|e| e.code),
                Err(ErrorCode::InvalidApiKey)
            );
        }
        // Without a verifier, tokens are not accepted at all.
        let keys_only = HeaderAuthenticator::new(vec![SecretString::from("k")], None);
        assert!(
            keys_only
                .authenticate(&headers(&[("authorization", &bearer)]))
                .await
                .is_err()
        );
        assert!(!format!("{auth:?}").contains("key-one"));
    }
}
