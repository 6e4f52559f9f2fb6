//! Checks on request fields, each with an error that says what is wrong. Nothing unchecked
//! reaches the coordinator or the store.

use std::collections::HashSet;

use mpc_proto::{ApiError, ErrorCode, PartyId};
use mpc_store::account::ShareType;

const MAX_DEVICE_TYPE_LEN: usize = 50;
const MAX_NAME_LEN: usize = 255;

/// `server`, `android`, `ios`, `recovery`, …: at most 50 characters from `A-Za-z0-9_-.`.
pub fn device_type(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(d)
            if d.len() <= MAX_DEVICE_TYPE_LEN
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
        {
            Ok(Some(d.to_ascii_lowercase()))
        }
        Some(_) => Err(ApiError::invalid_argument(format!(
            "invalid device_type: at most {MAX_DEVICE_TYPE_LEN} characters from A-Z a-z 0-9 _ - ."
        ))),
    }
}

/// Party ids, parsed, with duplicates refused (400 `duplicate_party_id`).
pub fn party_ids<'a>(raw: impl IntoIterator<Item = &'a str>) -> Result<Vec<PartyId>, ApiError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in raw {
        let party = PartyId::parse(r)?;
        if !seen.insert(party.clone()) {
            return Err(ApiError::new(
                ErrorCode::DuplicatePartyId,
                format!("duplicate party id {party}"),
            ));
        }
        out.push(party);
    }
    Ok(out)
}

pub fn username(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some(u) if !u.is_empty() && u.len() <= MAX_NAME_LEN && !u.chars().any(char::is_control) => {
            Ok(Some(u.to_owned()))
        }
        Some(_) => Err(ApiError::invalid_argument(format!(
            "invalid username: 1 to {MAX_NAME_LEN} characters, no control characters"
        ))),
    }
}

pub fn email(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some(e)
            if e.len() <= MAX_NAME_LEN
                && e.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                })
                && !e.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(Some(e.to_ascii_lowercase()))
        }
        Some(_) => Err(ApiError::invalid_argument(
            "invalid email: expected name@domain, at most 255 characters",
        )),
    }
}

/// Guide §2.1: `server` for a server party, `recovery` for a recovery share, a user device
/// otherwise.
pub fn share_type(device_type: Option<&str>) -> ShareType {
    match device_type {
        Some("server") => ShareType::Server,
        Some("recovery") => ShareType::Recovery,
        _ => ShareType::UserDevice,
    }
}

/// Where the share of `party` is kept, for people reading the account.
pub fn storage_location(
    party: &PartyId,
    share_type: ShareType,
    device_type: Option<&str>,
) -> String {
    match share_type {
        ShareType::Server => format!("{party} (encrypted, party database)"),
        ShareType::Recovery => "recovery holder (offline)".to_owned(),
        ShareType::UserDevice => format!("user device ({})", device_type.unwrap_or("unknown")),
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn share_types_and_locations() {
        let p = PartyId::parse("server_party_1").unwrap();
        assert_eq!(share_type(Some("server")), ShareType::Server);
        assert_eq!(share_type(Some("recovery")), ShareType::Recovery);
        assert_eq!(share_type(Some("android")), ShareType::UserDevice);
        assert_eq!(share_type(None), ShareType::UserDevice);
        assert_eq!(
            storage_location(&p, ShareType::Server, Some("server")),
            "server_party_1 (encrypted, party database)"
        );
        assert_eq!(
            storage_location(&p, ShareType::UserDevice, Some("android")),
            "user device (android)"
        );
    }

    #[test]
    fn duplicates_and_bad_fields_are_refused() {
        let dup = party_ids(["a", "b", "a"]).unwrap_err();
        assert_eq!(dup.code, ErrorCode::DuplicatePartyId);
        assert_eq!(
            party_ids(["a b"]).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(
            device_type(Some("Android")).unwrap().as_deref(),
            Some("android")
        );
        assert!(device_type(Some("a/b")).is_err());
        assert!(email(Some("alice@example.com")).is_ok());
        for bad in ["", "alice", "@x", "a@", "a b@c", "a@b@c"] {
            assert!(email(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(username(Some("")).is_err());
        assert!(username(Some("alice")).is_ok());
    }
}
