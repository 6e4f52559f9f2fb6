//! Misbehaving parties and a hostile network: every bad message aborts the receiving session
//! with an error that names the party it came from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;

use common::*;
use mpc_protocol::{Message, Misbehaviour, Parameters, PartyIndex, ProtocolError, Session, Sign};
use rand::RngExt;
use rand_chacha::ChaCha20Rng;

/// A signing session of the committed 2-of-3 key for `signers`.
fn signing(r: &mut ChaCha20Rng, signers: &[u16]) -> Vec<Session<Sign>> {
    let shares = shared_2_of_3();
    let sid = random_session_id(r);
    let hash = random_hash(r);
    let indices: Vec<PartyIndex> = signers.iter().map(|i| idx(*i)).collect();
    channels(&sid, &indices)
        .into_iter()
        .map(|c| {
            let me = c.me().get() as usize;
            mpc_protocol::sign(shares[me].clone(), hash, c).unwrap()
        })
        .collect()
}

/// Runs a 0+1 signing session where `mutate` rewrites the first message from party 0 in `round`,
/// and returns the error of the party that rejected it.
fn sign_with_fault(
    r: &mut ChaCha20Rng,
    round: u16,
    mutate: impl Fn(&mut ChaCha20Rng, Message) -> Message,
) -> ProtocolError {
    let sessions = signing(r, &[0, 1]);
    let done = RefCell::new(false);
    let mut fault_rng = ChaCha20Rng::seed_from_u64(r.random());
    let failure = run_with(r, sessions, |m| {
        if m.from == idx(0) && m.round == round && !*done.borrow() {
            *done.borrow_mut() = true;
            Fault::Replace(mutate(&mut fault_rng, m.clone()))
        } else {
            Fault::Pass
        }
    })
    .expect_err("the fault went unnoticed");
    assert_eq!(failure.at(), idx(1), "the recipient rejects it");
    failure.error().clone()
}

fn assert_blames(err: &ProtocolError, party: u16, kind: impl Fn(&Misbehaviour) -> bool) {
    match err {
        ProtocolError::Misbehaviour { party: p, kind: k } => {
            assert_eq!(*p, idx(party), "{err}");
            assert!(kind(k), "unexpected kind: {err}");
        }
        other => panic!("expected misbehaviour of party {party}, got {other}"),
    }
}

use rand::SeedableRng;

#[test]
fn tampered_ciphertext_in_any_round_is_blamed_on_its_sender() {
    let mut r = rng("tampered_ciphertext_in_any_round_is_blamed_on_its_sender");
    // Rounds 1-3 of signing plus the echo round 4.
    for round in 1..=4 {
        let err = sign_with_fault(&mut r, round, |fr, mut m| {
            let i = fr.random_range(0..m.payload.len());
            m.payload[i] ^= 1 << fr.random_range(0..8);
            m
        });
        assert_blames(&err, 0, |k| matches!(k, Misbehaviour::Undecryptable));
    }
}

#[test]
fn garbage_payload_is_blamed_on_its_sender() {
    let mut r = rng("garbage_payload_is_blamed_on_its_sender");
    for round in 1..=4 {
        let err = sign_with_fault(&mut r, round, |fr, mut m| {
            let len = fr.random_range(0..2000);
            m.payload = (0..len).map(|_| fr.random()).collect();
            m
        });
        assert_blames(&err, 0, |k| matches!(k, Misbehaviour::Undecryptable));
    }
}

#[test]
fn wrong_round_is_blamed_on_its_sender() {
    let mut r = rng("wrong_round_is_blamed_on_its_sender");
    let err = sign_with_fault(&mut r, 1, |_, mut m| {
        m.round = 9;
        m
    });
    assert_blames(&err, 0, |k| {
        matches!(k, Misbehaviour::WrongRound { round: 9 })
    });
    // Relabelling a genuine message to another existing round breaks its authentication.
    let err = sign_with_fault(&mut r, 1, |_, mut m| {
        m.round = 2;
        m
    });
    assert_blames(&err, 0, |k| matches!(k, Misbehaviour::Undecryptable));
}

#[test]
fn duplicate_is_blamed_on_its_sender() {
    let mut r = rng("duplicate_is_blamed_on_its_sender");
    for round in 1..=3 {
        let sessions = signing(&mut r, &[0, 1]);
        let done = RefCell::new(false);
        let failure = run_with(&mut r, sessions, |m| {
            if m.from == idx(0) && m.round == round && !*done.borrow() {
                *done.borrow_mut() = true;
                Fault::Also(m.clone())
            } else {
                Fault::Pass
            }
        })
        .expect_err("duplicate accepted");
        assert_blames(failure.error(), 0, |k| {
            matches!(k, Misbehaviour::Duplicate { .. })
        });
    }
}

