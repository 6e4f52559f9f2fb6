//! Value types of the engine's interface: party indices, threshold parameters, session ids,
//! message hashes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// Largest number of parties in one key (DESIGN.md §2).
pub const MAX_PARTIES: u16 = 16;

/// A party's position in a key, 0-based (the guide's `party_index`). The DKLs23 library counts
/// from 1; the conversion happens only inside this crate.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartyIndex(u16);

impl PartyIndex {
    /// Any index below [`MAX_PARTIES`].
    pub fn new(index: u16) -> Result<Self, ProtocolError> {
        if index < MAX_PARTIES {
            Ok(Self(index))
        } else {
            Err(ProtocolError::InvalidInput(format!(
                "party index {index} is out of range (0..{MAX_PARTIES})"
            )))
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }

    pub(crate) fn to_dkls(self) -> Result<dkls23::protocols::PartyIndex, ProtocolError> {
        // 0..16 maps to 1..=16; the library rejects only 0.
        u8::try_from(self.0 + 1)
            .ok()
            .and_then(|i| dkls23::protocols::PartyIndex::new(i).ok())
            .ok_or_else(|| {
                ProtocolError::internal(format!("party index {} has no library index", self.0))
            })
    }

    pub(crate) fn from_dkls(index: dkls23::protocols::PartyIndex) -> Option<Self> {
        let raw = u16::from(index.as_u8());
        (1..=MAX_PARTIES).contains(&raw).then(|| Self(raw - 1))
    }
}

impl fmt::Display for PartyIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for PartyIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", self.0)
    }
}

/// `t` of `n`: any `t` of the `n` parties sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameters {
    threshold: u16,
    parties: u16,
}

impl Parameters {
    /// Requires 2 ≤ t ≤ n ≤ 16.
    pub fn new(threshold: u16, parties: u16) -> Result<Self, ProtocolError> {
        if !(2..=MAX_PARTIES).contains(&parties) || threshold < 2 || threshold > parties {
            return Err(ProtocolError::InvalidInput(format!(
                "invalid threshold {threshold}-of-{parties}: need 2 <= t <= n <= {MAX_PARTIES}"
            )));
        }
        Ok(Self { threshold, parties })
    }

    pub fn threshold(self) -> u16 {
        self.threshold
    }

    pub fn parties(self) -> u16 {
        self.parties
    }

    /// All indices 0..n.
    pub fn indices(self) -> impl Iterator<Item = PartyIndex> {
        (0..self.parties).map(PartyIndex)
    }

    pub(crate) fn to_dkls(self) -> Result<dkls23::protocols::Parameters, ProtocolError> {
        // Both fit in u8 (≤ 16) by construction.
        dkls23::protocols::Parameters::new(self.threshold as u8, self.parties as u8)
            .map_err(|e| ProtocolError::InvalidInput(e.to_string()))
    }
}

/// The id of one protocol run, shared by all its parties (the coordinator's session UUID bytes).
/// It binds every key derivation, signature and ciphertext of the run, so messages of one session
/// are useless in another.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionId(Vec<u8>);

impl SessionId {
    /// 1 to 64 bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ProtocolError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > 64 {
            return Err(ProtocolError::InvalidInput(format!(
                "session id must be 1 to 64 bytes, got {}",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }

    /// A fresh random 16-byte id (for tests and in-process runs).
    pub fn random() -> Result<Self, ProtocolError> {
        let mut bytes = vec![0u8; 16];
        getrandom::fill(&mut bytes).map_err(ProtocolError::internal)?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A 32-byte value derived from this id for one purpose (`label`), so that the ids handed to
    /// the library for DKG, signing, refresh and repair never coincide.
    pub(crate) fn derive(&self, label: &str) -> Vec<u8> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"mpc-system/session-id/v1/");
        h.update(label.as_bytes());
        h.update([0u8]);
        h.update(&self.0);
        h.finalize().to_vec()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", hex::encode(&self.0))
    }
}

/// The 32-byte hash a signature is computed over (the caller hashes; we never see the message).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageHash([u8; 32]);

impl MessageHash {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 64 hex characters, with or without `0x`. A degenerate hash (see
    /// [`MessageHash::is_degenerate`]) is refused.
    pub fn from_hex(s: &str) -> Result<Self, ProtocolError> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| {
            ProtocolError::InvalidInput("message hash must be 32 bytes as 64 hex characters".into())
        })?;
        let hash = Self(out);
        if hash.is_degenerate() {
            return Err(ProtocolError::InvalidInput(DEGENERATE_HASH.into()));
        }
        Ok(hash)
    }

