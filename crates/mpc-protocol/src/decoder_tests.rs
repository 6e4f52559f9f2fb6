//! Property tests over the protocols' message decoders: a malicious participant (who holds genuine
//! channel keys) seals arbitrary content into otherwise well-formed frames. The victim must never
//! panic, and whatever it rejects must name the sender.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use proptest::prelude::*;

use crate::channel::{IdentityKey, RosterEntry, SecureChannel, SessionKeys};
use crate::keygen::Fragment;
use crate::round::{Frame, Message};
use crate::share::KeyShare;
use crate::types::{MessageHash, Parameters, PartyIndex, SessionId};
use crate::{ProtocolError, keygen, sign};

fn idx(i: u16) -> PartyIndex {
    PartyIndex::new(i).unwrap()
}

/// (evil party 0's channel, victim party 1's channel).
fn pair() -> (SecureChannel, SecureChannel) {
    let sid = SessionId::new(b"decoder-tests".to_vec()).unwrap();
    let ids = [
        IdentityKey::generate().unwrap(),
        IdentityKey::generate().unwrap(),
    ];
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
    let mut ch = keys
        .into_iter()
        .map(|k| SecureChannel::establish(k, &roster).unwrap());
    (ch.next().unwrap(), ch.next().unwrap())
}

fn forge(evil: &SecureChannel, round: u16, frame: &Frame) -> Message {
    let plain = postcard::to_allocvec(frame).unwrap();
    Message {
        from: idx(0),
        to: idx(1),
        round,
        payload: evil.seal(idx(1), round, &plain).unwrap(),
    }
}

fn fixture_share(i: usize) -> Arc<KeyShare> {
    let bytes: &[u8] = match i {
        0 => include_bytes!("../tests/fixtures/share_v1_2of3_p0.bin"),
        _ => include_bytes!("../tests/fixtures/share_v1_2of3_p1.bin"),
    };
    Arc::new(KeyShare::from_bytes(bytes).unwrap())
}

fn check(result: Result<Vec<Message>, ProtocolError>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert_eq!(e.blamed_party(), Some(idx(0)), "{}", e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Keygen round 1: the private part must be a polynomial fragment.
    #[test]
    fn keygen_round1_private_part(p2p in proptest::collection::vec(any::<u8>(), 0..80)) {
        let (evil, victim) = pair();
        let mut s = keygen(Parameters::new(2, 2).unwrap(), victim).unwrap();
        s.start().unwrap();
        check(s.handle(forge(&evil, 1, &Frame { broadcast: None, p2p: Some(p2p), echo: None })))?;
    }

    /// Keygen round 2, after a well-formed round 1: broadcast and private parts are arbitrary.
    #[test]
    fn keygen_round2_parts(bc in proptest::collection::vec(any::<u8>(), 0..120), p2p in proptest::collection::vec(any::<u8>(), 0..120)) {
        let (evil, victim) = pair();
        let mut s = keygen(Parameters::new(2, 2).unwrap(), victim).unwrap();
        s.start().unwrap();
        let fragment = crate::dkls::encode(&Fragment { scalar: k256::Scalar::ONE }).unwrap();
        s.handle(forge(&evil, 1, &Frame { broadcast: None, p2p: Some(fragment), echo: None })).unwrap();
        check(s.handle(forge(&evil, 2, &Frame { broadcast: Some(bc), p2p: Some(p2p), echo: None })))?;
    }

    /// Signing round 1: the private part must be the library's round-1 message for us.
    #[test]
    fn sign_round1_private_part(p2p in proptest::collection::vec(any::<u8>(), 0..400)) {
        let (evil, victim) = pair();
        let mut s = sign(fixture_share(1), MessageHash::new([7; 32]), victim).unwrap();
        s.start().unwrap();
        check(s.handle(forge(&evil, 1, &Frame { broadcast: None, p2p: Some(p2p), echo: None })))?;
    }
}

/// A well-formed library message that names the wrong sender is rejected and blamed.
#[test]
fn sign_message_naming_another_sender_is_blamed() {
    let (evil, victim) = pair();
    let mut s = sign(fixture_share(1), MessageHash::new([7; 32]), victim).unwrap();
    s.start().unwrap();
    // A genuine round-1 message of party 0 to party 1, but relabelled to claim party 1 sent it.
    let share0 = fixture_share(0);
    let data = dkls23::protocols::signing::SignData {
        sign_id: SessionId::new(b"decoder-tests".to_vec())
            .unwrap()
            .derive("sign"),
        counterparties: vec![idx(1).to_dkls().unwrap()],
        message_hash: [7; 32],
    };
    let (_, _, mut transmit) = share0.party().sign_phase1(&data).unwrap();
    let mut m = transmit.remove(0);
    m.parties.sender = idx(1).to_dkls().unwrap();
    // A frame carries the list of the batch's messages (one here).
    let p2p = crate::dkls::encode(&vec![m]).unwrap();
    let err = s
        .handle(forge(
            &evil,
            1,
            &Frame {
                broadcast: None,
                p2p: Some(p2p),
                echo: None,
            },
        ))
        .unwrap_err();
    assert_eq!(err.blamed_party(), Some(idx(0)), "{err}");
    assert!(
        err.to_string().contains("wrong sender or receiver"),
        "{err}"
    );
}
