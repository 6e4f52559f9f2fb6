//! The end-to-end secure channel between the parties of one session (DESIGN.md §5).
//!
//! - Each party has a long-term Ed25519 [`IdentityKey`]; the others pin its public key.
//! - For each session it makes a fresh X25519 key and signs an announcement of it with its
//!   identity key ([`SessionKeys`]). The announcement travels through the coordinator, which
//!   cannot forge one.
//! - Each ordered pair of parties derives its own AEAD key from the X25519 shared secret with
//!   HKDF-SHA256 over the session id and both announcements; every payload is sealed with
//!   XChaCha20-Poly1305 under the sender→recipient key, with the session, sender, recipient and
//!   round as associated data. The router sees ciphertext only, and a message replayed into
//!   another session, round, or direction does not authenticate.

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, Verifier};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Misbehaviour, ProtocolError};
use crate::types::{PartyIndex, SessionId};

const ANNOUNCEMENT_CONTEXT: &[u8] = b"mpc-system/session-key/v1";
const CHANNEL_INFO: &[u8] = b"mpc-system/channel/v1";
const FRAME_AAD: &[u8] = b"mpc-system/frame/v1";
const PAYLOAD_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// A party's long-term Ed25519 identity key. Zeroized on drop; never printed.
pub struct IdentityKey(ed25519_dalek::SigningKey);

impl IdentityKey {
    pub fn generate() -> Result<Self, ProtocolError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(ProtocolError::internal)?;
        Ok(Self::from_seed(&seed))
    }

    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed, for sealing it at rest.
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public_key(&self) -> IdentityPublicKey {
        IdentityPublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `context || 0x00 || message` (Ed25519). The context keeps statements of different
    /// kinds apart: a signature made for one can never pass as another (the session-key
    /// announcements use their own context, `mpc-system/session-key/v1`).
    pub fn sign_statement(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        let mut signed = Vec::with_capacity(context.len() + 1 + message.len());
        signed.extend_from_slice(context);
        signed.push(0);
        signed.extend_from_slice(message);
        self.0.sign(&signed).to_bytes()
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey([REDACTED], public={})", self.public_key())
    }
}

/// The public half of an [`IdentityKey`]: what other parties pin.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdentityPublicKey([u8; 32]);

impl IdentityPublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| {
            ProtocolError::InvalidInput("identity public key must be 32 bytes".into())
        })?;
        ed25519_dalek::VerifyingKey::from_bytes(&arr)
            .map_err(|_| ProtocolError::InvalidInput("not a valid Ed25519 public key".into()))?;
        Ok(Self(arr))
    }

    pub fn from_hex(s: &str) -> Result<Self, ProtocolError> {
        let bytes = hex::decode(s)
            .map_err(|_| ProtocolError::InvalidInput("identity public key is not hex".into()))?;
        Self::from_bytes(&bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, ProtocolError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map_err(|_| ProtocolError::InvalidInput("not a valid Ed25519 public key".into()))
    }
}

impl fmt::Display for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey({self})")
    }
}

/// A party's signed statement "my X25519 key for session S, as party i, is K".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Announcement {
    version: u8,
    session_id: Vec<u8>,
    index: PartyIndex,
    x25519: [u8; 32],
    #[serde(with = "signature_bytes")]
    signature: [u8; 64],
}

mod signature_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let v: Vec<u8> = Deserialize::deserialize(d)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("signature must be 64 bytes"))
    }
}

fn announcement_message(session_id: &[u8], index: PartyIndex, x25519: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(ANNOUNCEMENT_CONTEXT.len() + session_id.len() + 40);
    m.extend_from_slice(ANNOUNCEMENT_CONTEXT);
    m.extend_from_slice(&(session_id.len() as u32).to_be_bytes());
    m.extend_from_slice(session_id);
    m.extend_from_slice(&index.get().to_be_bytes());
    m.extend_from_slice(x25519);
    m
}

/// This party's X25519 key for one session, with its signed announcement.
pub struct SessionKeys {
    session_id: SessionId,
    index: PartyIndex,
    secret: x25519_dalek::StaticSecret,
    announcement: Vec<u8>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("index", &self.index)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

impl SessionKeys {
    /// A fresh key pair for `session_id`, announced as party `index` and signed by `identity`.
    pub fn generate(
        identity: &IdentityKey,
        session_id: &SessionId,
        index: PartyIndex,
    ) -> Result<Self, ProtocolError> {
        let mut raw = Zeroizing::new([0u8; 32]);
        getrandom::fill(raw.as_mut_slice()).map_err(ProtocolError::internal)?;
        let secret = x25519_dalek::StaticSecret::from(*raw);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        let signature = identity
            .0
            .sign(&announcement_message(session_id.as_bytes(), index, &public))
            .to_bytes();
        let announcement = Announcement {
            version: 1,
            session_id: session_id.as_bytes().to_vec(),
            index,
            x25519: public,
            signature,
        };
        let announcement = postcard::to_allocvec(&announcement).map_err(ProtocolError::internal)?;
        Ok(Self {
            session_id: session_id.clone(),
            index,
            secret,
            announcement,
        })
    }

