//! Secrets at rest: the identity key and the key shares, sealed with the master key (KEK) under
//! AES-256-GCM with associated data binding each blob to its owner (key id, party id, party
//! index), and the rotation of the KEK.

use std::sync::Arc;

use chrono::Utc;
use mpc_client::{PartyError, Roster};
use mpc_proto::{PartyId, SessionId};
use mpc_protocol::seal::{self, SealContext, SealError, SealingKey};
use mpc_protocol::{IdentityKey, KeyShare};
use mpc_store::party::{NewShare, PartyStore, ShareRecord, StoredIdentity};
use zeroize::Zeroizing;

use crate::error::PartyServiceError;

/// The sealing context of the identity key: key id `identity`, index 0.
const IDENTITY_KEY_ID: &str = "identity";

fn identity_context(party: &PartyId) -> SealContext<'_> {
    SealContext {
        key_id: IDENTITY_KEY_ID,
        party_id: party.as_str(),
        party_index: 0,
    }
}

/// The context a share was sealed with, as its row describes it (for re-sealing).
fn share_context(record: &ShareRecord) -> SealContext<'_> {
    SealContext {
        key_id: &record.key_id,
        party_id: record.party_id.as_str(),
        party_index: record.party_index,
    }
}

fn wrong_master_key(e: &SealError) -> bool {
    matches!(e, SealError::Unauthentic | SealError::WrongKey { .. })
}

/// Loads this party's identity key, creating and storing it (sealed) on first start. A wrong
/// master key is a clear error, not a panic.
pub async fn load_or_create_identity(
    store: &dyn PartyStore,
    party: &PartyId,
    kek: &SealingKey,
) -> Result<IdentityKey, PartyServiceError> {
    let stored = match store.identity().await? {
        Some(stored) => stored,
        None => {
            let key = IdentityKey::generate().map_err(|e| {
                PartyServiceError::Identity(format!("cannot create the identity key: {e}"))
            })?;
            let sealed = seal::seal(kek, &identity_context(party), key.to_seed().as_slice())
                .map_err(|e| {
                    PartyServiceError::Identity(format!("cannot seal the identity key: {e}"))
                })?;
            let now = Utc::now();
            let created = store
                .create_identity(&StoredIdentity {
                    party_id: party.clone(),
                    public_key: key.public_key().to_string(),
                    sealed_key: sealed,
                    kek_id: kek.id().to_owned(),
                    created_at: now,
                    updated_at: now,
                })
                .await?;
            tracing::info!(party_id = %party, identity_public_key = %created.public_key, "created the party's identity key");
            created
        }
    };
    open_identity(&stored, party, kek)
}

fn open_identity(
    stored: &StoredIdentity,
    party: &PartyId,
    kek: &SealingKey,
) -> Result<IdentityKey, PartyServiceError> {
    if &stored.party_id != party {
        return Err(PartyServiceError::Identity(format!(
            "this database belongs to party {}, not {party}",
            stored.party_id
        )));
    }
    if stored.kek_id != kek.id() {
        return Err(PartyServiceError::Identity(format!(
            "cannot open the identity key: it is sealed under master key {:?}, configured is {:?} \
             (finish the rotation or configure that key)",
            stored.kek_id,
            kek.id()
        )));
    }
    let seed = seal::open(kek, &identity_context(party), &stored.sealed_key).map_err(|e| {
        if wrong_master_key(&e) {
            PartyServiceError::Identity("cannot open the identity key: wrong master key".into())
        } else {
            PartyServiceError::Identity(format!("cannot open the identity key: {e}"))
        }
    })?;
    let seed: Zeroizing<[u8; 32]> =
        Zeroizing::new(seed.as_slice().try_into().map_err(|_| {
            PartyServiceError::Identity("the stored identity key is corrupt".into())
        })?);
    let key = IdentityKey::from_seed(&seed);
    if key.public_key().to_string() != stored.public_key {
        return Err(PartyServiceError::Identity(
            "the stored identity key does not match its public key".into(),
        ));
    }
    Ok(key)
}

