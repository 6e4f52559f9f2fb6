//! `share_data`: the device's key share as the API hands it out and takes it back.
//!
//! - **Wrapped** (what the device stores and sends back to sign): hex of an
//!   [`mpc_protocol::seal`] blob — AES-256-GCM under the API's share key, with the associated
//!   data binding it to (key id, party id, party index); the blob carries its format version and
//!   the id of the key it was wrapped under (so the API can rotate its key).
//! - **Sealed to the device** (when the request gives `user_public_key`): hex of
//!   `b"MPCHPKE" || 0x01 || enc || ciphertext` ([`crate::hpke`]) whose plaintext is the wrapped
//!   blob, with `info` = `b"mpc-system/user-share/v1" || key id || party id`. Only the device
//!   opens it; it then stores (and later sends) the inner wrapped blob.
//!
//! A share opens only for the owner it was wrapped for: a share of another party or account is
//! refused as such, never decrypted as this one's.

use std::fmt;

use mpc_proto::{ApiError, ErrorCode, PartyId};
use mpc_protocol::seal::{self, SealContext, SealError, SealingKey};
use mpc_protocol::{KeyShare, PublicKey};
use zeroize::Zeroizing;

use crate::hpke::{self, DevicePublicKey, HpkeError};

/// The start of the HPKE `info` of a sealed share.
pub const HPKE_INFO_PREFIX: &[u8] = b"mpc-system/user-share/v1";

/// The `info` a share for `party_id` of `key_id` is sealed with.
pub fn hpke_info(key_id: &str, party_id: &PartyId) -> Vec<u8> {
    let mut info =
        Vec::with_capacity(HPKE_INFO_PREFIX.len() + key_id.len() + party_id.as_str().len());
    info.extend_from_slice(HPKE_INFO_PREFIX);
    info.extend_from_slice(key_id.as_bytes());
    info.extend_from_slice(party_id.as_str().as_bytes());
    info
}

/// Whose share this is: the associated data of the wrapping.
#[derive(Clone, Copy, Debug)]
pub struct ShareOwner<'a> {
    /// The session's `key_id` (the account).
    pub key_id: &'a str,
    pub party_id: &'a PartyId,
    pub party_index: u16,
}

impl<'a> ShareOwner<'a> {
    fn context(&self) -> SealContext<'a> {
        SealContext {
            key_id: self.key_id,
            party_id: self.party_id.as_str(),
            party_index: self.party_index,
        }
    }
}

/// The API's share-wrapping keys: the current one wraps, every one opens what it wrapped.
#[derive(Clone)]
pub struct ShareKeys {
    current: SealingKey,
    previous: Vec<SealingKey>,
}

impl fmt::Debug for ShareKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareKeys")
            .field("current", &self.current)
            .field("previous", &self.previous)
            .finish()
    }
}

impl ShareKeys {
    /// `previous`: keys of earlier rotations, kept so that shares wrapped under them still open.
    /// Key ids must differ.
    pub fn new(current: SealingKey, previous: Vec<SealingKey>) -> Result<Self, String> {
        let mut ids: Vec<&str> = previous.iter().map(SealingKey::id).collect();
        ids.push(current.id());
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != count {
            return Err("share key ids must be unique".into());
        }
        Ok(Self { current, previous })
    }

    /// Only `current`.
    pub fn single(current: SealingKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    pub fn current(&self) -> &SealingKey {
        &self.current
    }

    fn for_blob(&self, blob: &[u8]) -> Result<&SealingKey, ShareDataError> {
        let id = seal::sealed_key_id(blob).map_err(|_| ShareDataError::NotAShare)?;
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == id)
            .ok_or_else(|| ShareDataError::UnknownKey(id.to_owned()))
    }
}

/// Why `share_data` cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShareDataError {
    #[error("share_data must be hex")]
    NotHex,
    #[error(
        "share_data is still sealed to the device key (HPKE): open it on the device and send the inner share"
    )]
    SealedToDevice,
    #[error("share_data is not a user share from this API")]
    NotAShare,
    #[error("share_data was wrapped under key {0:?}, which this API does not hold")]
    UnknownKey(String),
    /// Another owner (key id, party, index) or altered bytes: AES-GCM cannot tell which.
    #[error(
        "share_data does not open as the share of party {party_id} (index {party_index}) for key {key_id}: it belongs to another party or account, or it was altered"
    )]
    NotTheOwner {
        key_id: String,
        party_id: String,
        party_index: u16,
    },
    #[error("share_data holds an invalid share: {0}")]
    InvalidShare(String),
    #[error("share_data is a share of another public key than the session's")]
    OtherPublicKey,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ShareDataError {
    /// 400 for every client mistake; our own failure is a 500 whose details stay in the log.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            ShareDataError::Internal(why) => ApiError::internal(why),
            other => ApiError::new(ErrorCode::InvalidArgument, other.to_string()),
        }
    }
}

