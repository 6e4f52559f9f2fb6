//! A simulated network: every party of a session in one process, messages delivered one at a time
//! in an order drawn from a seeded RNG. The seed is printed; rerun a failure with
//! `MPC_TEST_SEED=<seed> cargo test -p mpc-protocol <test>`. (The DKLs23 library draws its own
//! randomness from the OS, so a replay reproduces the delivery order and the test's choices, not
//! the library's nonces.)
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, VerifyingKey};
use mpc_protocol::{
    IdentityKey, KeyShare, Message, MessageHash, Parameters, PartyIndex, ProtocolError,
    RosterEntry, RoundProtocol, SecureChannel, Session, SessionId, SessionKeys, Signature,
};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// A seeded RNG; the seed comes from `MPC_TEST_SEED` or is drawn at random, and is printed.
pub fn rng(test: &str) -> ChaCha20Rng {
    let seed = std::env::var("MPC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("[{test}] MPC_TEST_SEED={seed}");
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn idx(i: u16) -> PartyIndex {
    PartyIndex::new(i).unwrap()
}

pub fn random_session_id(rng: &mut impl Rng) -> SessionId {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    SessionId::new(b.to_vec()).unwrap()
}

pub fn random_hash(rng: &mut impl Rng) -> MessageHash {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    MessageHash::new(b)
}

/// Identities, session keys and established channels for `indices` in one session.
pub fn channels(sid: &SessionId, indices: &[PartyIndex]) -> Vec<SecureChannel> {
    let identities: Vec<IdentityKey> = indices
        .iter()
        .map(|_| IdentityKey::generate().unwrap())
        .collect();
    let keys: Vec<SessionKeys> = indices
        .iter()
        .zip(&identities)
        .map(|(i, id)| SessionKeys::generate(id, sid, *i).unwrap())
        .collect();
    let roster: Vec<RosterEntry> = indices
        .iter()
        .zip(&identities)
        .zip(&keys)
        .map(|((i, id), k)| RosterEntry {
            index: *i,
            identity: id.public_key(),
            announcement: k.announcement().to_vec(),
        })
        .collect();
    keys.into_iter()
        .map(|k| SecureChannel::establish(k, &roster).unwrap())
        .collect()
}

/// What a fault hook may do to a message in flight.
pub enum Fault {
    /// Deliver as is.
    Pass,
    /// Deliver this instead.
    Replace(Message),
    /// Deliver the message and then this one too.
    Also(Message),
    /// Deliver this message to the given party, whatever its `to` says.
    DeliverTo(PartyIndex, Message),
    /// Drop it.
    Drop,
}

/// How a run failed.
#[derive(Debug)]
pub enum Failure {
    /// A party's session failed.
    Error {
        at: PartyIndex,
        error: ProtocolError,
    },
    /// No message in flight, yet some sessions are unfinished: (party, whom it waits for).
    Stalled(Vec<(PartyIndex, Vec<PartyIndex>)>),
}

impl Failure {
    pub fn error(&self) -> &ProtocolError {
        match self {
            Failure::Error { error, .. } => error,
            Failure::Stalled(s) => panic!("expected an error, the run stalled: {s:?}"),
        }
    }

    pub fn at(&self) -> PartyIndex {
        match self {
            Failure::Error { at, .. } => *at,
            Failure::Stalled(s) => panic!("expected an error, the run stalled: {s:?}"),
        }
    }
}

/// Runs all sessions to completion over the simulated network, shuffling the delivery order.
/// `fault` sees every message before delivery. Returns the outputs in session order, or the first
/// failure.
pub fn run_with<P: RoundProtocol>(
    rng: &mut ChaCha20Rng,
    mut sessions: Vec<Session<P>>,
    mut fault: impl FnMut(&Message) -> Fault,
) -> Result<Vec<P::Output>, Failure> {
    let position: BTreeMap<PartyIndex, usize> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.me(), i))
        .collect();
    let mut in_flight: Vec<Message> = Vec::new();
    for s in sessions.iter_mut() {
        let me = s.me();
        in_flight.extend(
            s.start()
                .map_err(|error| Failure::Error { at: me, error })?,
        );
    }
    let mut outputs: BTreeMap<usize, P::Output> = BTreeMap::new();
    loop {
        for (i, s) in sessions.iter_mut().enumerate() {
            if let Some(o) = s.take_output() {
                outputs.insert(i, o);
            }
        }
        if outputs.len() == sessions.len() {
            return Ok((0..sessions.len())
                .map(|i| outputs.remove(&i).unwrap())
                .collect());
        }
        if in_flight.is_empty() {
            let stuck: Vec<_> = sessions
                .iter()
                .filter(|s| !s.is_finished())
                .map(|s| (s.me(), s.waiting_for()))
                .collect();
            return Err(Failure::Stalled(stuck));
        }
        let pick = rng.random_range(0..in_flight.len());
        let message = in_flight.swap_remove(pick);
        let deliveries = match fault(&message) {
            Fault::Pass => vec![(message.to, message)],
            Fault::Replace(m) => vec![(m.to, m)],
            Fault::Also(m) => vec![(message.to, message), (m.to, m)],
            Fault::DeliverTo(p, m) => vec![(p, m)],
            Fault::Drop => vec![],
        };
        for (recipient, m) in deliveries {
            let Some(&target) = position.get(&recipient) else {
                continue;
            };
            let session = &mut sessions[target];
            let me = session.me();
            in_flight.extend(
                session
                    .handle(m)
                    .map_err(|error| Failure::Error { at: me, error })?,
            );
        }
    }
}

