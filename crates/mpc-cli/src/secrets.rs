//! The embedded system's secrets: generated on the first `mpc up`, kept in
//! `<data-dir>/secrets.json` (mode 0600 in a 0700 directory), read on every later start.
//! Everything here is secret: the join-token and access-token signing seeds, the service token,
//! the Server Party API's identity and share-wrapping keys, each server party's master key, and
//! the generated API key.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mpc_proto::PartyId;
use mpc_proto::access_token::AccessTokenSigner;
use mpc_protocol::SealingKey;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

const FILE: &str = "secrets.json";
const VERSION: u32 = 1;
const PARTY_KEY_ID: &str = "kek-1";
const SHARE_KEY_ID: &str = "share-key-1";

#[derive(Serialize, Deserialize)]
pub struct Secrets {
    version: u32,
    pub join_token_seed: String,
    pub access_token_seed: String,
    pub service_token: String,
    party_api_identity_seed: String,
    party_api_share_key: String,
    party_master_keys: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
}

impl Drop for Secrets {
    fn drop(&mut self) {
        self.join_token_seed.zeroize();
        self.access_token_seed.zeroize();
        self.service_token.zeroize();
        self.party_api_identity_seed.zeroize();
        self.party_api_share_key.zeroize();
        self.party_master_keys
            .values_mut()
            .for_each(Zeroize::zeroize);
        self.api_key.zeroize();
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets([REDACTED])")
    }
}

fn random_b64() -> Result<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut_slice()).map_err(|e| anyhow!("no randomness: {e}"))?;
    Ok(STANDARD.encode(bytes.as_slice()))
}

fn decode32(what: &str, b64: &str) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(b64)
            .with_context(|| format!("{what} in {FILE} is not base64"))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        bail!("{what} in {FILE} is not 32 bytes");
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))
}

/// The API key a local `mpc up` generated, if `dir` holds one.
pub fn stored_api_key(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    );
    let s: Secrets =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    Ok(s.api_key.clone())
}

impl Secrets {
    /// Reads `<dir>/secrets.json`, or creates it. Returns whether it was created. Master keys for
    /// parties added since (a larger `--parties`) are generated and saved.
    pub fn load_or_create(
        dir: &Path,
        parties: u16,
        generate_api_key: bool,
    ) -> Result<(Self, bool)> {
        let path = dir.join(FILE);
        let (mut secrets, created) = if path.exists() {
            let text = Zeroizing::new(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            );
            let s: Secrets = serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged", path.display()))?;
            if s.version != VERSION {
                bail!(
                    "{} has version {}, this build reads {VERSION}",
                    path.display(),
                    s.version
                );
            }
            (s, false)
        } else {
            let s = Secrets {
                version: VERSION,
                join_token_seed: random_b64()?,
                access_token_seed: random_b64()?,
                service_token: random_b64()?,
                party_api_identity_seed: random_b64()?,
                party_api_share_key: random_b64()?,
                party_master_keys: BTreeMap::new(),
                api_key: None,
            };
            (s, true)
        };
        let mut changed = created;
        for i in 1..=parties {
            let id = format!("server_party_{i}");
            if let std::collections::btree_map::Entry::Vacant(slot) =
                secrets.party_master_keys.entry(id)
            {
                slot.insert(random_b64()?);
                changed = true;
            }
        }
        if generate_api_key && secrets.api_key.is_none() {
            let mut bytes = Zeroizing::new([0u8; 32]);
            getrandom::fill(bytes.as_mut_slice()).map_err(|e| anyhow!("no randomness: {e}"))?;
            secrets.api_key = Some(format!("mpc_{}", URL_SAFE_NO_PAD.encode(bytes.as_slice())));
            changed = true;
        }
        if changed {
            secrets.save(&path)?;
        }
        Ok((secrets, created))
    }

    fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let json = Zeroizing::new(serde_json::to_vec_pretty(self)?);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    pub fn join_token_signer(&self) -> Result<mpc_proto::TokenSigner> {
        Ok(mpc_proto::TokenSigner::from_seed(&*decode32(
            "join_token_seed",
            &self.join_token_seed,
        )?))
    }

    pub fn access_token_signer(&self) -> Result<AccessTokenSigner> {
        Ok(AccessTokenSigner::from_seed(&*decode32(
            "access_token_seed",
            &self.access_token_seed,
        )?))
    }

    pub fn party_api_identity_seed(&self) -> Result<server_party_api::IdentitySeed> {
        Ok(server_party_api::IdentitySeed::new(*decode32(
            "party_api_identity_seed",
            &self.party_api_identity_seed,
        )?))
    }

    pub fn party_api_share_key(&self) -> Result<SealingKey> {
        SealingKey::new(
            SHARE_KEY_ID,
            *decode32("party_api_share_key", &self.party_api_share_key)?,
        )
        .map_err(|e| anyhow!("{e}"))
    }

    /// The master keys of `parties`, in order.
    pub fn party_master_keys(&self, parties: &[PartyId]) -> Result<Vec<SealingKey>> {
        parties
            .iter()
            .map(|p| {
                let b64 = self
                    .party_master_keys
                    .get(p.as_str())
                    .ok_or_else(|| anyhow!("no master key for {p} in {FILE}"))?;
                SealingKey::new(PARTY_KEY_ID, *decode32("a party master key", b64)?)
                    .map_err(|e| anyhow!("{e}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        create_private_dir(&data).unwrap();
        let (a, created) = Secrets::load_or_create(&data, 3, true).unwrap();
        assert!(created && a.api_key().is_some_and(|k| k.starts_with("mpc_")));
        let (b, created) = Secrets::load_or_create(&data, 3, true).unwrap();
        assert!(!created);
        assert_eq!(a.join_token_seed, b.join_token_seed);
        assert_eq!(a.api_key(), b.api_key());
        let mode = std::fs::metadata(data.join(FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // A fourth party gets its own key; the others keep theirs.
        let (c, _) = Secrets::load_or_create(&data, 4, true).unwrap();
        assert_eq!(c.party_master_keys.len(), 4);
        assert_eq!(
            c.party_master_keys["server_party_1"],
            a.party_master_keys["server_party_1"]
        );
        assert!(format!("{c:?}").contains("REDACTED"));
    }

    #[test]
    fn a_damaged_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        let e = Secrets::load_or_create(dir.path(), 3, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
