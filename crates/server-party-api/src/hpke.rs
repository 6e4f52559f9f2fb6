//! HPKE (RFC 9180), base mode, single shot, for user shares sealed to a device's P-256 key:
//! DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM (KEM 0x0010, KDF 0x0001, AEAD 0x0002).
//! Phone secure hardware (Secure Enclave, StrongBox) holds P-256 keys, so the device can open
//! what only it can open, and the back end that relays the response cannot read the share.
//!
//! A sealed blob is `b"MPCHPKE"`, version `0x01`, `enc` (the 65-byte uncompressed ephemeral
//! public key), then the AEAD ciphertext and tag. The associated data is empty; the caller binds
//! the blob to its owner through `info` ([`crate::share::hpke_info`]).
//!
//! The `hpke` crate does the work. Its only randomness is the ephemeral key's input keying
//! material (`ikmE`, 32 bytes), which we draw from the OS and hand it through [`IkmRng`]: the same
//! path the RFC's test vectors take, so the vectors check exactly the code that runs.

use std::convert::Infallible;
use std::fmt;

use hpke::aead::{Aead, AesGcm256};
use hpke::kdf::HkdfSha256;
use hpke::kem::DhP256HkdfSha256;
use hpke::rand_core::{TryCryptoRng, TryRng};
use hpke::{Deserializable, Kem as KemTrait, OpModeR, OpModeS, Serializable};
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type Kem = DhP256HkdfSha256;

/// The first bytes of every sealed blob.
pub const MAGIC: &[u8; 7] = b"MPCHPKE";
pub const VERSION: u8 = 1;
/// `enc`: an uncompressed P-256 point.
pub const ENC_LEN: usize = 65;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + 1;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HpkeError {
    #[error("not a valid P-256 public key (SEC1, 33 or 65 bytes)")]
    InvalidPublicKey,
    #[error("not a valid P-256 private key (32 bytes)")]
    InvalidPrivateKey,
    #[error("not an HPKE-sealed share: {0}")]
    Malformed(&'static str),
    /// Wrong private key, another key id or party (`info`), or altered data.
    #[error("the sealed share does not open with this key for this key id and party")]
    Unauthentic,
    #[error("HPKE sealing failed: {0}")]
    Internal(String),
}

/// A device's P-256 public key: the recipient of a sealed share.
#[derive(Clone, PartialEq, Eq)]
pub struct DevicePublicKey([u8; ENC_LEN]);

impl fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublicKey({})", hex::encode(self.0))
    }
}

impl DevicePublicKey {
    /// From SEC1: 65 bytes uncompressed (`04…`) or 33 bytes compressed (`02…`/`03…`). The point
    /// must be on the curve and not the identity.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, HpkeError> {
        // Only the standard encodings (the curve crate also takes "compact" 0x05 points).
        match (bytes.len(), bytes.first()) {
            (33, Some(0x02 | 0x03)) | (ENC_LEN, Some(0x04)) => {}
            _ => return Err(HpkeError::InvalidPublicKey),
        }
        let key =
            p256::PublicKey::from_sec1_bytes(bytes).map_err(|_| HpkeError::InvalidPublicKey)?;
        let point = key.to_sec1_point(false);
        let uncompressed: [u8; ENC_LEN] = point
            .as_bytes()
            .try_into()
            .map_err(|_| HpkeError::InvalidPublicKey)?;
        Ok(Self(uncompressed))
    }

    /// From hex of SEC1 (a `0x` prefix is accepted).
    pub fn from_hex(s: &str) -> Result<Self, HpkeError> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(s).map_err(|_| HpkeError::InvalidPublicKey)?;
        Self::from_sec1(&bytes)
    }

    /// 65 bytes, uncompressed.
    pub fn to_uncompressed(&self) -> [u8; ENC_LEN] {
        self.0
    }
}

/// Whether `blob` has the framing of a sealed share (it may still not open).
pub fn is_sealed(blob: &[u8]) -> bool {
    blob.starts_with(MAGIC)
}

