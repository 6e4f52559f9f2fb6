//! Keygen and signing over the simulated network; every signature is checked with `k256`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use mpc_protocol::{KeyShare, MessageHash};

fn check_key(shares: &[KeyShare], t: u16, n: u16) {
    assert_eq!(shares.len(), usize::from(n));
    let pk = shares[0].public_key();
    for (i, s) in shares.iter().enumerate() {
        assert_eq!(s.index().get() as usize, i);
        assert_eq!(s.public_key(), pk, "all parties agree on the group key");
        assert_eq!(s.parameters().threshold(), t);
        assert_eq!(s.parameters().parties(), n);
    }
    assert!(pk.to_hex().starts_with("04") && pk.to_hex().len() == 130);
    let addr = pk.eth_address();
    assert!(addr.starts_with("0x") && addr.len() == 42);
}

/// Keygen, then signs with every `t`-subset (or the first few for larger keys).
fn keygen_and_sign(t: u16, n: u16, max_subsets: usize) {
    let mut r = rng(&format!("keygen_and_sign {t}-of-{n}"));
    let shares = keygen(&mut r, t, n);
    check_key(&shares, t, n);
    let pk = shares[0].public_key().to_uncompressed();
    let shares: Vec<Arc<KeyShare>> = shares.into_iter().map(Arc::new).collect();
    let mut subs = subsets(n, t);
    shuffle(&mut r, &mut subs);
    for subset in subs.into_iter().take(max_subsets) {
        let signers: Vec<Arc<KeyShare>> =
            subset.iter().map(|i| shares[*i as usize].clone()).collect();
        let hash = random_hash(&mut r);
        let sigs = sign(&mut r, &signers, hash);
        for s in &sigs {
            assert_eq!(s, &sigs[0], "all signers output the same signature");
        }
        assert_valid(&pk, &hash, &sigs[0]);
    }
}

#[test]
fn two_of_three_every_pair_signs() {
    keygen_and_sign(2, 3, usize::MAX);
}

#[test]
fn two_of_two() {
    keygen_and_sign(2, 2, usize::MAX);
}

#[test]
fn three_of_five_every_triple_signs() {
    keygen_and_sign(3, 5, usize::MAX);
}

#[test]
fn four_of_seven() {
    keygen_and_sign(4, 7, 3);
}

#[test]
fn known_hashes_sign_correctly() {
    let mut r = rng("known_hashes_sign_correctly");
    let shares = shared_2_of_3();
    let pk = shares[0].public_key().to_uncompressed();
    for hash in [
        MessageHash::new([1u8; 32]),
        MessageHash::new([0xff; 32]),
        MessageHash::from_hex(&format!("0x{}", "a5".repeat(32))).unwrap(),
    ] {
        let sigs = sign(&mut r, &[shares[0].clone(), shares[2].clone()], hash);
        assert_valid(&pk, &hash, &sigs[0]);
    }
}

#[test]
fn signing_rejects_wrong_signer_sets() {
    let mut r = rng("signing_rejects_wrong_signer_sets");
    let shares = shared_2_of_3();
    let hash = random_hash(&mut r);
    // Too few (only one signer) and too many (all three) for a 2-of-3 key.
    for set in [vec![0u16], vec![0, 1, 2]] {
        let sid = random_session_id(&mut r);
        let indices: Vec<_> = set.iter().map(|i| idx(*i)).collect();
        let ch = channels(&sid, &indices).remove(0);
        let err = mpc_protocol::sign(shares[set[0] as usize].clone(), hash, ch)
            .err()
            .unwrap();
        let text = err.to_string();
        if set.len() == 1 {
            assert!(text.contains("insufficient participants"), "{text}");
        } else {
            assert!(text.contains("exactly 2 signers"), "{text}");
        }
    }
    // A share used as another party.
    let sid = random_session_id(&mut r);
    let ch = channels(&sid, &[idx(0), idx(1)]).remove(1);
    assert!(mpc_protocol::sign(shares[0].clone(), hash, ch).is_err());
}

#[test]
fn different_hashes_do_not_mix() {
    // Two signers asked to sign different hashes: the library's session binding aborts.
    let mut r = rng("different_hashes_do_not_mix");
    let shares = shared_2_of_3();
    let sid = random_session_id(&mut r);
    let ch = channels(&sid, &[idx(0), idx(1)]);
    let mut it = ch.into_iter();
    let a = mpc_protocol::sign(shares[0].clone(), random_hash(&mut r), it.next().unwrap()).unwrap();
    let b = mpc_protocol::sign(shares[1].clone(), random_hash(&mut r), it.next().unwrap()).unwrap();
    let failure =
        run_with(&mut r, vec![a, b], |_| Fault::Pass).expect_err("mismatched hashes must abort");
    // Nobody can be proven at fault: the session aborts without blame.
    assert!(
        matches!(failure.error(), mpc_protocol::ProtocolError::Aborted(_))
            && failure.error().blamed_party().is_none(),
        "{}",
        failure.error()
    );
}