    /// The signed announcement to register with the coordinator (`JoinSession`'s session key).
    pub fn announcement(&self) -> &[u8] {
        &self.announcement
    }

    pub fn index(&self) -> PartyIndex {
        self.index
    }
}

/// One participant as the coordinator's roster lists it.
#[derive(Clone, Debug)]
pub struct RosterEntry {
    pub index: PartyIndex,
    /// The party's identity key. For parties whose key is pinned in configuration the caller must
    /// pass the pinned key here, not the one the coordinator relayed.
    pub identity: IdentityPublicKey,
    /// The party's signed session-key announcement, as relayed by the coordinator.
    pub announcement: Vec<u8>,
}

/// Directional AEAD keys shared with one peer.
struct PeerKeys {
    send: XChaCha20Poly1305,
    recv: XChaCha20Poly1305,
}

/// The sealed pairwise channels of one party in one session.
pub struct SecureChannel {
    session_id: SessionId,
    me: PartyIndex,
    peers: BTreeMap<PartyIndex, PeerKeys>,
}

impl fmt::Debug for SecureChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureChannel")
            .field("me", &self.me)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SecureChannel {
    /// Verifies every peer's announcement against its identity key and derives the pairwise keys.
    /// The roster must contain this party itself (with the announcement it registered) and each
    /// peer once. A bad announcement names the peer.
    pub fn establish(keys: SessionKeys, roster: &[RosterEntry]) -> Result<Self, ProtocolError> {
        let mut seen = BTreeMap::new();
        for entry in roster {
            if seen.insert(entry.index, ()).is_some() {
                return Err(ProtocolError::InvalidInput(format!(
                    "party {} appears twice in the roster",
                    entry.index
                )));
            }
        }
        let mine = roster
            .iter()
            .find(|e| e.index == keys.index)
            .ok_or_else(|| ProtocolError::InvalidInput("this party is not in the roster".into()))?;
        if mine.announcement != keys.announcement {
            return Err(ProtocolError::InvalidInput(
                "the roster holds another session key for this party than the one it registered"
                    .into(),
            ));
        }
        let my_public = x25519_dalek::PublicKey::from(&keys.secret).to_bytes();
        let mut peers = BTreeMap::new();
        for entry in roster.iter().filter(|e| e.index != keys.index) {
            let theirs = verify_announcement(entry, &keys.session_id)?;
            let shared = keys
                .secret
                .diffie_hellman(&x25519_dalek::PublicKey::from(theirs));
            if !shared.was_contributory() {
                return Err(ProtocolError::blame(
                    entry.index,
                    Misbehaviour::BadSessionKey("low-order X25519 key".into()),
                ));
            }
            let (send, recv) = derive_pair_keys(
                shared.as_bytes(),
                &keys.session_id,
                (keys.index, &my_public),
                (entry.index, &theirs),
            )?;
            peers.insert(entry.index, PeerKeys { send, recv });
        }
        Ok(Self {
            session_id: keys.session_id,
            me: keys.index,
            peers,
        })
    }

    pub fn me(&self) -> PartyIndex {
        self.me
    }

    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }

    /// Every party of the session, this one included, in index order.
    pub fn parties(&self) -> Vec<PartyIndex> {
        let mut all: Vec<PartyIndex> = self.peers.keys().copied().collect();
        all.push(self.me);
        all.sort();
        all
    }

