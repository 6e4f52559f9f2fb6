//! The message hash a sign session signs: one parser for every entrance (the Account Service,
//! the Server Party API, the coordinator), so that all of them accept and refuse the same
//! strings with the same words.

use crate::error::{ApiError, ErrorCode};

/// A sign session signs exactly 32 bytes (a prehash such as keccak256 of a transaction).
pub const MESSAGE_HASH_LEN: usize = 32;

/// The order n of secp256k1, big-endian. (The engine keeps its own copy of this guard: it does
/// not depend on the wire crate, and refuses such a hash itself.)
const SECP256K1_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn invalid(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidMessageHash,
        format!("invalid message hash: {detail}"),
    )
}

/// Whether the hash is 0 modulo the curve order: ECDSA on it can be forged for any key
/// without the private key (verification then checks only ((r/s)·Q).x = r), so a signature
/// on it proves nothing. As a 256-bit number it is below 2n: 0 mod n means 0 or n.
pub fn is_degenerate(hash: &[u8; 32]) -> bool {
    *hash == [0u8; 32] || *hash == SECP256K1_ORDER
}

/// 64 hex characters (a `0x`/`0X` prefix is accepted and stripped), not degenerate; the error
/// says what is wrong (400 `invalid_message_hash`).
pub fn parse_message_hash(raw: &str) -> Result<[u8; 32], ApiError> {
    let raw = raw.trim();
    let hex_part = raw
        .strip_prefix("0x")
        .or_else(|| raw.strip_prefix("0X"))
        .unwrap_or(raw);
    if let Some((position, c)) = hex_part
        .char_indices()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(invalid(format!(
            "expected hex digits, found {c:?} at position {position}"
        )));
    }
    if hex_part.len() != 2 * MESSAGE_HASH_LEN {
        return Err(invalid(format!(
            "expected 64 hex characters (32 bytes), got {}",
            hex_part.len()
        )));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out)
        .map_err(|_| invalid("expected 64 hex characters (32 bytes)"))?;
    check_message_hash(&out)
}

/// 32 bytes, not degenerate.
pub fn check_message_hash(bytes: &[u8]) -> Result<[u8; 32], ApiError> {
    let hash: [u8; 32] = bytes.try_into().map_err(|_| {
        invalid(format!(
            "a sign session needs a {MESSAGE_HASH_LEN}-byte hash (64 hex characters), got {} bytes",
            bytes.len()
        ))
    })?;
    if is_degenerate(&hash) {
        return Err(invalid(
            "it is 0 modulo the secp256k1 order, and a signature on it can be forged for any key without the private key",
        ));
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_prefixes_and_refuses_what_is_wrong() {
        let h = "ab".repeat(32);
        assert_eq!(parse_message_hash(&h).ok(), Some([0xab; 32]));
        assert_eq!(parse_message_hash(&format!("0x{h}")).ok(), Some([0xab; 32]));
        assert_eq!(parse_message_hash(&format!("0X{h}")).ok(), Some([0xab; 32]));
        for (bad, says) in [
            ("zz".repeat(32), "found 'z' at position 0"),
            ("ab".repeat(31), "got 62"),
            ("00".repeat(32), "0 modulo"),
            (hex::encode(SECP256K1_ORDER), "0 modulo"),
            (String::new(), "got 0"),
        ] {
            let e = parse_message_hash(&bad).err();
            assert_eq!(
                e.as_ref().map(|e| e.code),
                Some(ErrorCode::InvalidMessageHash)
            );
            assert!(e.is_some_and(|e| e.message.contains(says)), "{bad}: {says}");
        }
        assert!(check_message_hash(&[1; 31]).is_err());
        let mut above = SECP256K1_ORDER;
        above[31] += 1;
        assert!(check_message_hash(&above).is_ok());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = parse_message_hash(&s);
        }

        #[test]
        fn any_nonzero_hash_below_n_round_trips(bytes in any::<[u8; 32]>()) {
            prop_assume!(!is_degenerate(&bytes));
            prop_assert_eq!(parse_message_hash(&hex::encode(bytes)).ok(), Some(bytes));
        }
    }
}
