//! BIP32 derivation and batch signing: every signature is checked with `k256` under the child
//! key computed publicly (from the group key and the chain code), never by the signers' code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use mpc_protocol::{DerivationPath, KeyShare, MessageHash, derive_public_key};

fn shares(r: &mut rand_chacha::ChaCha20Rng, t: u16, n: u16) -> Vec<Arc<KeyShare>> {
    keygen(r, t, n).into_iter().map(Arc::new).collect()
}

#[test]
fn chain_code_is_common_and_joint() {
    let mut r = rng("chain_code_is_common_and_joint");
    let a = shares(&mut r, 2, 3);
    let b = shares(&mut r, 2, 3);
    assert!(a.iter().all(|s| s.chain_code() == a[0].chain_code()));
    assert_ne!(a[0].chain_code(), [0u8; 32]);
    assert_ne!(a[0].chain_code(), b[0].chain_code(), "fresh per keygen");
}

#[test]
fn batch_under_a_derived_key_2_of_3_and_3_of_5() {
    for (t, n, signers) in [(2u16, 3u16, vec![0usize, 2]), (3, 5, vec![1, 3, 4])] {
        let mut r = rng(&format!("batch derived {t}-of-{n}"));
        let all = shares(&mut r, t, n);
        let path = DerivationPath::parse("m/0/7").unwrap();
        let child = derive_public_key(&all[0].public_key(), &all[0].chain_code(), &path).unwrap();
        assert_ne!(child, all[0].public_key());
        let hashes: Vec<MessageHash> = (0..5).map(|_| random_hash(&mut r)).collect();
        let signers: Vec<Arc<KeyShare>> = signers.iter().map(|i| all[*i].clone()).collect();
        let out = sign_batch(&mut r, &signers, &hashes, Some(&path));
        for sigs in &out {
            assert_eq!(sigs, &out[0], "all signers output the same batch");
        }
        assert_eq!(out[0].len(), hashes.len());
        for (hash, sig) in hashes.iter().zip(&out[0]) {
            assert_valid(&child.to_uncompressed(), hash, sig);
        }
    }
}

#[test]
fn batch_without_path_signs_under_the_group_key() {
    let mut r = rng("batch without path");
    let all = shares(&mut r, 2, 3);
    let hashes: Vec<MessageHash> = (0..3).map(|_| random_hash(&mut r)).collect();
    let out = sign_batch(&mut r, &all[..2], &hashes, None);
    for (hash, sig) in hashes.iter().zip(&out[0]) {
        assert_valid(&all[0].public_key().to_uncompressed(), hash, sig);
    }
}

#[test]
fn batch_bounds_are_refused() {
    let mut r = rng("batch bounds");
    let all = shares(&mut r, 2, 3);
    let sid = random_session_id(&mut r);
    for k in [0usize, mpc_protocol::MAX_BATCH + 1] {
        let ch = channels(&sid, &[idx(0), idx(1)]).remove(0);
        let hashes = vec![random_hash(&mut r); k];
        assert!(mpc_protocol::sign_batch(all[0].clone(), hashes, None, ch).is_err());
    }
}
