//! A party's key share and its versioned serialisation.
//!
//! Format: `b"MPCSHARE"`, a big-endian `u16` format version, then the version's postcard body.
//! Version 1 holds the DKLs23 party state and the group's public key package (needed to repair a
//! lost share later). Every released version keeps loading: `tests/fixtures/` holds shares of each
//! version and a test loads them.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::dkls::{Package, Party};
use crate::ecdsa::PublicKey;
use crate::error::ProtocolError;
use crate::types::{Parameters, PartyIndex};

const MAGIC: &[u8; 8] = b"MPCSHARE";
/// The format written by this version of the engine.
pub const SHARE_FORMAT_VERSION: u16 = 1;

#[derive(Serialize, Deserialize)]
struct ShareV1 {
    party: Party,
    package: Package,
}

/// One party's share of a threshold key. It holds secret material: it zeroizes on drop and
/// `Debug` shows only public facts.
pub struct KeyShare {
    party: Party,
    package: Package,
    parameters: Parameters,
    index: PartyIndex,
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("index", &self.index)
            .field("threshold", &self.parameters.threshold())
            .field("parties", &self.parameters.parties())
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl KeyShare {
    /// Checks that the party state and the package describe the same key and that this party's
    /// secret matches its public verifying share (catches corrupted or mismatched storage).
    pub(crate) fn new(party: Party, package: Package) -> Result<Self, ProtocolError> {
        let bad = |why: &str| ProtocolError::InvalidInput(format!("inconsistent key share: {why}"));
        let parameters = Parameters::new(
            u16::from(party.parameters.threshold),
            u16::from(party.parameters.share_count),
        )?;
        if package.threshold() != party.parameters.threshold
            || package.share_count() != party.parameters.share_count
        {
            return Err(bad(
                "threshold parameters differ from the public key package",
            ));
        }
        let index = PartyIndex::from_dkls(party.party_index)
            .ok_or_else(|| bad("party index out of range"))?;
        if index.get() >= parameters.parties() {
            return Err(bad("party index out of range"));
        }
        if *package.verifying_key() != party.pk || party.pk == k256::AffinePoint::IDENTITY {
            return Err(bad("public key differs from the package"));
        }
        if party.derivation_data.depth != 0 {
            return Err(bad("derived (BIP-32 child) shares are not stored"));
        }
        let own_point = (k256::ProjectivePoint::GENERATOR * party.poly_point).to_affine();
        let expected = package
            .verifying_share(party.party_index)
            .ok_or_else(|| bad("package lacks this party"))?;
        if own_point != *expected {
            return Err(bad("secret share does not match its verifying share"));
        }
        Ok(Self {
            party,
            package,
            parameters,
            index,
        })
    }

    pub fn index(&self) -> PartyIndex {
        self.index
    }

    pub fn parameters(&self) -> Parameters {
        self.parameters
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_affine(self.party.pk)
    }

    pub fn eth_address(&self) -> String {
        self.public_key().eth_address()
    }

    pub(crate) fn party(&self) -> &Party {
        &self.party
    }

    pub(crate) fn package(&self) -> &Package {
        &self.package
    }

    /// Serialises in the current format. The bytes are secret: seal them before storing
    /// ([`crate::seal`]).
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        #[derive(Serialize)]
        struct ShareV1Ref<'a> {
            party: &'a Party,
            package: &'a Package,
        }
        let mut out = Zeroizing::new(Vec::with_capacity(128 * 1024));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&SHARE_FORMAT_VERSION.to_be_bytes());
        let body = postcard::to_extend(
            &ShareV1Ref {
                party: &self.party,
                package: &self.package,
            },
            Vec::new(),
        )
        .map_err(ProtocolError::internal)?;
        let body = Zeroizing::new(body);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Loads any released format version and validates the share.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let invalid = |why: String| ProtocolError::InvalidInput(format!("not a key share: {why}"));
        if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(invalid("missing MPCSHARE header".into()));
        }
        let version = u16::from_be_bytes([bytes[MAGIC.len()], bytes[MAGIC.len() + 1]]);
        let body = &bytes[MAGIC.len() + 2..];
        match version {
            1 => {
                let v1: ShareV1 = postcard::from_bytes(body)
                    .map_err(|e| invalid(format!("corrupt version 1 body: {e}")))?;
                let ShareV1 { party, package } = v1;
                Self::new(party, package)
            }
            other => Err(invalid(format!(
                "unsupported share format version {other} (this build reads 1)"
            ))),
        }
    }
}
