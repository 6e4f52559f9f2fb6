//! Identifier newtypes. Each has a `parse` constructor so that unchecked input never reaches the
//! core as a bare string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

/// Upper bound on the number of parties in one key (DESIGN.md §2: 2 ≤ n ≤ 16).
pub const MAX_PARTIES: u16 = 16;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// Parses the canonical hyphenated form (any case).
            pub fn parse(s: &str) -> Result<Self, ApiError> {
                Uuid::parse_str(s).map(Self).map_err(|_| {
                    ApiError::new(
                        ErrorCode::InvalidArgument,
                        format!(concat!("invalid ", $what, " id: expected a UUID, got {:?}"), truncate(s)),
                    )
                })
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ApiError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

uuid_id!(
    /// A session of the coordinator (keygen, sign, refresh or recovery).
    SessionId,
    "session"
);
uuid_id!(
    /// An account of the Account Service: one group key and its share metadata.
    AccountId,
    "account"
);
uuid_id!(
    /// A message envelope id; the router de-duplicates on it.
    MessageId,
    "message"
);

/// A party's stable name, such as `server_party_1` or `user_device_12345`.
///
/// 1 to 128 characters from `[A-Za-z0-9_.:-]`: safe in URLs, logs, queue names and file names.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartyId(String);

impl PartyId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.chars().all(ok_char) {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "invalid party_id {:?}: use 1 to {} characters from A-Z a-z 0-9 _ - . :",
                    truncate(s),
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartyId({})", self.0)
    }
}

impl FromStr for PartyId {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for PartyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PartyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PartyId::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// The `device_type` of a server party. Any other value (`android`, `ios`, `recovery`, …, or
/// none) is a device participant.
pub const SERVER_DEVICE_TYPE: &str = "server";

/// Whether a participant's `device_type` declares a server party (in any letter case, as the
/// Account Service lowercases it and other callers may not).
pub fn is_server_device_type(device_type: &str) -> bool {
    device_type.trim().eq_ignore_ascii_case(SERVER_DEVICE_TYPE)
}

/// Threshold parameters of a key: `t` of `n` parties sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub t: u16,
    pub n: u16,
}

impl Threshold {
    /// Checks 2 ≤ n ≤ 16 and 2 ≤ t ≤ n, with the guide's wording in the error.
    pub fn new(t: u16, n: u16) -> Result<Self, ApiError> {
        Self::checked(u64::from(t), u64::from(n))
    }

    /// [`Threshold::new`] for values as a request sent them, before any narrowing: the error
    /// quotes the value sent (`threshold_n: 2147483648` must not be reported as 65535).
    pub fn checked(t: u64, n: u64) -> Result<Self, ApiError> {
        if !(2..=u64::from(MAX_PARTIES)).contains(&n) {
            return Err(ApiError::new(
                ErrorCode::InvalidThreshold,
                format!(
                    "invalid threshold: threshold_n must be between 2 and {MAX_PARTIES}, got {n}"
                ),
            ));
        }
        if t < 2 || t > n {
            return Err(ApiError::new(
                ErrorCode::InvalidThreshold,
                format!(
                    "invalid threshold: threshold_t must be between 2 and threshold_n ({n}), got {t}"
                ),
            ));
        }
        // Both are at most MAX_PARTIES here.
        let narrow = |v: u64| u16::try_from(v).unwrap_or(MAX_PARTIES);
        Ok(Self {
            t: narrow(t),
            n: narrow(n),
        })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn party_id_accepts_guide_names() {
        for ok in ["server_party_1", "user_device_12345", "a", "dev-1.ios:x"] {
            assert_eq!(
                PartyId::parse(ok).map(|p| p.to_string()).ok().as_deref(),
                Some(ok)
            );
        }
    }

    #[test]
    fn party_id_rejects_bad_names() {
        for bad in ["", " ", "a b", "ü", "x/y", &"a".repeat(129)] {
            let err = PartyId::parse(bad).err();
            assert_eq!(
                err.map(|e| e.code),
                Some(ErrorCode::InvalidArgument),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn threshold_bounds() {
        assert!(Threshold::new(2, 3).is_ok());
        assert!(Threshold::new(2, 2).is_ok());
        assert!(Threshold::new(16, 16).is_ok());
        for (t, n) in [(1, 3), (4, 3), (2, 1), (2, 17), (0, 0)] {
            assert_eq!(
                Threshold::new(t, n).err().map(|e| e.code),
                Some(ErrorCode::InvalidThreshold)
            );
        }
    }

    #[test]
    fn threshold_errors_quote_the_value_sent() {
        let n = Threshold::checked(2, 2_147_483_648)
            .err()
            .map(|e| e.message);
        assert!(n.is_some_and(|m| m.contains("got 2147483648")));
        let t = Threshold::checked(u64::MAX, 3).err().map(|e| e.message);
        assert!(t.is_some_and(|m| m.contains(&format!("got {}", u64::MAX))));
        assert_eq!(Threshold::checked(2, 3).ok(), Threshold::new(2, 3).ok());
    }

    proptest! {
        #[test]
        fn threshold_checked_agrees_with_the_rule(t in any::<u64>(), n in any::<u64>()) {
            let ok = (2..=u64::from(MAX_PARTIES)).contains(&n) && (2..=n).contains(&t);
            prop_assert_eq!(Threshold::checked(t, n).is_ok(), ok);
        }

        #[test]
        fn party_id_parse_never_panics_and_roundtrips(s in "\\PC{0,140}") {
            if let Ok(p) = PartyId::parse(&s) {
                prop_assert_eq!(p.as_str(), s.as_str());
                let json = serde_json::to_string(&p).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let back: PartyId = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(back, p);
            }
        }

        #[test]
        fn session_id_parse_never_panics(s in "\\PC{0,60}") {
            let _ = SessionId::parse(&s);
        }
    }
}
