//! Sealing secrets at rest (DESIGN.md §1.3): AES-256-GCM under a key-encryption key (KEK), with
//! the associated data binding the ciphertext to the key id, party id and party index it belongs
//! to. A share sealed for one party, or one key, does not open as another's; a wrong KEK is an
//! error, never garbage.
//!
//! Layout: `b"MPCSEAL"`, version byte `1`, KEK id length (`u8`) and the KEK id (so a store can
//! hold shares under several KEKs during a rotation), a 12-byte random nonce, then the ciphertext
//! and tag. The whole header is part of the associated data.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::share::KeyShare;

const MAGIC: &[u8; 7] = b"MPCSEAL";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const AAD_CONTEXT: &[u8] = b"mpc-system/sealed/v1";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("invalid key-encryption key: {0}")]
    InvalidKey(String),
    /// The blob was sealed under another KEK (its id is given): rotate or configure that key.
    #[error("sealed under key-encryption key {found:?}, not {expected:?}")]
    WrongKey { expected: String, found: String },
    /// Authentication failed: wrong key bytes, wrong context (key id, party id, index), or
    /// tampered data.
    #[error(
        "sealed data does not open with this key and context (wrong key, wrong owner, or tampered)"
    )]
    Unauthentic,
    #[error("not sealed data: {0}")]
    Malformed(String),
    #[error("sealed share is invalid: {0}")]
    InvalidShare(String),
    #[error("sealing failed: {0}")]
    Internal(String),
}

/// A 256-bit key-encryption key with an id. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct SealingKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl SealingKey {
    /// `id`: 1 to 64 printable ASCII characters, stored in clear in every sealed blob.
    pub fn new(id: impl Into<String>, key: [u8; 32]) -> Result<Self, SealError> {
        let id = id.into();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SealError::InvalidKey(
                "key id must be 1 to 64 printable ASCII characters".into(),
            ));
        }
        Ok(Self {
            id,
            key: Zeroizing::new(key),
        })
    }

    /// From exactly 32 bytes (e.g. decoded from base64 configuration).
    pub fn from_slice(id: impl Into<String>, key: &[u8]) -> Result<Self, SealError> {
        let arr: [u8; 32] = key.try_into().map_err(|_| {
            SealError::InvalidKey(format!("key must be 32 bytes, got {}", key.len()))
        })?;
        Self::new(id, arr)
    }

    pub fn generate(id: impl Into<String>) -> Result<Self, SealError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut_slice()).map_err(|e| SealError::Internal(e.to_string()))?;
        Self::new(id, *key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What a sealed blob is bound to.
#[derive(Clone, Copy, Debug)]
pub struct SealContext<'a> {
    /// The group key (account) the secret belongs to.
    pub key_id: &'a str,
    /// The party holding it.
    pub party_id: &'a str,
    pub party_index: u16,
}

fn header(kek_id: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(MAGIC.len() + 2 + kek_id.len());
    h.extend_from_slice(MAGIC);
    h.push(VERSION);
    // Bounded to 64 by `SealingKey::new`.
    h.push(kek_id.len() as u8);
    h.extend_from_slice(kek_id.as_bytes());
    h
}

fn aad(header: &[u8], ctx: &SealContext<'_>) -> Vec<u8> {
    let mut a = Vec::with_capacity(
        AAD_CONTEXT.len() + header.len() + ctx.key_id.len() + ctx.party_id.len() + 16,
    );
    a.extend_from_slice(AAD_CONTEXT);
    a.extend_from_slice(header);
    for part in [ctx.key_id.as_bytes(), ctx.party_id.as_bytes()] {
        a.extend_from_slice(&(part.len() as u32).to_be_bytes());
        a.extend_from_slice(part);
    }
    a.extend_from_slice(&ctx.party_index.to_be_bytes());
    a
}

/// Seals `plaintext` under `key`, bound to `ctx`.
pub fn seal(
    key: &SealingKey,
    ctx: &SealContext<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let header = header(&key.id);
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| SealError::Internal(e.to_string()))?;
    let cipher = Aes256Gcm::new_from_slice(key.key.as_slice())
        .map_err(|e| SealError::Internal(e.to_string()))?;
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: &aad(&header, ctx),
            },
        )
        .map_err(|_| SealError::Internal("encryption failed".into()))?;
    let mut out = header;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The parts of a sealed blob.
struct Parsed<'a> {
    header: &'a [u8],
    kek_id: &'a str,
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

fn parse(sealed: &[u8]) -> Result<Parsed<'_>, SealError> {
    let malformed = |why: &str| SealError::Malformed(why.into());
    if sealed.len() < MAGIC.len() + 2 || &sealed[..MAGIC.len()] != MAGIC {
        return Err(malformed("missing MPCSEAL header"));
    }
    if sealed[MAGIC.len()] != VERSION {
        return Err(malformed("unsupported sealed-data version"));
    }
    let id_len = usize::from(sealed[MAGIC.len() + 1]);
    let header_len = MAGIC.len() + 2 + id_len;
    if sealed.len() < header_len + NONCE_LEN + 16 {
        return Err(malformed("truncated"));
    }
    let kek_id = std::str::from_utf8(&sealed[MAGIC.len() + 2..header_len])
        .map_err(|_| malformed("bad key id"))?;
    let nonce = &sealed[header_len..header_len + NONCE_LEN];
    Ok(Parsed {
        header: &sealed[..header_len],
        kek_id,
        nonce,
        ciphertext: &sealed[header_len + NONCE_LEN..],
    })
}