    /// Seals `plaintext` for `to` in `round`: `version || nonce || ciphertext`.
    pub(crate) fn seal(
        &self,
        to: PartyIndex,
        round: u16,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ProtocolError> {
        let peer = self
            .peers
            .get(&to)
            .ok_or_else(|| ProtocolError::internal(format!("no channel to party {to}")))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(ProtocolError::internal)?;
        let aad = frame_aad(&self.session_id, self.me, to, round);
        let ct = peer
            .send
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| ProtocolError::internal("encryption failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(PAYLOAD_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// [`Self::seal`] for the fuzz targets: a genuine peer sealing arbitrary plaintext, so that
    /// the frame and protocol decoders behind the AEAD are reached.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn seal_for_fuzzing(
        &self,
        to: PartyIndex,
        round: u16,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ProtocolError> {
        self.seal(to, round, plaintext)
    }

    /// Opens a payload `from` sent to us in `round`. Any failure blames `from`.
    pub(crate) fn open(
        &self,
        from: PartyIndex,
        round: u16,
        payload: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        let peer = self
            .peers
            .get(&from)
            .ok_or(ProtocolError::blame(from, Misbehaviour::UnknownSender))?;
        if payload.len() < 1 + NONCE_LEN || payload[0] != PAYLOAD_VERSION {
            return Err(ProtocolError::blame(from, Misbehaviour::Undecryptable));
        }
        let aad = frame_aad(&self.session_id, from, self.me, round);
        let nonce = XNonce::try_from(&payload[1..1 + NONCE_LEN])
            .map_err(|_| ProtocolError::blame(from, Misbehaviour::Undecryptable))?;
        peer.recv
            .decrypt(
                &nonce,
                Payload {
                    msg: &payload[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| ProtocolError::blame(from, Misbehaviour::Undecryptable))
    }
}

fn verify_announcement(
    entry: &RosterEntry,
    session_id: &SessionId,
) -> Result<[u8; 32], ProtocolError> {
    let bad =
        |why: &str| ProtocolError::blame(entry.index, Misbehaviour::BadSessionKey(why.into()));
    let a: Announcement = postcard::from_bytes(&entry.announcement)
        .map_err(|_| bad("not a session key announcement"))?;
    if a.version != 1 {
        return Err(bad("unsupported announcement version"));
    }
    if a.session_id != session_id.as_bytes() {
        return Err(bad("announcement is for another session"));
    }
    if a.index != entry.index {
        return Err(bad("announcement is for another party index"));
    }
    let signature = ed25519_dalek::Signature::from_bytes(&a.signature);
    entry
        .identity
        .verifying_key()?
        .verify(
            &announcement_message(&a.session_id, a.index, &a.x25519),
            &signature,
        )
        .map_err(|_| bad("signature does not verify against the party's identity key"))?;
    Ok(a.x25519)
}

/// HKDF-SHA256(shared secret; salt = session id; info = context, both indices and keys, ordered
/// low→high) → two 32-byte keys, one per direction.
fn derive_pair_keys(
    shared: &[u8; 32],
    session_id: &SessionId,
    me: (PartyIndex, &[u8; 32]),
    peer: (PartyIndex, &[u8; 32]),
) -> Result<(XChaCha20Poly1305, XChaCha20Poly1305), ProtocolError> {
    let (low, high) = if me.0 < peer.0 {
        (me, peer)
    } else {
        (peer, me)
    };
    let mut info = Vec::with_capacity(CHANNEL_INFO.len() + 68);
    info.extend_from_slice(CHANNEL_INFO);
    info.extend_from_slice(&low.0.get().to_be_bytes());
    info.extend_from_slice(low.1);
    info.extend_from_slice(&high.0.get().to_be_bytes());
    info.extend_from_slice(high.1);
    let hk = Hkdf::<Sha256>::new(Some(session_id.as_bytes()), shared);
    let mut okm = Zeroizing::new([0u8; 64]);
    hk.expand(&info, okm.as_mut_slice())
        .map_err(|_| ProtocolError::internal("hkdf expand"))?;
    let low_to_high =
        XChaCha20Poly1305::new_from_slice(&okm[..32]).map_err(ProtocolError::internal)?;
    let high_to_low =
        XChaCha20Poly1305::new_from_slice(&okm[32..]).map_err(ProtocolError::internal)?;
    okm.zeroize();
    Ok(if me.0 < peer.0 {
        (low_to_high, high_to_low)
    } else {
        (high_to_low, low_to_high)
    })
}

fn frame_aad(session_id: &SessionId, from: PartyIndex, to: PartyIndex, round: u16) -> Vec<u8> {
    let sid = session_id.as_bytes();
    let mut aad = Vec::with_capacity(FRAME_AAD.len() + sid.len() + 10);
    aad.extend_from_slice(FRAME_AAD);
    aad.extend_from_slice(&(sid.len() as u32).to_be_bytes());
    aad.extend_from_slice(sid);
    aad.extend_from_slice(&from.get().to_be_bytes());
    aad.extend_from_slice(&to.get().to_be_bytes());
    aad.extend_from_slice(&round.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(i: u16) -> PartyIndex {
        PartyIndex::new(i).unwrap()
    }

    fn setup(n: u16) -> (Vec<IdentityKey>, Vec<SecureChannel>) {
        let sid = SessionId::new(b"test-session".to_vec()).unwrap();
        let ids: Vec<IdentityKey> = (0..n).map(|_| IdentityKey::generate().unwrap()).collect();
        let keys: Vec<SessionKeys> = (0..n)
            .map(|i| SessionKeys::generate(&ids[i as usize], &sid, idx(i)).unwrap())
            .collect();
        let roster: Vec<RosterEntry> = (0..n)
            .map(|i| RosterEntry {
                index: idx(i),
                identity: ids[i as usize].public_key(),
                announcement: keys[i as usize].announcement().to_vec(),
            })
            .collect();
        let channels = keys
            .into_iter()
            .map(|k| SecureChannel::establish(k, &roster).unwrap())
            .collect();
        (ids, channels)
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let (_, ch) = setup(3);
        let sealed = ch[0].seal(idx(1), 2, b"hello").unwrap();
        assert_eq!(ch[1].open(idx(0), 2, &sealed).unwrap().as_slice(), b"hello");
        // Wrong round, wrong claimed sender, wrong recipient: all fail and blame the claimed sender.
        assert_eq!(
            ch[1]
                .open(idx(0), 3, &sealed)
                .err()
                .and_then(|e| e.blamed_party()),
            Some(idx(0))
        );
        assert_eq!(
            ch[1]
                .open(idx(2), 2, &sealed)
                .err()
                .and_then(|e| e.blamed_party()),
            Some(idx(2))
        );
        assert!(ch[2].open(idx(0), 2, &sealed).is_err());
        // Reflection: party 1 cannot pass 0's message to 1 back to 0 as its own.
        assert!(ch[0].open(idx(1), 2, &sealed).is_err());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(ch[1].open(idx(0), 2, &tampered).is_err());
        assert!(ch[1].open(idx(0), 2, &[]).is_err());
    }

    #[test]
    fn forged_announcement_is_rejected_and_blamed() {
        let sid = SessionId::new(b"s".to_vec()).unwrap();
        let alice = IdentityKey::generate().unwrap();
        let bob = IdentityKey::generate().unwrap();
        let mallory = IdentityKey::generate().unwrap();
        let a = SessionKeys::generate(&alice, &sid, idx(0)).unwrap();
        // Mallory signs a key for Bob's index with her own identity key.
        let forged = SessionKeys::generate(&mallory, &sid, idx(1)).unwrap();
        let roster = vec![
            RosterEntry {
                index: idx(0),
                identity: alice.public_key(),
                announcement: a.announcement().to_vec(),
            },
            RosterEntry {
                index: idx(1),
                identity: bob.public_key(),
                announcement: forged.announcement().to_vec(),
            },
        ];
        let err = SecureChannel::establish(a, &roster).err();
        assert_eq!(err.as_ref().and_then(|e| e.blamed_party()), Some(idx(1)));
        assert!(matches!(
            err,
            Some(ProtocolError::Misbehaviour {
                kind: Misbehaviour::BadSessionKey(_),
                ..
            })
        ));
    }

    #[test]
    fn announcement_for_another_session_or_index_is_rejected() {
        let sid = SessionId::new(b"s1".to_vec()).unwrap();
        let other = SessionId::new(b"s2".to_vec()).unwrap();
        let alice = IdentityKey::generate().unwrap();
        let bob = IdentityKey::generate().unwrap();
        let a = SessionKeys::generate(&alice, &sid, idx(0)).unwrap();
        for (bsid, bidx) in [(&other, idx(1)), (&sid, idx(2))] {
            let b = SessionKeys::generate(&bob, bsid, bidx).unwrap();
            let a2 = SessionKeys::generate(&alice, &sid, idx(0)).unwrap();
            let roster = vec![
                RosterEntry {
                    index: idx(0),
                    identity: alice.public_key(),
                    announcement: a2.announcement().to_vec(),
                },
                RosterEntry {
                    index: idx(1),
                    identity: bob.public_key(),
                    announcement: b.announcement().to_vec(),
                },
            ];
            assert_eq!(
                SecureChannel::establish(a2, &roster)
                    .err()
                    .and_then(|e| e.blamed_party()),
                Some(idx(1))
            );
        }
        drop(a);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let id = IdentityKey::generate().unwrap();
        let seed_hex = hex::encode(id.to_seed().as_slice());
        let dbg = format!("{id:?}");
        assert!(dbg.contains("REDACTED") && !dbg.contains(&seed_hex));
        let sid = SessionId::new(b"s".to_vec()).unwrap();
        let keys = SessionKeys::generate(&id, &sid, idx(0)).unwrap();
        assert!(format!("{keys:?}").contains("REDACTED"));
    }
}
