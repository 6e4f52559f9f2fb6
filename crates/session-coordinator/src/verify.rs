//! Checks of the public results parties report. The coordinator holds no key material: it only
//! verifies a reported signature against the session's group public key and message hash.

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};

use crate::validate::PUBLIC_KEY_LEN;

/// Why a reported result is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a 65-byte uncompressed secp256k1 public key")]
    PublicKey,
    #[error("r or s is not a valid scalar")]
    Malformed,
    #[error("s is not low (EIP-2)")]
    HighS,
    #[error("v must be 0 or 1")]
    RecoveryId,
    #[error("the signature does not verify against the public key and message hash")]
    Invalid,
    #[error("ecrecover with v does not return the public key")]
    WrongRecoveryId,
}

/// Parses an uncompressed SEC1 point (`04 || x || y`) on secp256k1.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, VerifyError> {
    if bytes.len() != PUBLIC_KEY_LEN || bytes[0] != 0x04 {
        return Err(VerifyError::PublicKey);
    }
    VerifyingKey::from_sec1_bytes(bytes).map_err(|_| VerifyError::PublicKey)
}

/// Verifies `(r, s, v)` over the 32-byte `hash` for `public_key` and returns its DER encoding.
/// Requires low `s` and that `ecrecover(hash, r, s, v)` gives back `public_key`.
pub fn verify_signature(
    public_key: &[u8],
    hash: &[u8],
    r: &[u8; 32],
    s: &[u8; 32],
    v: u8,
) -> Result<Vec<u8>, VerifyError> {
    let key = parse_public_key(public_key)?;
    let sig = Signature::from_scalars(*r, *s).map_err(|_| VerifyError::Malformed)?;
    if sig.normalize_s() != sig {
        return Err(VerifyError::HighS);
    }
    if v > 1 {
        return Err(VerifyError::RecoveryId);
    }
    let recovery_id = RecoveryId::from_byte(v).ok_or(VerifyError::RecoveryId)?;
    key.verify_prehash(hash, &sig)
        .map_err(|_| VerifyError::Invalid)?;
    let recovered = VerifyingKey::recover_from_prehash(hash, &sig, recovery_id)
        .map_err(|_| VerifyError::WrongRecoveryId)?;
    if recovered != key {
        return Err(VerifyError::WrongRecoveryId);
    }
    Ok(sig.to_der().as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use k256::ecdsa::SigningKey;

    use super::*;

    /// A throwaway test key: the coordinator never holds one; tests need one to make signatures.
    fn test_key() -> SigningKey {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        SigningKey::from_slice(&seed).unwrap()
    }

    fn public(key: &SigningKey) -> Vec<u8> {
        key.verifying_key().to_sec1_point(false).as_bytes().to_vec()
    }

    fn scalars(sig: &Signature) -> ([u8; 32], [u8; 32]) {
        let bytes = sig.to_bytes();
        (
            bytes[..32].try_into().unwrap(),
            bytes[32..].try_into().unwrap(),
        )
    }

    #[test]
    fn accepts_a_real_signature_and_rejects_every_alteration() {
        let key = test_key();
        let hash = [0x5a; 32];
        let (sig, recid) = key.sign_prehash_recoverable(&hash);
        let (r, s) = scalars(&sig);
        let v = recid.to_byte();
        let pk = public(&key);
        let der = verify_signature(&pk, &hash, &r, &s, v).unwrap();
        assert_eq!(der, sig.to_der().as_bytes());

        assert_eq!(
            verify_signature(&pk, &hash, &r, &s, 1 - v),
            Err(VerifyError::WrongRecoveryId)
        );
        assert_eq!(
            verify_signature(&pk, &hash, &r, &s, 2),
            Err(VerifyError::RecoveryId)
        );
        assert_eq!(
            verify_signature(&pk, &[0x5b; 32], &r, &s, v),
            Err(VerifyError::Invalid)
        );
        let other = public(&test_key());
        assert_eq!(
            verify_signature(&other, &hash, &r, &s, v),
            Err(VerifyError::Invalid)
        );
        // The high-s twin verifies mathematically, but EIP-2 forbids it.
        let high = Signature::from_scalars(r, (-*sig.s()).to_bytes()).unwrap();
        let (hr, hs) = scalars(&high);
        assert_eq!(
            verify_signature(&pk, &hash, &hr, &hs, 1 - v),
            Err(VerifyError::HighS)
        );
        assert_eq!(
            verify_signature(&pk, &hash, &[0; 32], &s, v),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify_signature(&pk[..33], &hash, &r, &s, v),
            Err(VerifyError::PublicKey)
        );
    }

    #[test]
    fn public_keys_must_be_uncompressed_points() {
        let key = test_key();
        assert!(parse_public_key(&public(&key)).is_ok());
        let compressed = key.verifying_key().to_sec1_point(true).as_bytes().to_vec();
        assert!(parse_public_key(&compressed).is_err());
        let mut off_curve = public(&key);
        off_curve[64] ^= 1;
        assert!(parse_public_key(&off_curve).is_err());
        assert!(parse_public_key(&[4u8; 65]).is_err());
    }
}
