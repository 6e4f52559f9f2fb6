//! API keys: `X-API-Key` on every call (but the ops and docs routes).
//!
//! A key is `mpc_` + 43 base64url characters (32 random bytes), shown once when created and
//! stored only as its SHA-256. Lookup is by hash (the hash of a secret reveals nothing about
//! it), and the stored hash is compared with the presented one in constant time. The bootstrap
//! key (`MPC_API_KEY`) is never stored: its hash is held in memory and compared the same way.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{ApiError, ErrorCode};
use mpc_service::hash_eq;
use mpc_store::account::{AccountStore, ApiKeyRecord, ApiKeyScope, NewApiKey};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The header that carries the key (integration guide §5.1).
pub const API_KEY_HEADER: &str = "x-api-key";
/// What every generated key starts with, so that secret scanners and people can recognise it.
pub const KEY_PREFIX: &str = "mpc_";
/// The caller id of the bootstrap key in the audit log.
pub const BOOTSTRAP_CALLER: &str = "bootstrap";
/// `last_used_at` is written at most this often per key.
const LAST_USED_RESOLUTION: TimeDelta = TimeDelta::seconds(60);
/// Longer header values are not keys; refuse them before hashing.
const MAX_KEY_LEN: usize = 512;

/// Who is calling: set by [`require_api_key`] on the request (and the response, for the audit
/// log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The API key id, or `bootstrap`.
    pub key_id: String,
    pub scope: ApiKeyScope,
    /// When the key stops working, if it expires.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.scope == ApiKeyScope::Admin {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "this endpoint needs an admin API key",
            ))
        }
    }
}

/// A key just generated: the plaintext (shown once) and what is stored.
pub struct GeneratedKey {
    pub plaintext: SecretString,
    pub hash: [u8; 32],
    pub prefix: String,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A fresh random key.
pub fn generate_key() -> Result<GeneratedKey, ApiError> {
    let mut random = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(random.as_mut_slice()).map_err(|e| ApiError::internal(&e))?;
    let plaintext = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random.as_slice())
    );
    let hash = hash_key(&plaintext);
    let prefix = plaintext.chars().take(12).collect();
    Ok(GeneratedKey {
        plaintext: SecretString::from(plaintext),
        hash,
        prefix,
    })
}

/// Authenticates presented keys.
pub struct ApiKeys {
    store: Arc<dyn AccountStore>,
    bootstrap_hash: Option<[u8; 32]>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("bootstrap", &self.bootstrap_hash.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    pub fn new(store: Arc<dyn AccountStore>, bootstrap: Option<&SecretString>) -> Self {
        Self {
            store,
            bootstrap_hash: bootstrap.map(|k| hash_key(k.expose_secret().trim())),
        }
    }

    /// The caller behind `presented`, or 401 `invalid_api_key` saying what is wrong: missing,
    /// revoked, expired, or simply invalid (which never reveals whether a string was a key).
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Caller, ApiError> {
        let Some(presented) = presented.map(str::trim).filter(|k| !k.is_empty()) else {
            return Err(ApiError::new(
                ErrorCode::InvalidApiKey,
                "missing API key: send it in the X-API-Key header",
            ));
        };
        let invalid = || ApiError::new(ErrorCode::InvalidApiKey, "invalid API key");
        if presented.len() > MAX_KEY_LEN {
            return Err(invalid());
        }
        let hash = hash_key(presented);
        if let Some(bootstrap) = &self.bootstrap_hash
            && hash_eq(bootstrap, &hash)
        {
            return Ok(Caller {
                key_id: BOOTSTRAP_CALLER.to_owned(),
                scope: ApiKeyScope::Admin,
                expires_at: None,
            });
        }
        let record = self
            .store
            .find_api_key_by_hash(&hash)
            .await
            .map_err(ApiError::from)?
            .filter(|r| hash_eq(&r.key_hash, &hash))
            .ok_or_else(invalid)?;
        check_usable(&record, now)?;
        if let Err(e) = self
            .store
            .touch_api_key(record.id, now, LAST_USED_RESOLUTION)
            .await
        {
            tracing::warn!(error = %e, key_id = %record.id, "could not record API key use");
        }
        Ok(Caller {
            key_id: record.id.to_string(),
            scope: record.scope,
            expires_at: record.expires_at,
        })
    }

    /// Stores a new key and returns it with its plaintext (to be shown once).
    pub async fn create(
        &self,
        name: String,
        scope: ApiKeyScope,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(ApiKeyRecord, SecretString), ApiError> {
        let generated = generate_key()?;
        let key = NewApiKey {
            id: uuid::Uuid::new_v4(),
            name,
            key_hash: generated.hash,
            prefix: generated.prefix,
            scope,
            created_at: now,
            expires_at,
        };
        self.store.insert_api_key(&key).await?;
        let record = ApiKeyRecord {
            id: key.id,
            name: key.name,
            key_hash: key.key_hash,
            prefix: key.prefix,
            scope: key.scope,
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        Ok((record, generated.plaintext))
    }
}

fn check_usable(record: &ApiKeyRecord, now: DateTime<Utc>) -> Result<(), ApiError> {
    if record.revoked_at.is_some() {
        return Err(ApiError::new(ErrorCode::InvalidApiKey, "API key revoked"));
    }
    if record.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::new(ErrorCode::InvalidApiKey, "API key expired"));
    }
    Ok(())
}

/// Middleware: authenticates `X-API-Key` and puts the [`Caller`] in the request's and the
/// response's extensions; answers 401 itself when the key is missing or not usable.
pub async fn require_api_key(
    State(keys): State<Arc<ApiKeys>>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(API_KEY_HEADER)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    match keys.authenticate(presented, Utc::now()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller.clone());
            // Sessions started by this request are recorded as this key's (for its webhooks).
            let mut response = crate::webhooks::CALLER_KEY
                .scope(caller.key_id.clone(), next.run(req))
                .await;
            response.extensions_mut().insert(caller);
            response
        }
        Err(e) => refuse_credentials(e),
    }
}

