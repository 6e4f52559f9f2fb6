//! The outputs callers see: the group public key (SEC1 uncompressed, EIP-55 address) and
//! signatures (r, s low-s normalised, recovery id v, DER).

use std::fmt;

use k256::elliptic_curve::sec1::ToSec1Point;
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// A secp256k1 group public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(k256::AffinePoint);

impl PublicKey {
    pub(crate) fn from_affine(point: k256::AffinePoint) -> Self {
        Self(point)
    }

    pub(crate) fn as_affine(&self) -> &k256::AffinePoint {
        &self.0
    }

    /// Parses a SEC1 encoding (65-byte uncompressed `04…` or 33-byte compressed).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, ProtocolError> {
        k256::PublicKey::from_sec1_bytes(bytes)
            .map(|pk| Self(*pk.as_affine()))
            .map_err(|_| ProtocolError::InvalidInput("not a valid secp256k1 public key".into()))
    }

    /// 65 bytes: `04 || x || y`, as the guide returns `public_key`.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        let point = self.0.to_sec1_point(false);
        let mut out = [0u8; 65];
        // An uncompressed SEC1 point is always 65 bytes; the identity (1 byte) cannot occur for a
        // key the protocol accepted.
        if point.as_bytes().len() == 65 {
            out.copy_from_slice(point.as_bytes());
        }
        out
    }

    /// 33 bytes: `02/03 || x` (BIP32 serialisation).
    pub fn to_compressed(&self) -> [u8; 33] {
        let point = self.0.to_sec1_point(true);
        let mut out = [0u8; 33];
        if point.as_bytes().len() == 33 {
            out.copy_from_slice(point.as_bytes());
        }
        out
    }

    /// Lower-case hex of [`to_uncompressed`](Self::to_uncompressed), `04…`.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_uncompressed())
    }

    /// The EIP-55 checksummed Ethereum address (`0x…`).
    pub fn eth_address(&self) -> String {
        dkls23::secp256k1::compute_eth_address(&self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An ECDSA signature as the guide returns it: `r`, `s` (low-s, EIP-2) and the recovery id `v`
/// (0 or 1) such that `ecrecover(hash, r, s, v)` is the group key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature {
    pub r: [u8; 32],
    pub s: [u8; 32],
    pub v: u8,
}

impl Signature {
    /// The ASN.1 DER encoding (`3045022100…`), the guide's `signature` field.
    pub fn to_der(&self) -> Result<Vec<u8>, ProtocolError> {
        let sig = k256::ecdsa::Signature::from_scalars(self.r, self.s)
            .map_err(|_| ProtocolError::internal("signature scalars out of range"))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }

    /// 64 bytes `r || s`.
    pub fn to_compact(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Signature(r={}, s={}, v={})",
            hex::encode(self.r),
            hex::encode(self.s),
            self.v
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address of the key whose secret is 1 is a well-known constant.
    #[test]
    fn eth_address_of_generator() {
        let pk = PublicKey::from_affine(k256::AffinePoint::GENERATOR);
        assert_eq!(
            pk.eth_address(),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        assert_eq!(&pk.to_hex()[..2], "04");
        assert_eq!(PublicKey::from_sec1(&pk.to_uncompressed()).ok(), Some(pk));
        assert!(PublicKey::from_sec1(&[4u8; 65]).is_err());
    }

    #[test]
    fn der_encoding_parses_back() {
        let sig = Signature {
            r: [1u8; 32],
            s: [2u8; 32],
            v: 0,
        };
        let der = sig.to_der().unwrap();
        assert_eq!(der[0], 0x30);
        let parsed = k256::ecdsa::Signature::from_der(&der).unwrap();
        assert_eq!(parsed.to_bytes().as_slice(), sig.to_compact().as_slice());
        assert!(
            Signature {
                r: [0u8; 32],
                s: [2u8; 32],
                v: 0
            }
            .to_der()
            .is_err()
        );
    }
}
