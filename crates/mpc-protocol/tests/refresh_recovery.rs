//! Refresh and recovery keep the public key; old and new shares never sign together.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use mpc_protocol::{KeyShare, PartyIndex, ProtocolError, RecoveryRole, SessionId};
use rand_chacha::ChaCha20Rng;

fn refresh_all(r: &mut ChaCha20Rng, shares: &[Arc<KeyShare>]) -> Vec<Arc<KeyShare>> {
    let sid = random_session_id(r);
    let indices: Vec<PartyIndex> = shares.iter().map(|s| s.index()).collect();
    let sessions = shares
        .iter()
        .zip(channels(&sid, &indices))
        .map(|(s, c)| mpc_protocol::refresh(s, c).unwrap())
        .collect();
    run(r, sessions).into_iter().map(Arc::new).collect()
}

/// Recovers `target` with `helpers`; every other index takes part as a holder.
fn recover(
    r: &mut ChaCha20Rng,
    shares: &[Arc<KeyShare>],
    target: u16,
    helpers: &[u16],
) -> Vec<Arc<KeyShare>> {
    let params = shares[0].parameters();
    let pk = shares[0].public_key();
    let sid = random_session_id(r);
    let indices: Vec<PartyIndex> = params.indices().collect();
    let helpers: Vec<PartyIndex> = helpers.iter().map(|h| idx(*h)).collect();
    let sessions = channels(&sid, &indices)
        .into_iter()
        .map(|c| {
            let me = c.me();
            let role = if me == idx(target) {
                RecoveryRole::NewHolder {
                    parameters: params,
                    public_key: pk,
                }
            } else {
                RecoveryRole::Holder(&shares[me.get() as usize])
            };
            mpc_protocol::recover(role, idx(target), &helpers, c).unwrap()
        })
        .collect();
    run(r, sessions).into_iter().map(Arc::new).collect()
}

/// Signing with this set must fail (the library detects shares from different epochs).
fn sign_fails(r: &mut ChaCha20Rng, signers: &[Arc<KeyShare>]) -> ProtocolError {
    let sid = random_session_id(r);
    let indices: Vec<PartyIndex> = signers.iter().map(|s| s.index()).collect();
    let hash = random_hash(r);
    let sessions = signers
        .iter()
        .zip(channels(&sid, &indices))
        .map(|(s, c)| mpc_protocol::sign(s.clone(), hash, c).unwrap())
        .collect();
    run_with(r, sessions, |_| Fault::Pass)
        .expect_err("mixing old and new shares must fail")
        .error()
        .clone()
}

fn sign_ok(r: &mut ChaCha20Rng, signers: &[Arc<KeyShare>]) {
    let hash = random_hash(r);
    let sigs = sign(r, signers, hash);
    assert_valid(&signers[0].public_key().to_uncompressed(), &hash, &sigs[0]);
}

#[test]
fn refresh_keeps_the_key_and_retires_old_shares() {
    let mut r = rng("refresh_keeps_the_key_and_retires_old_shares");
    let old = shared_2_of_3();
    let new = refresh_all(&mut r, &old);
    for (o, n) in old.iter().zip(&new) {
        assert_eq!(o.public_key(), n.public_key());
        assert_eq!(o.eth_address(), n.eth_address());
        assert_eq!(o.index(), n.index());
        assert_ne!(
            *o.to_bytes().unwrap(),
            *n.to_bytes().unwrap(),
            "the share changed"
        );
    }
    for pair in subsets(3, 2) {
        sign_ok(
            &mut r,
            &[new[pair[0] as usize].clone(), new[pair[1] as usize].clone()],
        );
    }
    let err = sign_fails(&mut r, &[old[0].clone(), new[1].clone()]);
    assert!(!matches!(err, ProtocolError::Internal(_)), "{err}");
    sign_fails(&mut r, &[new[0].clone(), old[2].clone()]);
}

