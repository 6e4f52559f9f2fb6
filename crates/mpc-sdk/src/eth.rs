//! Ethereum addresses of group keys: Keccak-256 of the uncompressed key's 64 coordinate bytes,
//! last 20 bytes, EIP-55 checksummed.

use sha3::{Digest, Keccak256};

/// The EIP-55 address of an uncompressed SEC1 public key (`04…`, 65 bytes, hex); `None` when it
/// is not one.
pub fn address_of(public_key_hex: &str) -> Option<String> {
    let key = hex::decode(public_key_hex.trim_start_matches("0x")).ok()?;
    if key.len() != 65 || key[0] != 4 {
        return None;
    }
    let hash = Keccak256::digest(&key[1..]);
    let lower = hex::encode(&hash[12..]);
    let check = Keccak256::digest(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (check[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_of_private_key_one() {
        // secp256k1's generator G is the public key of private key 1; its address is well known.
        let g = "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
                 483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
        assert_eq!(
            address_of(g).as_deref(),
            Some("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf")
        );
        assert_eq!(address_of("02ab"), None);
    }
}