/// A session's new share, sealed for storage.
pub(crate) fn seal_share(
    kek: &SealingKey,
    roster: &Roster,
    share: &KeyShare,
    session_id: SessionId,
) -> Result<NewShare, PartyError> {
    let ctx = SealContext {
        key_id: &roster.key_id,
        party_id: roster.me.as_str(),
        party_index: share.index().get(),
    };
    let sealed = seal::seal_share(kek, &ctx, share)
        .map_err(|e| PartyError::Local(format!("cannot seal its share: {e}")))?;
    Ok(NewShare {
        id: uuid::Uuid::new_v4(),
        key_id: roster.key_id.clone(),
        party_id: roster.me.clone(),
        party_index: share.index().get(),
        threshold: roster.threshold,
        public_key: share.public_key().to_hex(),
        session_id,
        sealed_share: sealed,
        kek_id: kek.id().to_owned(),
        created_at: Utc::now(),
    })
}

/// The active share of `key_id`, opened as `me`'s. The context is this party's own id, not the
/// row's: a row copied from another party's store does not open here, even under the same
/// master key.
pub(crate) async fn open_active_share(
    store: &dyn PartyStore,
    kek: &SealingKey,
    key_id: &str,
    me: &PartyId,
) -> Result<Arc<KeyShare>, PartyError> {
    let record = store
        .active_share(key_id)
        .await
        .map_err(|e| PartyError::Internal(format!("reading the share: {e}")))?
        .ok_or_else(|| PartyError::Local(format!("holds no share for key {key_id}")))?;
    let sealed = record
        .sealed_share
        .as_deref()
        .ok_or_else(|| PartyError::Internal("an active share without ciphertext".into()))?;
    let ctx = SealContext {
        key_id,
        party_id: me.as_str(),
        party_index: record.party_index,
    };
    seal::open_share(kek, &ctx, sealed)
        .map(Arc::new)
        .map_err(|e| match e {
            SealError::WrongKey { found, .. } => PartyError::Local(format!(
                "cannot use its share: share for key {key_id} is sealed under master key {found:?}, not the configured one"
            )),
            SealError::Unauthentic => PartyError::Local(format!(
                "cannot use its share: share for key {key_id} does not decrypt: wrong master key"
            )),
            other => PartyError::Local(format!(
                "cannot use its share: share for key {key_id} is unusable: {other}"
            )),
        })
}

/// Re-seals every share (pending or active) and the identity key sealed under `old` with `new`,
/// one item per transaction with a compare-and-set on the KEK id: an interrupted run resumes
/// where it stopped, and running it twice does nothing the second time. Returns how many items
/// it re-sealed. Retired shares have no ciphertext and are skipped.
pub async fn rotate_master_key(
    store: &dyn PartyStore,
    old: &SealingKey,
    new: &SealingKey,
) -> Result<usize, PartyServiceError> {
    if old.id() == new.id() {
        return Err(PartyServiceError::Rotation(format!(
            "the new master key needs another key id than {:?}, so that re-sealed items can be told apart",
            old.id()
        )));
    }
    let mut count = 0;
    if let Some(identity) = store.identity().await?
        && identity.kek_id == old.id()
    {
        let ctx = identity_context(&identity.party_id);
        let plain = seal::open(old, &ctx, &identity.sealed_key).map_err(|e| {
            PartyServiceError::Rotation(format!(
                "the identity key does not open with the old master key: {e}"
            ))
        })?;
        let sealed = seal::seal(new, &ctx, &plain)
            .map_err(|e| PartyServiceError::Rotation(e.to_string()))?;
        if store
            .reseal_identity(old.id(), &sealed, new.id(), Utc::now())
            .await?
        {
            count += 1;
        }
    }
    loop {
        let batch = store.sealed_under(old.id(), 50).await?;
        if batch.is_empty() {
            break;
        }
        for record in batch {
            let Some(sealed) = record.sealed_share.as_deref() else {
                continue;
            };
            let ctx = share_context(&record);
            let plain = seal::open(old, &ctx, sealed).map_err(|e| {
                PartyServiceError::Rotation(format!(
                    "share {} of key {} does not open with the old master key: {e}",
                    record.id, record.key_id
                ))
            })?;
            let resealed = seal::seal(new, &ctx, &plain)
                .map_err(|e| PartyServiceError::Rotation(e.to_string()))?;
            if store
                .reseal_share(record.id, old.id(), &resealed, new.id(), Utc::now())
                .await?
            {
                count += 1;
            }
        }
    }
    tracing::info!(
        resealed = count,
        old = old.id(),
        new = new.id(),
        "master key rotated"
    );
    Ok(count)
}

#[cfg(test)]
mod tests;
