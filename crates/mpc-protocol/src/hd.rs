//! BIP32 non-hardened derivation (one keygen, many addresses).
//!
//! The chain code is generated jointly at keygen by the library (each party commits to a random
//! contribution, the chain code is their XOR), so no single party chooses it. Children are
//! derived with the library's own code: publicly here (child key, xpub), and by every signer for
//! its own share in [`crate::sign`] (each shifts its share by the same public tweak; nothing is
//! reconstructed). Hardened derivation would need the whole private key, so it does not exist.

use dkls23::protocols::derivation::DerivData;
use sha2::{Digest, Sha256};

use crate::ecdsa::PublicKey;
use crate::share::KeyShare;

/// A BIP32 chain code (32 bytes, public).
pub type ChainCode = [u8; 32];

/// The deepest path accepted (a wallet needs a handful of levels, e.g. `m/0/7`).
pub const MAX_DERIVATION_DEPTH: usize = 8;

/// BIP32 version bytes of a mainnet extended public key (`xpub…`).
const XPUB_VERSION: [u8; 4] = [0x04, 0x88, 0xb2, 0x1e];

/// A validated non-hardened path such as `m/0/7`; `m` alone is the master key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DerivationPath {
    indices: Vec<u32>,
}

impl DerivationPath {
    /// Parses `m/i/j/…` with every index in `0..2^31` and at most [`MAX_DERIVATION_DEPTH`]
    /// levels. The error says why a path is refused (hardened, malformed, too deep).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = raw.trim().split('/');
        if parts.next() != Some("m") {
            return Err(format!("{raw:?} must start with \"m\" (e.g. m/0/7)"));
        }
        let mut indices = Vec::new();
        for (level, part) in parts.enumerate() {
            let level = level + 1;
            if part.ends_with('\'') || part.ends_with('h') || part.ends_with('H') {
                return Err(format!(
                    "level {level} ({part:?}) is hardened; only non-hardened derivation is possible without the whole private key"
                ));
            }
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("level {level} ({part:?}) is not a decimal index"));
            }
            let index: u32 = part
                .parse()
                .ok()
                .filter(|i| *i < 0x8000_0000)
                .ok_or_else(|| {
                    format!("level {level} ({part}) is out of range: non-hardened indices are 0 to 2147483647")
                })?;
            indices.push(index);
            if indices.len() > MAX_DERIVATION_DEPTH {
                return Err(format!(
                    "the path is deeper than {MAX_DERIVATION_DEPTH} levels"
                ));
            }
        }
        Ok(Self { indices })
    }

    /// The child numbers, from the master down.
    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// `m` (no derivation).
    pub fn is_master(&self) -> bool {
        self.indices.is_empty()
    }
}

impl std::fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("m")?;
        for i in &self.indices {
            write!(f, "/{i}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for DerivationPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// The public master node: no secret in it (the library's derivation data with a zero share).
fn public_node(public_key: &PublicKey, chain_code: &ChainCode) -> DerivData<k256::Secp256k1> {
    DerivData {
        depth: 0,
        child_number: 0,
        parent_fingerprint: [0; 4],
        poly_point: k256::Scalar::ZERO,
        pk: *public_key.as_affine(),
        chain_code: *chain_code,
    }
}

/// The child public key at `path` (the library's public derivation). Fails only for the
/// astronomically unlikely invalid child of BIP32.
pub fn derive_public_key(
    public_key: &PublicKey,
    chain_code: &ChainCode,
    path: &DerivationPath,
) -> Result<PublicKey, String> {
    let mut node = public_node(public_key, chain_code);
    for i in path.indices() {
        node = node.derive_child(*i).map_err(|e| e.description.clone())?;
    }
    Ok(PublicKey::from_affine(node.pk))
}

/// The standard BIP32 serialisation of the master public node: mainnet `xpub` version, depth
/// 0, no parent, child number 0, base58check.
pub fn xpub(public_key: &PublicKey, chain_code: &ChainCode) -> String {
    let mut data = Vec::with_capacity(82);
    data.extend_from_slice(&XPUB_VERSION);
    data.push(0); // depth
    data.extend_from_slice(&[0; 4]); // parent fingerprint
    data.extend_from_slice(&[0; 4]); // child number
    data.extend_from_slice(chain_code);
    data.extend_from_slice(&public_key.to_compressed());
    let check = Sha256::digest(Sha256::digest(&data));
    data.extend_from_slice(&check[..4]);
    bs58::encode(data).into_string()
}

impl KeyShare {
    /// The key's chain code (the same in every party's share; public).
    pub fn chain_code(&self) -> ChainCode {
        *self.party().chain_code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_or_say_why() {
        assert_eq!(DerivationPath::parse("m/0/7").unwrap().indices(), &[0, 7]);
        assert!(DerivationPath::parse("m").unwrap().is_master());
        assert_eq!(
            DerivationPath::parse("m/2147483647").unwrap().to_string(),
            "m/2147483647"
        );
        for (bad, why) in [
            ("m/0'/1", "hardened"),
            ("m/0h", "hardened"),
            ("0/7", "must start"),
            ("m/", "not a decimal"),
            ("m/x", "not a decimal"),
            ("m/-1", "not a decimal"),
            ("m/2147483648", "out of range"),
            ("m/1/2/3/4/5/6/7/8/9", "deeper than 8"),
        ] {
            let e = DerivationPath::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(DerivationPath::parse("m/1/2/3/4/5/6/7/8").is_ok());
    }

    /// BIP32 test vector 1 (public derivation from the master's public key): m/0H is hardened,
    /// so check the master serialisation and vector 2's non-hardened first child.
    #[test]
    fn bip32_test_vector_2() {
        // Vector 2 master: xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB
        let chain_code: ChainCode =
            hex_arr("60499f801b896d83179a4374aeb7822aaeaceaa0db1f85ee3e904c4defbd9689");
        let master = PublicKey::from_sec1(&hex_vec(
            "03cbcaa9c98c877a26977d00825c956a238e8dddfbd322cce4f74b0b5bd6ace4a7",
        ))
        .unwrap();
        assert_eq!(
            xpub(&master, &chain_code),
            "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB"
        );
        // m/0: xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH
        let child = derive_public_key(&master, &chain_code, &DerivationPath::parse("m/0").unwrap())
            .unwrap();
        assert_eq!(
            hex::encode(child.to_compressed()),
            "02fc9e5af0ac8d9b3cecfe2a888e2117ba3d089d8585886c9c826b6b22a98d12ea"
        );
    }

    fn hex_vec(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn hex_arr(s: &str) -> [u8; 32] {
        hex_vec(s).try_into().unwrap()
    }
}
