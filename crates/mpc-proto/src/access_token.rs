//! Scoped access tokens: short-lived EdDSA JWTs that a wallet back end mints for one account
//! (`POST /api/v1/accounts/{id}/access-tokens`), so that a device can call the Server Party API
//! for that account only.
//!
//! The Account Service holds the Ed25519 seed; the Server Party API verifies with the public
//! key alone (served at `GET /api/v1/access-token-key`), using [`AccessTokenVerifier`]. Every
//! verification failure is the same "invalid access token" to the caller.
//!
//! They live here, not in the Account Service, so that the (stateless) Server Party API can
//! verify them without linking the Account Service and its database layer.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{ApiError, ErrorCode};
use crate::ids::AccountId;
use crate::token::ED25519_PKCS8_PREFIX;

pub const ISSUER: &str = "mpc-account-service";
pub const AUDIENCE: &str = "mpc-server-party-api";
/// The only scope there is: calls to the Server Party API for the token's account.
pub const SCOPE_PARTY_API: &str = "party-api";
const LEEWAY_SECONDS: u64 = 5;

/// What an access token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The account the holder may act for.
    pub sub: AccountId,
    /// `party-api`.
    pub scope: String,
    pub jti: uuid::Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

/// Mints access tokens. Held only by the Account Service.
pub struct AccessTokenSigner {
    key: EncodingKey,
    public: VerifyingKey,
}

impl fmt::Debug for AccessTokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenSigner")
            .field("public", &hex::encode(self.public.as_bytes()))
            .finish_non_exhaustive()
    }
}

impl AccessTokenSigner {
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(seed);
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&ED25519_PKCS8_PREFIX);
        der.extend_from_slice(seed);
        Self {
            key: EncodingKey::from_ed_der(&der),
            public: signing.verifying_key(),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    pub fn verifier(&self) -> AccessTokenVerifier {
        AccessTokenVerifier {
            public: self.public,
        }
    }

    /// A `party-api` token for `account`, valid for `lifetime` from `now`.
    pub fn issue(
        &self,
        account: AccountId,
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<(String, AccessClaims), ApiError> {
        let iat = unix_seconds(now);
        let claims = AccessClaims {
            sub: account,
            scope: SCOPE_PARTY_API.to_owned(),
            jti: uuid::Uuid::new_v4(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat,
            exp: iat.saturating_add(lifetime.as_secs()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)
            .map_err(|e| ApiError::internal(&e))?;
        Ok((token, claims))
    }
}

/// Checks access tokens with the Account Service's public key.
#[derive(Clone)]
pub struct AccessTokenVerifier {
    public: VerifyingKey,
}

impl fmt::Debug for AccessTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenVerifier")
            .field("public", &hex::encode(self.public.as_bytes()))
            .finish()
    }
}

fn invalid_access_token() -> ApiError {
    ApiError::new(ErrorCode::InvalidApiKey, "invalid access token")
}

impl AccessTokenVerifier {
    pub fn from_public_key(bytes: &[u8; 32]) -> Result<Self, ApiError> {
        VerifyingKey::from_bytes(bytes)
            .map(|public| Self { public })
            .map_err(|_| ApiError::invalid_argument("invalid access-token public key"))
    }

    /// Signature, issuer, audience, scope and expiry. Any failure is `invalid access token`
    /// (401 `invalid_api_key`); the reason is logged at debug level only.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        let key = DecodingKey::from_ed_der(self.public.as_bytes());
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map_err(|e| {
                tracing::debug!(error = %e, "access token rejected");
                invalid_access_token()
            })?
            .claims;
        if claims.scope != SCOPE_PARTY_API {
            return Err(invalid_access_token());
        }
        Ok(claims)
    }

    /// Like [`verify`](Self::verify), also requiring the token to be for `account`.
    pub fn verify_for_account(
        &self,
        token: &str,
        account: AccountId,
    ) -> Result<AccessClaims, ApiError> {
        let claims = self.verify(token)?;
        if claims.sub != account {
            tracing::debug!(token_account = %claims.sub, %account, "access token is for another account");
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "the access token is for another account",
            ));
        }
        Ok(claims)
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_for_their_account_only() {
        let signer = AccessTokenSigner::from_seed(&[1; 32]);
        let account = AccountId::new_random();
        let (token, claims) = signer
            .issue(account, Duration::from_secs(60), SystemTime::now())
            .unwrap();
        let verifier = AccessTokenVerifier::from_public_key(&signer.public_key()).unwrap();
        assert_eq!(verifier.verify(&token).unwrap(), claims);
        assert_eq!(
            verifier.verify_for_account(&token, account).unwrap().sub,
            account
        );
        let other = verifier.verify_for_account(&token, AccountId::new_random());
        assert_eq!(other.unwrap_err().code, ErrorCode::PermissionDenied);
    }

    #[test]
    fn expired_forged_and_garbage_tokens_are_refused() {
        let signer = AccessTokenSigner::from_seed(&[1; 32]);
        let verifier = signer.verifier();
        let account = AccountId::new_random();
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        let (expired, _) = signer
            .issue(account, Duration::from_secs(60), long_ago)
            .unwrap();
        let (forged, _) = AccessTokenSigner::from_seed(&[2; 32])
            .issue(account, Duration::from_secs(60), SystemTime::now())
            .unwrap();
        for bad in [expired.as_str(), forged.as_str(), "", "a.b.c"] {
            let err = verifier.verify(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidApiKey);
            assert_eq!(err.message, "invalid access token");
        }
    }

    #[test]
    fn debug_shows_only_the_public_key() {
        let signer = AccessTokenSigner::from_seed(&[9; 32]);
        let shown = format!("{signer:?}");
        assert!(shown.contains(&hex::encode(signer.public_key())));
        assert!(!shown.contains(&hex::encode([9u8; 32])));
    }
}
