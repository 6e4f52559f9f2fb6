//! Who may call the API: the wallet back end with an API key (`X-API-Key`, as in the guide), or
//! a device with a scoped access token from the Account Service (`Authorization: Bearer …`),
//! which is good only for sessions of its own account.
//!
//! [`Authenticator`] is the seam: [`HeaderAuthenticator`] implements both schemes; another
//! scheme (mTLS identities, an external IdP) is another implementation.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use mpc_proto::{AccessTokenVerifier, AccountId, ApiError, ErrorCode};
use secrecy::{ExposeSecret, SecretString};

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
pub trait Authenticator: Send + Sync {
    fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError>;
}

/// `X-API-Key` against the configured keys, or a Bearer access token when a verifier is set.
pub struct HeaderAuthenticator {
    api_keys: Vec<SecretString>,
    access: Option<AccessTokenVerifier>,
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
        Self { api_keys, access }
    }
}

fn missing_credentials() -> ApiError {
    ApiError::from_code(ErrorCode::InvalidApiKey)
}

impl Authenticator for HeaderAuthenticator {
    fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if let Some(key) = headers.get(API_KEY_HEADER) {
            // Every configured key is compared (no early exit): timing says nothing about which.
            let presented = key.as_bytes();
            let known = self.api_keys.iter().fold(false, |found, k| {
                found | mpc_service::hash_eq(k.expose_secret().as_bytes(), presented)
            });
            // A wrong key is refused even if a token is also present: no falling through.
            return if known {
                Ok(Caller::Service)
            } else {
                Err(missing_credentials())
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

    #[test]
    fn api_keys_and_access_tokens() {
        let signer = AccessTokenSigner::from_seed(&[1; 32]);
        let auth = HeaderAuthenticator::new(
            vec![SecretString::from("key-one"), SecretString::from("key-two")],
            Some(signer.verifier()),
        );
        assert_eq!(
            auth.authenticate(&headers(&[("x-api-key", "key-two")])),
            Ok(Caller::Service)
        );
        let account = AccountId::new_random();
        let (token, _) = signer
            .issue(account, Duration::from_secs(60), SystemTime::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let bearer = format!("Bearer {token}");
        let caller = auth
            .authenticate(&headers(&[("authorization", &bearer)]))
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
                auth.authenticate(&bad).map_err(|e| e.code),
                Err(ErrorCode::InvalidApiKey)
            );
        }
        // Without a verifier, tokens are not accepted at all.
        let keys_only = HeaderAuthenticator::new(vec![SecretString::from("k")], None);
        assert!(
            keys_only
                .authenticate(&headers(&[("authorization", &bearer)]))
                .is_err()
        );
        assert!(!format!("{auth:?}").contains("key-one"));
    }
}
