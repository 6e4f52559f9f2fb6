//! Fixed keys and fixtures shared by the fuzz targets and the corpus generator
//! (`examples/make_corpus.rs`), so that the seed corpus is made of real encodings the targets
//! accept: tokens signed by [`token_signer`], shares wrapped under [`share_keys`], HPKE blobs
//! sealed to [`DEVICE_SECRET`]'s public key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mpc_proto::{PartyId, SessionId, TokenSigner};
use mpc_protocol::{IdentityKey, RosterEntry, SealingKey, SecureChannel, SessionKeys};
use server_party_api::ShareKeys;

/// The coordinator's join-token seed in the fuzz harness.
pub const TOKEN_SEED: [u8; 32] = [7; 32];
/// The device's P-256 private key (a valid scalar).
pub const DEVICE_SECRET: [u8; 32] = [0x11; 32];
pub const KEY_ID: &str = "4f1c5c9e-5a5e-4b64-9a57-1c5c1c5c1c5c";
pub const SESSION: &str = "6a1f3d2e-0b7c-4c1d-8e9f-0123456789ab";

pub fn token_signer() -> TokenSigner {
    TokenSigner::from_seed(&TOKEN_SEED)
}

pub fn session_id() -> SessionId {
    SessionId::parse(SESSION).unwrap()
}

pub fn party(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}

pub fn share_keys() -> ShareKeys {
    ShareKeys::single(SealingKey::new("uk-1", [9; 32]).unwrap())
}

/// A genuine 2-of-3 share (the engine's test fixture), party index 0.
pub const FIXTURE_SHARE: &[u8] =
    include_bytes!("../../crates/mpc-protocol/tests/fixtures/share_v1_2of3_p0.bin");

/// `(evil party 0's channel, victim party 1's channel)` of a two-party session: both hold
/// genuine keys, so whatever evil seals reaches the victim's frame and protocol decoders.
pub fn channel_pair() -> (SecureChannel, SecureChannel) {
    let sid = mpc_protocol::SessionId::new(b"fuzz-engine-frame".to_vec()).unwrap();
    let ids = [
        IdentityKey::from_seed(&[1; 32]),
        IdentityKey::from_seed(&[2; 32]),
    ];
    let idx = |i: u16| mpc_protocol::PartyIndex::new(i).unwrap();
    let keys: Vec<SessionKeys> = (0..2)
        .map(|i| SessionKeys::generate(&ids[i], &sid, idx(i as u16)).unwrap())
        .collect();
    let roster: Vec<RosterEntry> = (0..2)
        .map(|i| RosterEntry {
            index: idx(i as u16),
            identity: ids[i].public_key(),
            announcement: keys[i].announcement().to_vec(),
        })
        .collect();
    let mut channels = keys
        .into_iter()
        .map(|k| SecureChannel::establish(k, &roster).unwrap());
    (channels.next().unwrap(), channels.next().unwrap())
}

/// Party index 1's share of the same key.
pub const FIXTURE_SHARE_P1: &[u8] =
    include_bytes!("../../crates/mpc-protocol/tests/fixtures/share_v1_2of3_p1.bin");

/// Join-token claims of `user_device_1` in a sign session with two server parties.
pub fn claims() -> mpc_proto::JoinClaims {
    mpc_proto::JoinClaims {
        sid: session_id(),
        pid: party("user_device_1"),
        idx: 0,
        typ: mpc_proto::SessionType::Sign,
        parties: vec![
            party("user_device_1"),
            party("server_party_1"),
            party("server_party_2"),
        ],
        jti: uuid::Uuid::nil(),
        iss: "mpc-session-coordinator".into(),
        aud: "mpc-session".into(),
        iat: 0,
        exp: u64::MAX / 2,
    }
}
