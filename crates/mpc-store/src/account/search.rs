//! What the operator console asks of the account store: accounts found by id, name, email or
//! address, sessions under filters, and session counts for the overview.

use chrono::{DateTime, Utc};
use mpc_proto::{AccountId, SessionType};
use sha3::{Digest, Keccak256};

use super::{AccountSessionStatus, AccountStatus};

/// Which accounts [`super::AccountStore::search_accounts`] returns; every field narrows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountSearch {
    /// Free text: an account id, part of a username or email (case-insensitive), or an Ethereum
    /// address (with or without `0x`, any case). Blank matches every account.
    pub text: Option<String>,
    pub status: Option<AccountStatus>,
    pub limit: u32,
    pub offset: u64,
}

/// Which sessions [`super::AccountStore::list_sessions`] returns; every field narrows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub session_type: Option<SessionType>,
    pub status: Option<AccountSessionStatus>,
    pub account_id: Option<AccountId>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created at or before.
    pub until: Option<DateTime<Utc>>,
    pub limit: u32,
    pub offset: u64,
}

/// Sessions of one type in one status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionCount {
    pub session_type: SessionType,
    pub status: AccountSessionStatus,
    pub count: u64,
}

/// The Ethereum address of a 65-byte uncompressed SEC1 key (`04 ‖ x ‖ y`), lower-case with
/// `0x`: the last 20 bytes of Keccak-256 over `x ‖ y`. `None` for anything else.
pub fn ethereum_address(public_key: &[u8]) -> Option<String> {
    match public_key {
        [4, xy @ ..] if xy.len() == 64 => {
            let digest = Keccak256::digest(xy);
            Some(format!("0x{}", hex_lower(&digest[12..])))
        }
        _ => None,
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How free text is matched, worked out once for both backends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TextMatch {
    pub(crate) any: bool,
    pub(crate) id: Option<uuid::Uuid>,
    /// A `LIKE … ESCAPE '\'` pattern, lower case: the text anywhere.
    pub(crate) pattern: Option<String>,
    pub(crate) address: Option<String>,
}

impl TextMatch {
    pub(crate) fn new(text: Option<&str>) -> Self {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Self::default();
        };
        let lower = text.to_lowercase();
        let hex = lower.strip_prefix("0x").unwrap_or(&lower);
        let address = (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| format!("0x{hex}"));
        let mut pattern = String::with_capacity(lower.len() + 2);
        pattern.push('%');
        for c in lower.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        Self {
            any: true,
            id: uuid::Uuid::parse_str(text).ok(),
            pattern: Some(pattern),
            address,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_of_the_generator_point() {
        // The public key of private key 1 (the generator G); its address is well known.
        let g = "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
                 483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
        let key: Vec<u8> = (0..g.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&g[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(
            ethereum_address(&key).as_deref(),
            Some("0x7e5f4552091a69125d5dfcb7b8c2659029395bdf")
        );
        assert_eq!(ethereum_address(&key[..64]), None);
        assert_eq!(ethereum_address(&[2; 65]), None);
    }

    #[test]
    fn free_text_is_escaped_and_recognised() {
        assert_eq!(TextMatch::new(Some("   ")), TextMatch::default());
        let m = TextMatch::new(Some("Ali_ce%"));
        assert!(m.any && m.id.is_none() && m.address.is_none());
        assert_eq!(m.pattern.as_deref(), Some("%ali\\_ce\\%%"));
        let m = TextMatch::new(Some("0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"));
        assert_eq!(
            m.address.as_deref(),
            Some("0x7e5f4552091a69125d5dfcb7b8c2659029395bdf")
        );
        let m = TextMatch::new(Some("7e5f4552091a69125d5dfcb7b8c2659029395bdf"));
        assert!(m.address.is_some());
        let id = uuid::Uuid::new_v4();
        assert_eq!(TextMatch::new(Some(&id.to_string())).id, Some(id));
    }
}