fn hex_blob(share_data: &str) -> Result<Vec<u8>, ShareDataError> {
    let s = share_data.strip_prefix("0x").unwrap_or(share_data);
    hex::decode(s).map_err(|_| ShareDataError::NotHex)
}

/// The wrapped blob of `share` for `owner` under the current key.
pub fn wrap(
    keys: &ShareKeys,
    owner: &ShareOwner<'_>,
    share: &KeyShare,
) -> Result<Vec<u8>, ShareDataError> {
    if share.index().get() != owner.party_index {
        return Err(ShareDataError::Internal(format!(
            "a share at index {} wrapped for index {}",
            share.index(),
            owner.party_index
        )));
    }
    seal::seal_share(keys.current(), &owner.context(), share)
        .map_err(|e| ShareDataError::Internal(e.to_string()))
}

/// The response's `share_data`: the wrapped share in hex, sealed to `device` when given.
pub fn to_share_data(
    keys: &ShareKeys,
    owner: &ShareOwner<'_>,
    share: &KeyShare,
    device: Option<&DevicePublicKey>,
) -> Result<String, ShareDataError> {
    let wrapped = wrap(keys, owner, share)?;
    let blob = match device {
        None => wrapped,
        Some(device) => hpke::seal(device, &hpke_info(owner.key_id, owner.party_id), &wrapped)
            .map_err(|e| ShareDataError::Internal(e.to_string()))?,
    };
    Ok(hex::encode(blob))
}

/// Opens a request's `share_data` (the wrapped form) as `owner`'s share. With `public_key`, the
/// share must also be of that group key.
pub fn open(
    keys: &ShareKeys,
    owner: &ShareOwner<'_>,
    share_data: &str,
    public_key: Option<&PublicKey>,
) -> Result<KeyShare, ShareDataError> {
    let blob = hex_blob(share_data)?;
    if hpke::is_sealed(&blob) {
        return Err(ShareDataError::SealedToDevice);
    }
    let key = keys.for_blob(&blob)?;
    let share = seal::open_share(key, &owner.context(), &blob).map_err(|e| match e {
        SealError::Unauthentic => ShareDataError::NotTheOwner {
            key_id: owner.key_id.to_owned(),
            party_id: owner.party_id.to_string(),
            party_index: owner.party_index,
        },
        SealError::Malformed(_) => ShareDataError::NotAShare,
        SealError::WrongKey { found, .. } => ShareDataError::UnknownKey(found),
        SealError::InvalidShare(why) => ShareDataError::InvalidShare(why),
        SealError::InvalidKey(why) | SealError::Internal(why) => ShareDataError::Internal(why),
    })?;
    if public_key.is_some_and(|pk| *pk != share.public_key()) {
        return Err(ShareDataError::OtherPublicKey);
    }
    Ok(share)
}