/// The refusal of a credential, marked [`mpc_service::AuthFailure`] when it is a 401 (a wrong,
/// missing, revoked or expired key or token) so that the throttle counts it; a 503 (the
/// database could not be asked) is not the caller's failure.
pub fn refuse_credentials(e: ApiError) -> Response {
    let counted = e.code.http_status() == axum::http::StatusCode::UNAUTHORIZED;
    let mut response = e.into_response();
    if counted {
        response.extensions_mut().insert(mpc_service::AuthFailure);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_prefixed() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        let (ka, kb) = (a.plaintext.expose_secret(), b.plaintext.expose_secret());
        assert!(ka.starts_with(KEY_PREFIX));
        assert_eq!(ka.len(), KEY_PREFIX.len() + 43, "32 bytes of base64url");
        assert_ne!(ka, kb);
        assert_eq!(a.hash, hash_key(ka));
        assert!(ka.starts_with(&a.prefix));
        assert!(!format!("{a:?}").contains(ka));
    }

    fn record(revoked: bool, expires_in: Option<i64>) -> ApiKeyRecord {
        let now = Utc::now();
        ApiKeyRecord {
            id: uuid::Uuid::new_v4(),
            name: "k".into(),
            key_hash: [0; 32],
            prefix: "mpc_x".into(),
            scope: ApiKeyScope::Operator,
            created_at: now,
            expires_at: expires_in.map(|s| now + TimeDelta::seconds(s)),
            revoked_at: revoked.then_some(now),
            last_used_at: None,
        }
    }

    #[test]
    fn revoked_and_expired_keys_say_so() {
        let now = Utc::now();
        assert!(check_usable(&record(false, None), now).is_ok());
        assert!(check_usable(&record(false, Some(60)), now).is_ok());
        let expired = check_usable(&record(false, Some(-1)), now).unwrap_err();
        assert_eq!(
            (expired.code, expired.message.as_str()),
            (ErrorCode::InvalidApiKey, "API key expired")
        );
        let revoked = check_usable(&record(true, Some(60)), now).unwrap_err();
        assert_eq!(revoked.message, "API key revoked");
    }

    #[test]
    fn only_admin_keys_pass_require_admin() {
        let admin = Caller {
            key_id: "a".into(),
            scope: ApiKeyScope::Admin,
            expires_at: None,
        };
        let operator = Caller {
            key_id: "o".into(),
            scope: ApiKeyScope::Operator,
            expires_at: None,
        };
        assert!(admin.require_admin().is_ok());
        assert_eq!(
            operator.require_admin().unwrap_err().code,
            ErrorCode::PermissionDenied
        );
    }
}
