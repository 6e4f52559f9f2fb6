//! Join tokens: short-lived JWTs that bind one party to one session.
//!
//! The coordinator signs them with an Ed25519 key (EdDSA JWT); the router and anything else that
//! checks a token holds only the public key, so a compromised router cannot mint tokens.
//! Every failure (bad signature, expired, wrong audience, malformed) is the same
//! `invalid join token` error to the caller; the precise reason is only logged at debug level.

use std::collections::HashMap;
use std::fmt;
use std::sync::PoisonError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{ApiError, ErrorCode};
use crate::ids::{PartyId, SessionId};
use crate::status::SessionType;

const ISSUER: &str = "mpc-session-coordinator";
const AUDIENCE: &str = "mpc-session";
/// Tolerated clock difference between services, in seconds.
const LEEWAY_SECONDS: u64 = 5;

/// What a join token says about its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    /// Session id.
    pub sid: SessionId,
    /// The party this token is for.
    pub pid: PartyId,
    /// The party's index in the key (0-based).
    pub idx: u16,
    /// The session type.
    pub typ: SessionType,
    /// Every party of the session, so the router can fan a broadcast out without asking anyone.
    pub parties: Vec<PartyId>,
    /// Unique token id.
    pub jti: uuid::Uuid,
    pub iss: String,
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expiry (the session deadline), seconds since the Unix epoch.
    pub exp: u64,
}

/// Mints join tokens. Held only by the coordinator.
pub struct TokenSigner {
    key: EncodingKey,
    public: VerifyingKey,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("public", &hex::encode(self.public.as_bytes()))
            .finish_non_exhaustive()
    }
}

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the seed follows it.
pub(crate) const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl TokenSigner {
    /// From a 32-byte Ed25519 seed (keep it secret: whoever has it can join any session).
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

    /// A signer with a fresh random key.
    pub fn generate() -> Result<Self, ApiError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(|e| ApiError::internal(&e))?;
        Ok(Self::from_seed(&seed))
    }

    /// The public key that verifiers need.
    pub fn public_key(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier {
            public: self.public,
            verified: Default::default(),
        }
    }

    /// Signs a token for `pid` valid until `expires_at`.
    pub fn issue(
        &self,
        sid: SessionId,
        pid: PartyId,
        idx: u16,
        typ: SessionType,
        parties: Vec<PartyId>,
        expires_at: SystemTime,
    ) -> Result<String, ApiError> {
        let claims = JoinClaims {
            sid,
            pid,
            idx,
            typ,
            parties,
            jti: uuid::Uuid::new_v4(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: unix_seconds(SystemTime::now()),
            exp: unix_seconds(expires_at),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)
            .map_err(|e| ApiError::internal(&e))
    }
}

/// Checks join tokens. Needs only the coordinator's public key.
///
/// A token is presented on every call a party makes in its session (≈ 25 per signature across
/// the services), and checking its Ed25519 signature each time was a measurable share of a
/// signature's CPU. So a token that verified is remembered (by the SHA-256 of its exact text:
/// only the identical string matches, and the digest reveals nothing) with its claims until it
/// expires; the expiry is still checked on every use. Clones share the memory.
#[derive(Clone)]
pub struct TokenVerifier {
    public: VerifyingKey,
    verified: std::sync::Arc<std::sync::Mutex<HashMap<[u8; 32], JoinClaims>>>,
}

/// Tokens remembered at most; beyond, the memory is emptied (and refills as tokens are used).
const MAX_REMEMBERED_TOKENS: usize = 100_000;

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("public", &hex::encode(self.public.as_bytes()))
            .finish()
    }
}

impl TokenVerifier {
    pub fn from_public_key(bytes: &[u8; 32]) -> Result<Self, ApiError> {
        VerifyingKey::from_bytes(bytes)
            .map(|public| Self {
                public,
                verified: Default::default(),
            })
            .map_err(|_| ApiError::new(ErrorCode::InvalidArgument, "invalid join-token public key"))
    }

    /// Verifies signature, issuer, audience and expiry. Any failure is `invalid join token`.
    pub fn verify(&self, token: &str) -> Result<JoinClaims, ApiError> {
        self.verify_at(token, SystemTime::now())
    }

    /// Like [`verify`](Self::verify), also requiring the token to be for `session`.
    pub fn verify_for_session(
        &self,
        token: &str,
        session: SessionId,
    ) -> Result<JoinClaims, ApiError> {
        let claims = self.verify(token)?;
        if claims.sid != session {
            tracing::debug!(token_session = %claims.sid, %session, "join token is for another session");
            return Err(ApiError::invalid_join_token());
        }
        Ok(claims)
    }