/// The device's side: opens a sealed `share_data` with its P-256 private key (32 bytes) and
/// returns the inner wrapped share as hex, the form it stores and sends back to sign.
pub fn open_sealed_share_data(
    device_secret_key: &[u8],
    key_id: &str,
    party_id: &PartyId,
    share_data: &str,
) -> Result<Zeroizing<String>, HpkeError> {
    let blob = hex_blob(share_data).map_err(|_| HpkeError::Malformed("share_data must be hex"))?;
    let inner = hpke::open(device_secret_key, &hpke_info(key_id, party_id), &blob)?;
    Ok(Zeroizing::new(hex::encode(inner.as_slice())))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn pid(s: &str) -> PartyId {
        PartyId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn fixture_share() -> Arc<KeyShare> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../mpc-protocol/tests/fixtures/share_v1_2of3_p0.bin");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(KeyShare::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}")))
    }

    fn keys(id: &str, byte: u8) -> ShareKeys {
        let key = SealingKey::new(id, [byte; 32]).unwrap_or_else(|e| panic!("{e}"));
        ShareKeys::new(key, vec![]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn wrapped_shares_open_only_for_their_owner() {
        let keys = keys("uk-1", 1);
        let share = fixture_share();
        let device = pid("user_device_1");
        let owner = ShareOwner {
            key_id: "acct-1",
            party_id: &device,
            party_index: 0,
        };
        let data = to_share_data(&keys, &owner, &share, None).unwrap_or_else(|e| panic!("{e}"));
        let opened =
            open(&keys, &owner, &data, Some(&share.public_key())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened.public_key(), share.public_key());
        assert_eq!(opened.index(), share.index());

        let other_party = pid("user_device_2");
        for other in [
            ShareOwner {
                key_id: "acct-2",
                ..owner
            },
            ShareOwner {
                party_id: &other_party,
                ..owner
            },
        ] {
            assert!(matches!(
                open(&keys, &other, &data, None),
                Err(ShareDataError::NotTheOwner { .. })
            ));
        }
        // Index 1 with a share at index 0: the AAD already refuses it.
        assert!(matches!(
            open(
                &keys,
                &ShareOwner {
                    party_index: 1,
                    ..owner
                },
                &data,
                None
            ),
            Err(ShareDataError::NotTheOwner { .. })
        ));
        // Tampered, not hex, not ours, another API key.
        let mut bytes = hex::decode(&data).unwrap_or_else(|e| panic!("{e}"));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            open(&keys, &owner, &hex::encode(&bytes), None),
            Err(ShareDataError::NotTheOwner { .. })
        ));
        assert_eq!(
            open(&keys, &owner, "xyz", None).err(),
            Some(ShareDataError::NotHex)
        );
        assert_eq!(
            open(&keys, &owner, "00ff", None).err(),
            Some(ShareDataError::NotAShare)
        );
        assert_eq!(
            open(&self::keys("uk-2", 1), &owner, &data, None).err(),
            Some(ShareDataError::UnknownKey("uk-1".into()))
        );
    }

    proptest::proptest! {
        /// Arbitrary text, arbitrary hex, and arbitrary bytes behind a real header: never a
        /// share, never a panic.
        #[test]
        fn arbitrary_share_data_is_refused(
            text in "\\PC{0,200}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let keys = keys("uk-1", 1);
            let device = pid("user_device_1");
            let owner = ShareOwner { key_id: "acct-1", party_id: &device, party_index: 0 };
            proptest::prop_assert!(open(&keys, &owner, &text, None).is_err());
            proptest::prop_assert!(open(&keys, &owner, &hex::encode(&bytes), None).is_err());
            let mut framed = b"MPCSEAL\x01\x04uk-1".to_vec();
            framed.extend_from_slice(&bytes);
            proptest::prop_assert!(open(&keys, &owner, &hex::encode(&framed), None).is_err());
        }
    }

    #[test]
    fn rotated_keys_still_open_old_shares() {
        let old = SealingKey::new("uk-1", [1; 32]).unwrap_or_else(|e| panic!("{e}"));
        let new = SealingKey::new("uk-2", [2; 32]).unwrap_or_else(|e| panic!("{e}"));
        let share = fixture_share();
        let device = pid("d");
        let owner = ShareOwner {
            key_id: "k",
            party_id: &device,
            party_index: 0,
        };
        let before = ShareKeys::new(old.clone(), vec![]).unwrap_or_else(|e| panic!("{e}"));
        let data = to_share_data(&before, &owner, &share, None).unwrap_or_else(|e| panic!("{e}"));
        let after = ShareKeys::new(new.clone(), vec![old]).unwrap_or_else(|e| panic!("{e}"));
        assert!(open(&after, &owner, &data, None).is_ok());
        let rewrapped =
            to_share_data(&after, &owner, &share, None).unwrap_or_else(|e| panic!("{e}"));
        let blob = hex::decode(&rewrapped).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seal::sealed_key_id(&blob).ok(), Some("uk-2"));
        assert!(ShareKeys::new(new.clone(), vec![new]).is_err());
    }

    #[test]
    fn sealed_to_the_device_opens_there_and_only_there() {
        let keys = keys("uk-1", 1);
        let share = fixture_share();
        let device = pid("user_device_1");
        let owner = ShareOwner {
            key_id: "acct-1",
            party_id: &device,
            party_index: 0,
        };
        let sk = p256::SecretKey::from_bytes(&[5u8; 32].into()).unwrap_or_else(|e| panic!("{e}"));
        let pk = DevicePublicKey::from_sec1(
            p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&sk.public_key(), true)
                .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let sealed =
            to_share_data(&keys, &owner, &share, Some(&pk)).unwrap_or_else(|e| panic!("{e}"));
        // The API refuses it as it is …
        assert_eq!(
            open(&keys, &owner, &sealed, None).err(),
            Some(ShareDataError::SealedToDevice)
        );
        // … the device opens it, and the inner share is the wrapped one.
        let inner = open_sealed_share_data(&sk.to_bytes(), "acct-1", &device, &sealed)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(open(&keys, &owner, &inner, Some(&share.public_key())).is_ok());
        // Another account's info does not open it.
        assert_eq!(
            open_sealed_share_data(&sk.to_bytes(), "acct-2", &device, &sealed).err(),
            Some(HpkeError::Unauthentic)
        );
    }
}