#[test]
fn recovery_of_each_index_of_a_two_of_three_key() {
    let mut r = rng("recovery_of_each_index_of_a_two_of_three_key");
    let old = shared_2_of_3();
    let address = old[0].eth_address();
    for target in 0..3u16 {
        let helpers: Vec<u16> = (0..3).filter(|i| *i != target).collect();
        let new = recover(&mut r, &old, target, &helpers);
        for s in &new {
            assert_eq!(s.eth_address(), address, "same address after recovery");
        }
        let rebuilt = new[target as usize].clone();
        assert_eq!(rebuilt.index(), idx(target));
        for other in &helpers {
            sign_ok(&mut r, &[rebuilt.clone(), new[*other as usize].clone()]);
        }
        // The lost share (if it ever turns up) no longer signs with the recovered group.
        sign_fails(
            &mut r,
            &[
                old[target as usize].clone(),
                new[helpers[0] as usize].clone(),
            ],
        );
    }
}

#[test]
fn recovery_with_a_bystander_in_a_three_of_five_key() {
    let mut r = rng("recovery_with_a_bystander_in_a_three_of_five_key");
    let old: Vec<Arc<KeyShare>> = keygen(&mut r, 3, 5).into_iter().map(Arc::new).collect();
    // Index 4 is lost; 0, 1, 2 help; 3 only takes part in the refresh.
    let new = recover(&mut r, &old, 4, &[0, 1, 2]);
    assert!(new.iter().all(|s| s.public_key() == old[0].public_key()));
    sign_ok(&mut r, &[new[3].clone(), new[4].clone(), new[0].clone()]);
    sign_fails(&mut r, &[old[4].clone(), new[3].clone(), new[1].clone()]);
}

#[test]
fn recovery_input_is_validated() {
    let mut r = rng("recovery_input_is_validated");
    let shares = shared_2_of_3();
    let params = shares[0].parameters();
    let sid: SessionId = random_session_id(&mut r);
    let indices: Vec<PartyIndex> = params.indices().collect();
    let new_holder = || RecoveryRole::NewHolder {
        parameters: params,
        public_key: shares[0].public_key(),
    };
    let cases: Vec<(&str, Vec<u16>, u16, bool)> = vec![
        ("too few helpers", vec![1], 0, true),
        ("target among helpers", vec![0, 1], 0, true),
        ("duplicate helper", vec![1, 1], 0, true),
        ("helper out of range", vec![1, 7], 0, true),
    ];
    for (name, helpers, target, expect_err) in cases {
        let ch = channels(&sid, &indices).remove(0);
        let helpers: Vec<PartyIndex> = helpers
            .iter()
            .filter_map(|h| PartyIndex::new(*h).ok())
            .collect();
        let res = mpc_protocol::recover(new_holder(), idx(target), &helpers, ch);
        assert_eq!(res.is_err(), expect_err, "{name}");
        if let Err(e) = res {
            assert!(matches!(e, ProtocolError::InvalidInput(_)), "{name}: {e}");
        }
    }
    // A holder cannot claim the recovered index, and the new holder must sit at it.
    let ch = channels(&sid, &indices).remove(0);
    assert!(
        mpc_protocol::recover(
            RecoveryRole::Holder(&shares[0]),
            idx(0),
            &[idx(1), idx(2)],
            ch
        )
        .is_err()
    );
    let ch = channels(&sid, &indices).remove(1);
    assert!(mpc_protocol::recover(new_holder(), idx(0), &[idx(1), idx(2)], ch).is_err());
}

#[test]
fn new_holder_rejects_helpers_of_another_key() {
    let mut r = rng("new_holder_rejects_helpers_of_another_key");
    let shares = shared_2_of_3();
    let other_key = keygen(&mut r, 2, 3);
    let params = shares[0].parameters();
    let sid = random_session_id(&mut r);
    let indices: Vec<PartyIndex> = params.indices().collect();
    let helpers = [idx(1), idx(2)];
    let sessions = channels(&sid, &indices)
        .into_iter()
        .map(|c| {
            let me = c.me();
            let role = if me == idx(0) {
                // The new holder expects `other_key`'s public key.
                RecoveryRole::NewHolder {
                    parameters: params,
                    public_key: other_key[0].public_key(),
                }
            } else {
                RecoveryRole::Holder(&shares[me.get() as usize])
            };
            mpc_protocol::recover(role, idx(0), &helpers, c).unwrap()
        })
        .collect();
    let failure = run_with(&mut r, sessions, |_| Fault::Pass).expect_err("must fail");
    assert_eq!(failure.at(), idx(0));
    assert!(
        helpers.contains(&failure.error().blamed_party().unwrap()),
        "{}",
        failure.error()
    );
}