#[test]
fn replay_from_another_session_is_rejected() {
    let mut r = rng("replay_from_another_session_is_rejected");
    // Record the messages of one complete session between the same two parties...
    let recorded = RefCell::new(Vec::new());
    let first = signing(&mut r, &[0, 1]);
    run_with(&mut r, first, |m| {
        recorded.borrow_mut().push(m.clone());
        Fault::Pass
    })
    .unwrap();
    // ...and replay one of them into a new session in place of the genuine one.
    for round in 1..=3u16 {
        let old = recorded
            .borrow()
            .iter()
            .find(|m| m.from == idx(0) && m.round == round)
            .cloned()
            .unwrap();
        let err = sign_with_fault(&mut r, round, |_, _| old.clone());
        assert_blames(&err, 0, |k| matches!(k, Misbehaviour::Undecryptable));
    }
}

#[test]
fn misaddressed_and_reflected_messages_are_rejected() {
    let mut r = rng("misaddressed_and_reflected_messages_are_rejected");
    // Keygen 2-of-3: a round-1 message from 0 to 1 is handed to 2.
    let params = Parameters::new(2, 3).unwrap();
    let sid = random_session_id(&mut r);
    let indices: Vec<PartyIndex> = params.indices().collect();
    let sessions: Vec<_> = channels(&sid, &indices)
        .into_iter()
        .map(|c| mpc_protocol::keygen(params, c).unwrap())
        .collect();
    let failure = run_with(&mut r, sessions, |m| {
        if m.from == idx(0) && m.to == idx(1) && m.round == 1 {
            Fault::DeliverTo(idx(2), m.clone())
        } else {
            Fault::Pass
        }
    })
    .expect_err("misaddressed message accepted");
    assert_eq!(failure.at(), idx(2));
    assert_blames(failure.error(), 0, |k| {
        matches!(k, Misbehaviour::Misaddressed { .. })
    });

    // A message from 0 to 1, relabelled as 1 → 0 and sent back to 0.
    let err_at_0 = {
        let sessions = signing(&mut r, &[0, 1]);
        let done = RefCell::new(false);
        run_with(&mut r, sessions, |m| {
            if m.from == idx(0) && m.round == 1 && !*done.borrow() {
                *done.borrow_mut() = true;
                Fault::Replace(Message {
                    from: idx(1),
                    to: idx(0),
                    ..m.clone()
                })
            } else {
                Fault::Pass
            }
        })
        .expect_err("reflected message accepted")
    };
    assert_eq!(err_at_0.at(), idx(0));
    assert_blames(err_at_0.error(), 1, |k| {
        matches!(k, Misbehaviour::Undecryptable)
    });
}

#[test]
fn a_silent_party_is_named_by_waiting_for() {
    let mut r = rng("a_silent_party_is_named_by_waiting_for");
    let sessions = signing(&mut r, &[1, 2]);
    // Party 2 goes silent after round 1.
    let failure = run_with(&mut r, sessions, |m| {
        if m.from == idx(2) && m.round >= 2 {
            Fault::Drop
        } else {
            Fault::Pass
        }
    })
    .expect_err("finished without party 2");
    match failure {
        // Party 1 waits for party 2's round-2 message (party 2 may then wait for party 1).
        Failure::Stalled(stuck) => assert!(stuck.contains(&(idx(1), vec![idx(2)])), "{stuck:?}"),
        other => panic!("expected a stall, got {other:?}"),
    }
}

#[test]
fn keygen_garbage_from_a_party_aborts_naming_it() {
    let mut r = rng("keygen_garbage_from_a_party_aborts_naming_it");
    let params = Parameters::new(2, 3).unwrap();
    let sid = random_session_id(&mut r);
    let indices: Vec<PartyIndex> = params.indices().collect();
    let sessions: Vec<_> = channels(&sid, &indices)
        .into_iter()
        .map(|c| mpc_protocol::keygen(params, c).unwrap())
        .collect();
    let failure = run_with(&mut r, sessions, |m| {
        if m.from == idx(2) && m.round == 1 {
            let mut m = m.clone();
            m.payload = vec![0xde, 0xad, 0xbe, 0xef];
            Fault::Replace(m)
        } else {
            Fault::Pass
        }
    })
    .expect_err("garbage accepted");
    assert_ne!(failure.at(), idx(2));
    assert_blames(failure.error(), 2, |k| {
        matches!(k, Misbehaviour::Undecryptable)
    });
}
