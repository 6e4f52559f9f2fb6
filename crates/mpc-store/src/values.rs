//! Conversions between column values and domain values that every store shares. A value that
//! does not convert is [`StoreError::Corrupt`]: the row holds something this version cannot read.

use std::str::FromStr;

use mpc_proto::{PartyId, Threshold};

use crate::error::StoreError;

pub(crate) fn party_from_db(value: &str) -> Result<PartyId, StoreError> {
    PartyId::parse(value).map_err(|_| StoreError::Corrupt(format!("invalid party id {value:?}")))
}

pub(crate) fn opt_party_from_db(value: Option<String>) -> Result<Option<PartyId>, StoreError> {
    value.as_deref().map(party_from_db).transpose()
}

/// A text column holding one of a type's names (`session_type`, `status`, …).
pub(crate) fn parse_db<T: FromStr>(value: &str, what: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} {value:?}")))
}

pub(crate) fn u16_from_db(value: i32, what: &str) -> Result<u16, StoreError> {
    u16::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(crate) fn threshold_from_db(t: i32, n: i32) -> Result<Threshold, StoreError> {
    Threshold::new(
        u16_from_db(t, "threshold_t")?,
        u16_from_db(n, "threshold_n")?,
    )
    .map_err(|_| StoreError::Corrupt(format!("invalid threshold {t}-of-{n}")))
}

/// A `COUNT(*)`: never negative.
pub(crate) fn count_from_db(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_corrupt_not_panics() {
        assert!(matches!(party_from_db(""), Err(StoreError::Corrupt(_))));
        assert!(matches!(u16_from_db(-1, "x"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            u16_from_db(65_536, "x"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            threshold_from_db(3, 2),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            parse_db::<mpc_proto::SessionType>("nope", "session type"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(threshold_from_db(2, 3).ok(), Some(Threshold { t: 2, n: 3 }));
        assert_eq!(count_from_db(-1), 0);
    }
}