pub fn run<P: RoundProtocol>(rng: &mut ChaCha20Rng, sessions: Vec<Session<P>>) -> Vec<P::Output> {
    run_with(rng, sessions, |_| Fault::Pass).unwrap_or_else(|f| panic!("protocol failed: {f:?}"))
}

/// Runs a fresh keygen for `t`-of-`n`.
pub fn keygen(rng: &mut ChaCha20Rng, t: u16, n: u16) -> Vec<KeyShare> {
    let params = Parameters::new(t, n).unwrap();
    let sid = random_session_id(rng);
    let indices: Vec<PartyIndex> = params.indices().collect();
    let sessions = channels(&sid, &indices)
        .into_iter()
        .map(|c| mpc_protocol::keygen(params, c).unwrap())
        .collect();
    run(rng, sessions)
}

/// Signs `hash` with the given shares (one per signer).
pub fn sign(rng: &mut ChaCha20Rng, shares: &[Arc<KeyShare>], hash: MessageHash) -> Vec<Signature> {
    let sid = random_session_id(rng);
    let indices: Vec<PartyIndex> = shares.iter().map(|s| s.index()).collect();
    let sessions = shares
        .iter()
        .zip(channels(&sid, &indices))
        .map(|(s, c)| mpc_protocol::sign(s.clone(), hash, c).unwrap())
        .collect();
    // One hash: each signer's batch of one.
    run(rng, sessions).into_iter().map(|v| v[0]).collect()
}

/// Every signer's signatures of a batch, optionally under a derived child key.
pub fn sign_batch(
    rng: &mut ChaCha20Rng,
    shares: &[Arc<KeyShare>],
    hashes: &[MessageHash],
    path: Option<&mpc_protocol::DerivationPath>,
) -> Vec<Vec<Signature>> {
    let sid = random_session_id(rng);
    let indices: Vec<PartyIndex> = shares.iter().map(|s| s.index()).collect();
    let sessions = shares
        .iter()
        .zip(channels(&sid, &indices))
        .map(|(s, c)| mpc_protocol::sign_batch(s.clone(), hashes.to_vec(), path, c).unwrap())
        .collect();
    run(rng, sessions)
}

/// The independent check (not our code): `k256` verifies the prehash signature, `s` is low, and
/// ecrecover with `v` returns the group key.
pub fn assert_valid(public_key_uncompressed: &[u8; 65], hash: &MessageHash, sig: &Signature) {
    let vk = VerifyingKey::from_sec1_bytes(public_key_uncompressed).expect("group key parses");
    let k256_sig = k256::ecdsa::Signature::from_scalars(sig.r, sig.s).expect("r, s in range");
    assert_eq!(k256_sig.normalize_s(), k256_sig, "signature must be low-s");
    vk.verify_prehash(hash.as_bytes(), &k256_sig)
        .expect("k256 verifies the signature");
    let recovered = VerifyingKey::recover_from_prehash(
        hash.as_bytes(),
        &k256_sig,
        RecoveryId::from_byte(sig.v).expect("v is 0 or 1"),
    )
    .expect("ecrecover succeeds");
    assert_eq!(
        recovered, vk,
        "ecrecover(hash, r, s, v) must return the group key"
    );
    let der = sig.to_der().unwrap();
    assert_eq!(
        k256::ecdsa::Signature::from_der(&der).unwrap(),
        k256_sig,
        "DER encodes the same signature"
    );
}

/// Every `k`-subset of `0..n`.
pub fn subsets(n: u16, k: u16) -> Vec<Vec<u16>> {
    (0u32..(1 << n))
        .filter(|m| m.count_ones() == u32::from(k))
        .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
        .collect()
}

/// The committed 2-of-3 test key (`tests/fixtures/share_v1_2of3_p*.bin`), so tests that only need
/// some key do not pay for a keygen.
pub fn shared_2_of_3() -> Vec<Arc<KeyShare>> {
    static KEY: LazyLock<Vec<Arc<KeyShare>>> = LazyLock::new(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        (0..3)
            .map(|i| {
                let bytes = std::fs::read(dir.join(format!("share_v1_2of3_p{i}.bin"))).unwrap();
                Arc::new(KeyShare::from_bytes(&bytes).unwrap())
            })
            .collect()
    });
    KEY.clone()
}

/// Shuffles in place with the test RNG.
pub fn shuffle<T>(rng: &mut ChaCha20Rng, v: &mut [T]) {
    v.shuffle(rng);
}