/// Seals `plaintext` to `recipient` with `info`.
pub fn seal(
    recipient: &DevicePublicKey,
    info: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, HpkeError> {
    let mut ikm = Zeroizing::new([0u8; 32]);
    getrandom::fill(ikm.as_mut_slice()).map_err(|e| HpkeError::Internal(e.to_string()))?;
    seal_with_ikm::<AesGcm256>(recipient, info, plaintext, &ikm)
}

/// Opens a blob made by [`seal`] with the device's private key (the 32-byte P-256 scalar):
/// what a device does with the API's response.
pub fn open(
    secret_key: &[u8],
    info: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    open_with::<AesGcm256>(secret_key, info, sealed)
}

/// [`seal`] with a given `ikmE` and AEAD (the RFC's vectors use AES-128-GCM for this KEM).
fn seal_with_ikm<A: Aead>(
    recipient: &DevicePublicKey,
    info: &[u8],
    plaintext: &[u8],
    ikm: &[u8; 32],
) -> Result<Vec<u8>, HpkeError> {
    let pk = <Kem as KemTrait>::PublicKey::from_bytes(&recipient.0)
        .map_err(|_| HpkeError::InvalidPublicKey)?;
    let mut rng = IkmRng::new(ikm);
    let (enc, ciphertext) = hpke::single_shot_seal_with_rng::<A, HkdfSha256, Kem>(
        &OpModeS::Base,
        &pk,
        info,
        plaintext,
        &[],
        &mut rng,
    )
    .map_err(|e| HpkeError::Internal(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + ENC_LEN + ciphertext.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

fn open_with<A: Aead>(
    secret_key: &[u8],
    info: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    if !is_sealed(sealed) {
        return Err(HpkeError::Malformed("missing MPCHPKE header"));
    }
    if sealed.get(MAGIC.len()) != Some(&VERSION) {
        return Err(HpkeError::Malformed("unsupported version"));
    }
    if sealed.len() < HEADER_LEN + ENC_LEN + TAG_LEN {
        return Err(HpkeError::Malformed("truncated"));
    }
    let sk = <Kem as KemTrait>::PrivateKey::from_bytes(secret_key)
        .map_err(|_| HpkeError::InvalidPrivateKey)?;
    let enc = <Kem as KemTrait>::EncappedKey::from_bytes(&sealed[HEADER_LEN..HEADER_LEN + ENC_LEN])
        .map_err(|_| HpkeError::Malformed("invalid ephemeral key"))?;
    hpke::single_shot_open::<A, HkdfSha256, Kem>(
        &OpModeR::Base,
        &sk,
        &enc,
        info,
        &sealed[HEADER_LEN + ENC_LEN..],
        &[],
    )
    .map(Zeroizing::new)
    .map_err(|_| HpkeError::Unauthentic)
}

/// The randomness handed to the `hpke` crate: first exactly the `ikmE` we drew; should it ask for
/// more (for P-256 it does not), SHA-256 blocks of the `ikmE` and a counter, so nothing repeats.
struct IkmRng {
    bytes: Zeroizing<Vec<u8>>,
    pos: usize,
    counter: u64,
}

impl IkmRng {
    fn new(ikm: &[u8; 32]) -> Self {
        Self {
            bytes: Zeroizing::new(ikm.to_vec()),
            pos: 0,
            counter: 0,
        }
    }

    fn fill(&mut self, dst: &mut [u8]) {
        for byte in dst {
            if self.pos == self.bytes.len() {
                let mut block = Sha256::new();
                block.update(b"mpc-system/hpke-ikm-extension");
                block.update(&self.bytes[..32]);
                block.update(self.counter.to_be_bytes());
                self.counter += 1;
                self.bytes.extend_from_slice(&block.finalize());
            }
            *byte = self.bytes[self.pos];
            self.pos += 1;
        }
    }
}

impl TryRng for IkmRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

impl TryCryptoRng for IkmRng {}

#[cfg(test)]
mod tests {
    use hpke::aead::AesGcm128;

    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// RFC 9180, Appendix A.3.1: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base mode,
    /// sequence number 0. The KEM and KDF are ours; only the AEAD's key length differs.
    mod a3 {
        pub const INFO: &str = "4f6465206f6e2061204772656369616e2055726e";
        pub const IKM_E: &str = "4270e54ffd08d79d5928020af4686d8f6b7d35dbe470265f1f5aa22816ce860e";
        pub const PK_RM: &str = "04fe8c19ce0905191ebc298a9245792531f26f0cece2460639e8bc39cb7f706a826a779b4cf969b8a0e539c7f62fb3d30ad6aa8f80e30f1d128aafd68a2ce72ea0";
        pub const SK_RM: &str = "f3ce7fdae57e1a310d87f1ebbde6f328be0a99cdbcadf4d6589cf29de4b8ffd2";
        pub const ENC: &str = "04a92719c6195d5085104f469a8b9814d5838ff72b60501e2c4466e5e67b325ac98536d7b61a1af4b78e5b7f951c0900be863c403ce65c9bfcb9382657222d18c4";
        pub const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
        pub const AAD0: &str = "436f756e742d30";
        pub const CT0: &str = "5ad590bb8baa577f8619db35a36311226a896e7342a6d836d8b7bcd2f20b6c7f9076ac232e3ab2523f39513434";
    }

    #[test]
    fn rfc9180_a3_vector_encapsulates_and_encrypts_like_the_rfc() {
        let pk = DevicePublicKey::from_hex(a3::PK_RM).unwrap_or_else(|e| panic!("{e}"));
        let ikm: [u8; 32] = unhex(a3::IKM_E)
            .try_into()
            .unwrap_or_else(|_| panic!("ikm"));
        // The vector's first encryption has aad "Count-0"; ours always uses empty aad, so this
        // goes through the hpke crate's single-shot call directly with the vector's aad.
        let recipient =
            <Kem as KemTrait>::PublicKey::from_bytes(&pk.0).unwrap_or_else(|e| panic!("{e}"));
        let (enc, ct) = hpke::single_shot_seal_with_rng::<AesGcm128, HkdfSha256, Kem>(
            &OpModeS::Base,
            &recipient,
            &unhex(a3::INFO),
            &unhex(a3::PT),
            &unhex(a3::AAD0),
            &mut IkmRng::new(&ikm),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hex::encode(enc.to_bytes()), a3::ENC);
        assert_eq!(hex::encode(ct), a3::CT0);

        // Our framing around the same computation: enc is the vector's, and it opens with skR.
        let sealed = seal_with_ikm::<AesGcm128>(&pk, &unhex(a3::INFO), &unhex(a3::PT), &ikm)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&sealed[..HEADER_LEN], b"MPCHPKE\x01");
        assert_eq!(
            hex::encode(&sealed[HEADER_LEN..HEADER_LEN + ENC_LEN]),
            a3::ENC
        );
        let opened = open_with::<AesGcm128>(&unhex(a3::SK_RM), &unhex(a3::INFO), &sealed)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened.as_slice(), unhex(a3::PT).as_slice());
    }

    fn device_key(seed: u8) -> (Vec<u8>, DevicePublicKey) {
        let sk = p256::SecretKey::from_bytes(&[seed; 32].into()).unwrap_or_else(|e| panic!("{e}"));
        let pk = sk.public_key().to_sec1_point(false);
        let device = DevicePublicKey::from_sec1(pk.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        (sk.to_bytes().to_vec(), device)
    }

    #[test]
    fn round_trip_binding_and_tampering() {
        let (sk, pk) = device_key(7);
        let (other_sk, _) = device_key(8);
        let sealed = seal(&pk, b"info", b"the wrapped share").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            open(&sk, b"info", &sealed)
                .unwrap_or_else(|e| panic!("{e}"))
                .as_slice(),
            b"the wrapped share"
        );
        assert_eq!(
            open(&sk, b"other info", &sealed),
            Err(HpkeError::Unauthentic)
        );
        assert_eq!(
            open(&other_sk, b"info", &sealed),
            Err(HpkeError::Unauthentic)
        );
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(
                open(&sk, b"info", &t).is_err(),
                "flip at {i} went unnoticed"
            );
        }
        assert!(matches!(
            open(&sk, b"info", &sealed[..40]),
            Err(HpkeError::Malformed(_))
        ));
        // Two seals of the same plaintext differ (fresh ephemeral key).
        let again = seal(&pk, b"info", b"the wrapped share").unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(sealed, again);
    }

    #[test]
    fn public_keys_compressed_or_not_and_invalid_ones() {
        let (_, pk) = device_key(3);
        let sk = p256::SecretKey::from_bytes(&[3u8; 32].into()).unwrap_or_else(|e| panic!("{e}"));
        let compressed = sk.public_key().to_sec1_point(true);
        assert_eq!(
            DevicePublicKey::from_sec1(compressed.as_bytes()).ok(),
            Some(pk.clone())
        );
        assert_eq!(
            DevicePublicKey::from_hex(&format!("0x{}", hex::encode(pk.to_uncompressed()))).ok(),
            Some(pk)
        );
        for bad in [
            vec![],
            vec![4u8; 65],
            vec![5u8; 33],
            vec![0u8; 1],
            vec![4u8; 64],
        ] {
            assert_eq!(
                DevicePublicKey::from_sec1(&bad),
                Err(HpkeError::InvalidPublicKey)
            );
        }
        assert_eq!(
            DevicePublicKey::from_hex("zz"),
            Err(HpkeError::InvalidPublicKey)
        );
    }

    proptest::proptest! {
        /// Random plaintexts and `info` strings round-trip; no other `info` opens them.
        #[test]
        fn seal_open_round_trip(
            pt in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            info in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let (sk, pk) = device_key(11);
            let sealed = seal(&pk, &info, &pt).unwrap_or_else(|e| panic!("{e}"));
            proptest::prop_assert_eq!(open(&sk, &info, &sealed).ok().map(|p| p.to_vec()), Some(pt));
            let mut other = info.clone();
            other.push(0);
            proptest::prop_assert_eq!(open(&sk, &other, &sealed), Err(HpkeError::Unauthentic));
        }

        /// Random bytes behind a valid header never open (and never panic).
        #[test]
        fn random_blobs_do_not_open(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let (sk, _) = device_key(12);
            let mut blob = b"MPCHPKE\x01".to_vec();
            blob.extend_from_slice(&body);
            proptest::prop_assert!(open(&sk, b"info", &blob).is_err());
            proptest::prop_assert!(open(&sk, b"info", &body).is_err());
        }

        /// Whatever the parser accepts is a standard SEC1 encoding of a point on the curve,
        /// and parses back to itself.
        #[test]
        fn public_key_parser(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70)) {
            if let Ok(pk) = DevicePublicKey::from_sec1(&bytes) {
                proptest::prop_assert!(matches!(
                    (bytes.len(), bytes[0]),
                    (33, 0x02 | 0x03) | (ENC_LEN, 0x04)
                ));
                let again = DevicePublicKey::from_sec1(&pk.to_uncompressed());
                proptest::prop_assert_eq!(again.ok(), Some(pk));
            }
        }
    }

    #[test]
    fn the_rng_hands_out_the_ikm_then_never_repeats() {
        let ikm = [9u8; 32];
        let mut rng = IkmRng::new(&ikm);
        let mut first = [0u8; 32];
        rng.fill(&mut first);
        assert_eq!(first, ikm);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        rng.fill(&mut a);
        rng.fill(&mut b);
        assert_ne!(a, ikm);
        assert_ne!(a, b);
    }
}