    fn verify_at(&self, token: &str, now: SystemTime) -> Result<JoinClaims, ApiError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .cloned();
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signature(token)?;
                let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
                if verified.len() >= MAX_REMEMBERED_TOKENS {
                    verified.clear();
                }
                verified.insert(digest, claims.clone());
                claims
            }
        };
        if claims.exp + LEEWAY_SECONDS < unix_seconds(now) {
            tracing::debug!(session = %claims.sid, "join token expired");
            return Err(ApiError::invalid_join_token());
        }
        Ok(claims)
    }

    /// Signature, issuer and audience (not the expiry: [`Self::verify_at`] checks that).
    fn verify_signature(&self, token: &str) -> Result<JoinClaims, ApiError> {
        let key = DecodingKey::from_ed_der(self.public.as_bytes());
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        // Expiry is checked below against `now`, so tests can move the clock.
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<JoinClaims>(token, &key, &validation).map_err(|e| {
            tracing::debug!(error = %e, "join token rejected");
            ApiError::invalid_join_token()
        })?;
        Ok(data.claims)
    }
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The party a join token claims to be for, read WITHOUT verifying the token. Only for a check
/// that must also hold for a valid token (a TLS client certificate naming another party), done
/// before the token is verified; never trust the result otherwise.
pub fn peek_party(token: &str) -> Option<String> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Pid {
        pid: String,
    }
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Pid>(&json).ok().map(|p| p.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> PartyId {
        PartyId::parse(s).unwrap()
    }

    fn issue(signer: &TokenSigner, sid: SessionId, ttl: Duration) -> String {
        signer
            .issue(
                sid,
                pid("p1"),
                0,
                SessionType::Keygen,
                vec![pid("p1"), pid("p2")],
                SystemTime::now() + ttl,
            )
            .unwrap()
    }

    #[test]
    fn round_trip() {
        let signer = TokenSigner::generate().unwrap();
        let sid = SessionId::new_random();
        let token = issue(&signer, sid, Duration::from_secs(60));
        let claims = signer.verifier().verify_for_session(&token, sid).unwrap();
        assert_eq!(claims.pid, pid("p1"));
        assert_eq!(claims.idx, 0);
        assert_eq!(claims.parties.len(), 2);
    }

    #[test]
    fn rejects_other_key_tamper_expiry_and_other_session() {
        let signer = TokenSigner::generate().unwrap();
        let sid = SessionId::new_random();
        let token = issue(&signer, sid, Duration::from_secs(60));
        let invalid = Some(ErrorCode::InvalidJoinToken);

        let other = TokenSigner::generate().unwrap();
        assert_eq!(
            other.verifier().verify(&token).err().map(|e| e.code),
            invalid
        );

        // Flip one character of the payload.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload = parts[1].clone().into_bytes();
        payload[5] = if payload[5] == b'A' { b'B' } else { b'A' };
        parts[1] = String::from_utf8(payload).unwrap();
        assert_eq!(
            signer
                .verifier()
                .verify(&parts.join("."))
                .err()
                .map(|e| e.code),
            invalid
        );

        let later = SystemTime::now() + Duration::from_secs(120);
        assert_eq!(
            signer
                .verifier()
                .verify_at(&token, later)
                .err()
                .map(|e| e.code),
            invalid
        );

        assert_eq!(
            signer
                .verifier()
                .verify_for_session(&token, SessionId::new_random())
                .err()
                .map(|e| e.code),
            invalid
        );
        assert_eq!(
            signer.verifier().verify("garbage").err().map(|e| e.code),
            invalid
        );
    }

    #[test]
    fn a_remembered_token_still_expires_and_only_its_exact_text_matches() {
        let signer = TokenSigner::generate().unwrap();
        let verifier = signer.verifier();
        let sid = SessionId::new_random();
        let token = issue(&signer, sid, Duration::from_secs(60));
        assert!(verifier.verify(&token).is_ok());
        assert_eq!(verifier.verified.lock().unwrap().len(), 1);
        // Remembered, and still checked for expiry at every use (here: by a clone).
        let later = SystemTime::now() + Duration::from_secs(120);
        assert!(verifier.clone().verify_at(&token, later).is_err());
        assert!(verifier.verify(&token).is_ok());
        // A token that differs in any way is verified afresh, and refused.
        let mut tampered = token.clone();
        tampered.push('A');
        assert!(verifier.verify(&tampered).is_err());
        let other = TokenSigner::generate().unwrap().verifier();
        assert!(other.verify(&token).is_err(), "memory is per key");
    }

    #[test]
    fn seed_is_deterministic() {
        let a = TokenSigner::from_seed(&[7u8; 32]);
        let b = TokenSigner::from_seed(&[7u8; 32]);
        assert_eq!(a.public_key(), b.public_key());
        let token = issue(&a, SessionId::new_random(), Duration::from_secs(60));
        assert!(b.verifier().verify(&token).is_ok());
    }
}