    /// Whether the hash is 0 modulo the curve order n. ECDSA on such a hash is forgeable for
    /// any public key Q without the private key: with z = 0 verification checks only that
    /// ((r/s)·Q).x = r, so any a, R = a·Q, r = R.x, s = r/a passes. Such a signature proves
    /// nothing.
    /// As a 256-bit number the hash is below 2n, so it is 0 mod n exactly when it is 0 or n.
    pub fn is_degenerate(&self) -> bool {
        self.0 == [0u8; 32] || self.0 == SECP256K1_ORDER
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The order n of secp256k1, big-endian.
const SECP256K1_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// Why a degenerate hash is refused, in words a caller understands.
pub const DEGENERATE_HASH: &str = "the message hash is 0 modulo the secp256k1 order: a signature on it can be forged for any key, so it is refused";

impl fmt::Debug for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageHash({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_hashes_are_refused() {
        use k256::elliptic_curve::Curve;
        let order = k256::Secp256k1::ORDER.to_be_bytes();
        assert_eq!(order.as_slice(), SECP256K1_ORDER.as_slice());
        assert!(MessageHash::new([0; 32]).is_degenerate());
        assert!(MessageHash::new(SECP256K1_ORDER).is_degenerate());
        assert!(MessageHash::from_hex(&"00".repeat(32)).is_err());
        assert!(MessageHash::from_hex(&hex::encode(SECP256K1_ORDER)).is_err());
        let mut above = SECP256K1_ORDER;
        above[31] += 1;
        assert!(!MessageHash::new(above).is_degenerate());
        let mut one = [0u8; 32];
        one[31] = 1;
        assert!(MessageHash::from_hex(&hex::encode(one)).is_ok());
    }

    #[test]
    fn index_conversion_round_trips() {
        for i in 0..MAX_PARTIES {
            let p = PartyIndex::new(i).unwrap();
            assert_eq!(PartyIndex::from_dkls(p.to_dkls().unwrap()), Some(p));
        }
        assert!(PartyIndex::new(MAX_PARTIES).is_err());
    }

    #[test]
    fn parameter_bounds() {
        for (t, n) in [(2, 2), (2, 3), (3, 5), (4, 7), (16, 16)] {
            assert!(Parameters::new(t, n).is_ok(), "{t}-of-{n}");
        }
        for (t, n) in [(1, 3), (0, 2), (3, 2), (2, 1), (2, 17)] {
            assert!(Parameters::new(t, n).is_err(), "{t}-of-{n}");
        }
    }

    #[test]
    fn message_hash_hex() {
        let h = MessageHash::from_hex(&format!("0x{}", "ab".repeat(32))).unwrap();
        assert_eq!(h.to_hex(), "ab".repeat(32));
        assert!(MessageHash::from_hex("ab").is_err());
        assert!(MessageHash::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn derived_ids_differ_by_label() {
        let sid = SessionId::new(vec![1, 2, 3]).unwrap();
        assert_ne!(sid.derive("dkg"), sid.derive("sign"));
        assert_eq!(sid.derive("dkg").len(), 32);
        assert!(SessionId::new(Vec::new()).is_err());
        assert!(SessionId::new(vec![0; 65]).is_err());
    }
}