/// The id of the KEK a blob was sealed under (to pick the key, or to find blobs to re-seal).
pub fn sealed_key_id(sealed: &[u8]) -> Result<&str, SealError> {
    parse(sealed).map(|p| p.kek_id)
}

/// Opens a blob sealed by [`seal`] with the same key and context.
pub fn open(
    key: &SealingKey,
    ctx: &SealContext<'_>,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let Parsed {
        header,
        kek_id,
        nonce,
        ciphertext: ct,
    } = parse(sealed)?;
    if kek_id != key.id {
        return Err(SealError::WrongKey {
            expected: key.id.clone(),
            found: kek_id.to_owned(),
        });
    }
    let cipher = Aes256Gcm::new_from_slice(key.key.as_slice())
        .map_err(|e| SealError::Internal(e.to_string()))?;
    let nonce = Nonce::try_from(nonce).map_err(|_| SealError::Malformed("bad nonce".into()))?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ct,
                aad: &aad(header, ctx),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Unauthentic)
}

/// Serialises and seals a key share.
pub fn seal_share(
    key: &SealingKey,
    ctx: &SealContext<'_>,
    share: &KeyShare,
) -> Result<Vec<u8>, SealError> {
    let bytes = share
        .to_bytes()
        .map_err(|e| SealError::InvalidShare(e.to_string()))?;
    seal(key, ctx, &bytes)
}

/// Opens and validates a sealed key share.
pub fn open_share(
    key: &SealingKey,
    ctx: &SealContext<'_>,
    sealed: &[u8],
) -> Result<KeyShare, SealError> {
    let bytes = open(key, ctx, sealed)?;
    let share = KeyShare::from_bytes(&bytes).map_err(|e| SealError::InvalidShare(e.to_string()))?;
    if share.index().get() != ctx.party_index {
        return Err(SealError::InvalidShare(format!(
            "share is for party index {}, expected {}",
            share.index(),
            ctx.party_index
        )));
    }
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(key_id: &'a str, party_id: &'a str, party_index: u16) -> SealContext<'a> {
        SealContext {
            key_id,
            party_id,
            party_index,
        }
    }

    #[test]
    fn round_trip_and_binding() {
        let k = SealingKey::generate("kek-1").unwrap();
        let c = ctx("acct-1", "server_party_1", 1);
        let sealed = seal(&k, &c, b"secret").unwrap();
        assert_eq!(open(&k, &c, &sealed).unwrap().as_slice(), b"secret");
        assert_eq!(sealed_key_id(&sealed).unwrap(), "kek-1");
        for other in [
            ctx("acct-2", "server_party_1", 1),
            ctx("acct-1", "server_party_2", 1),
            ctx("acct-1", "server_party_1", 2),
        ] {
            assert_eq!(
                open(&k, &other, &sealed).err(),
                Some(SealError::Unauthentic)
            );
        }
    }

    #[test]
    fn wrong_key_is_an_error() {
        let k1 = SealingKey::generate("kek-1").unwrap();
        let same_id = SealingKey::generate("kek-1").unwrap();
        let other_id = SealingKey::generate("kek-2").unwrap();
        let c = ctx("a", "p", 0);
        let sealed = seal(&k1, &c, b"x").unwrap();
        assert_eq!(
            open(&same_id, &c, &sealed).err(),
            Some(SealError::Unauthentic)
        );
        assert!(matches!(
            open(&other_id, &c, &sealed),
            Err(SealError::WrongKey { .. })
        ));
    }

    #[test]
    fn tampering_and_garbage() {
        let k = SealingKey::generate("kek").unwrap();
        let c = ctx("a", "p", 0);
        let sealed = seal(&k, &c, b"payload").unwrap();
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(open(&k, &c, &t).is_err(), "flip at byte {i} went unnoticed");
        }
        assert!(matches!(
            open(&k, &c, b"nonsense"),
            Err(SealError::Malformed(_))
        ));
        assert!(matches!(
            open(&k, &c, &sealed[..sealed.len() - 20]),
            Err(SealError::Malformed(_) | SealError::Unauthentic)
        ));
    }

    #[test]
    fn key_validation_and_redaction() {
        assert!(SealingKey::new("", [0; 32]).is_err());
        assert!(SealingKey::new("a b", [0; 32]).is_err());
        assert!(SealingKey::from_slice("k", &[0; 31]).is_err());
        let k = SealingKey::new("k", [0xAB; 32]).unwrap();
        let dbg = format!("{k:?}");
        assert!(dbg.contains("REDACTED") && !dbg.to_lowercase().contains("abab"));
    }
}
