//! The round driver with a toy protocol, and a hand-driven (malicious) party that seals whatever
//! frames it likes with its genuine channel keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::{Frame, Incoming, Message, Outgoing, RoundProtocol, Session, Step};
use crate::channel::{IdentityKey, RosterEntry, SecureChannel, SessionKeys};
use crate::error::{Misbehaviour, ProtocolError};
use crate::types::{PartyIndex, SessionId};

/// (round, sender, broadcast part, private part)
type Seen = Vec<(u16, PartyIndex, Option<Vec<u8>>, Option<Vec<u8>>)>;
type Mutation = Box<dyn Fn(&SecureChannel, &SecureChannel, Message) -> Message>;
type Case = (&'static str, Mutation, fn(&Misbehaviour) -> bool);

/// Round `r` sends broadcast `[me, r]` (when `r` is a broadcast round) and p2p `[me, to, r]`;
/// the output is everything received.
pub(crate) struct Toy {
    me: PartyIndex,
    others: BTreeSet<PartyIndex>,
    rounds: u16,
    broadcast_rounds: BTreeSet<u16>,
    seen: Seen,
}

impl Toy {
    fn out(&self, round: u16) -> Outgoing {
        let me = self.me.get() as u8;
        Outgoing {
            broadcast: self
                .broadcast_rounds
                .contains(&round)
                .then(|| vec![me, round as u8]),
            p2p: self
                .others
                .iter()
                .map(|o| (*o, vec![me, o.get() as u8, round as u8]))
                .collect(),
        }
    }
}

impl RoundProtocol for Toy {
    type Output = Seen;
    fn rounds(&self) -> u16 {
        self.rounds
    }
    fn has_broadcast(&self, round: u16) -> bool {
        self.broadcast_rounds.contains(&round)
    }
    fn recipients(&self, _: u16) -> BTreeSet<PartyIndex> {
        self.others.clone()
    }
    fn senders(&self, _: u16) -> BTreeSet<PartyIndex> {
        self.others.clone()
    }
    fn start(&mut self) -> Result<Outgoing, ProtocolError> {
        Ok(self.out(1))
    }
    fn advance(
        &mut self,
        round: u16,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Step<Self::Output>, ProtocolError> {
        for (p, mut i) in received {
            self.seen.push((round, p, i.broadcast.take(), i.p2p.take()));
        }
        if round == self.rounds {
            Ok(Step::Done(std::mem::take(&mut self.seen)))
        } else {
            Ok(Step::Next(self.out(round + 1)))
        }
    }
}

fn idx(i: u16) -> PartyIndex {
    PartyIndex::new(i).unwrap()
}

/// Channels for parties 0..n of one session.
fn channels(n: u16) -> Vec<SecureChannel> {
    let sid = SessionId::new(b"toy".to_vec()).unwrap();
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
    keys.into_iter()
        .map(|k| SecureChannel::establish(k, &roster).unwrap())
        .collect()
}

fn toy(channel: SecureChannel, rounds: u16, broadcast_rounds: &[u16]) -> Session<Toy> {
    let me = channel.me();
    let others = channel.parties().into_iter().filter(|p| *p != me).collect();
    Session::new(
        Toy {
            me,
            others,
            rounds,
            broadcast_rounds: broadcast_rounds.iter().copied().collect(),
            seen: vec![],
        },
        channel,
    )
}

/// A hand-made frame from `channel`'s party.
fn forge(channel: &SecureChannel, to: u16, round: u16, frame: Frame) -> Message {
    let plain = postcard::to_allocvec(&frame).unwrap();
    Message {
        from: channel.me(),
        to: idx(to),
        round,
        payload: channel.seal(idx(to), round, &plain).unwrap(),
    }
}

fn frame(
    broadcast: Option<Vec<u8>>,
    p2p: Option<Vec<u8>>,
    echo: Option<Vec<(PartyIndex, [u8; 32])>>,
) -> Frame {
    Frame {
        broadcast,
        p2p,
        echo,
    }
}

/// Delivers everything in FIFO order until quiet; returns outputs or the first error.
fn run(
    mut sessions: Vec<Session<Toy>>,
) -> Result<Vec<<Toy as RoundProtocol>::Output>, (PartyIndex, ProtocolError)> {
    let mut queue: Vec<Message> = Vec::new();
    for s in sessions.iter_mut() {
        queue.extend(s.start().map_err(|e| (s.me(), e))?);
    }
    while let Some(m) = queue.pop() {
        let s = &mut sessions[m.to.get() as usize];
        queue.extend(s.handle(m).map_err(|e| (s.me(), e))?);
    }
    Ok(sessions
        .iter_mut()
        .map(|s| s.take_output().expect("finished"))
        .collect())
}

#[test]
fn honest_runs_complete_with_and_without_final_echo() {
    for broadcast_rounds in [&[][..], &[1], &[2], &[1, 2]] {
        let sessions = channels(3)
            .into_iter()
            .map(|c| toy(c, 2, broadcast_rounds))
            .collect();
        let outputs = run(sessions).unwrap();
        for (me, out) in outputs.iter().enumerate() {
            assert_eq!(out.len(), 4, "two rounds from two peers");
            for (round, from, b, p) in out {
                let expect_b = broadcast_rounds
                    .contains(round)
                    .then(|| vec![from.get() as u8, *round as u8]);
                assert_eq!(b, &expect_b);
                assert_eq!(p, &Some(vec![from.get() as u8, me as u8, *round as u8]));
            }
        }
    }
}

#[test]
fn messages_before_start_are_kept() {
    let mut sessions: Vec<Session<Toy>> = channels(2).into_iter().map(|c| toy(c, 1, &[])).collect();
    let first = sessions[0].start().unwrap();
    assert!(sessions[1].handle(first[0].clone()).unwrap().is_empty());
    let reply = sessions[1].start().unwrap();
    assert!(sessions[1].is_finished());
    sessions[0].handle(reply[0].clone()).unwrap();
    assert!(sessions[0].take_output().is_some() && sessions[1].take_output().is_some());
}

/// Party 0 broadcasts X to party 1 and Y to party 2 in round 1; each honest party learns of it
/// from the other's echo in round 2 and blames party 0.
#[test]
fn equivocation_is_caught_and_blamed_on_the_broadcaster() {
    let mut ch = channels(3);
    let evil = ch.remove(0);
    let mut honest: Vec<Session<Toy>> = ch.into_iter().map(|c| toy(c, 2, &[1])).collect();
    let mut queue = Vec::new();
    queue.push(forge(
        &evil,
        1,
        1,
        frame(Some(vec![0, 1]), Some(vec![0, 1, 1]), None),
    ));
    queue.push(forge(
        &evil,
        2,
        1,
        frame(Some(vec![9, 9]), Some(vec![0, 2, 1]), None),
    ));
    // Round 2: to each victim, an echo consistent with what that victim saw from us.
    for (to, ours) in [(1u16, vec![0u8, 1]), (2, vec![9, 9])] {
        let echo = vec![
            (idx(0), super::digest(1, idx(0), &ours)),
            (idx(1), super::digest(1, idx(1), &[1, 1])),
            (idx(2), super::digest(1, idx(2), &[2, 1])),
        ];
        queue.push(forge(
            &evil,
            to,
            2,
            frame(None, Some(vec![0, to as u8, 2]), Some(echo)),
        ));
    }
    for s in honest.iter_mut() {
        queue.extend(s.start().unwrap());
    }
    let mut errors = Vec::new();
    while let Some(m) = queue.pop() {
        if m.to == idx(0) {
            continue;
        }
        let s = &mut honest[m.to.get() as usize - 1];
        match s.handle(m) {
            Ok(out) => queue.extend(out),
            Err(e) => errors.push((s.me(), e)),
        }
    }
    assert!(!errors.is_empty(), "equivocation went unnoticed");
    for (_, e) in errors {
        assert_eq!(e.blamed_party(), Some(idx(0)), "{e}");
        assert!(
            matches!(
                e,
                ProtocolError::Misbehaviour {
                    kind: Misbehaviour::Equivocation { round: 1, .. },
                    ..
                }
            ),
            "{e}"
        );
    }
}

/// A party whose echo misstates what *we* broadcast is the liar.
#[test]
fn lying_echo_about_our_broadcast_blames_the_reporter() {
    let mut ch = channels(2);
    let evil = ch.remove(0);
    let mut honest = toy(ch.remove(0), 2, &[1]);
    let _ = honest.start().unwrap();
    honest
        .handle(forge(
            &evil,
            1,
            1,
            frame(Some(vec![0, 1]), Some(vec![0, 1, 1]), None),
        ))
        .unwrap();
    let echo = vec![
        (idx(0), super::digest(1, idx(0), &[0, 1])),
        (idx(1), [7u8; 32]),
    ];
    let err = honest
        .handle(forge(
            &evil,
            1,
            2,
            frame(None, Some(vec![0, 1, 2]), Some(echo)),
        ))
        .err()
        .unwrap();
    assert_eq!(err.blamed_party(), Some(idx(0)));
    assert!(matches!(
        err,
        ProtocolError::Misbehaviour {
            kind: Misbehaviour::Equivocation { .. },
            ..
        }
    ));
}

#[test]
fn bad_messages_name_their_sender() {
    let cases: Vec<Case> = vec![
        (
            "garbage payload",
            Box::new(|_, _, mut m| {
                m.payload = vec![1, 2, 3];
                m
            }),
            |k| matches!(k, Misbehaviour::Undecryptable),
        ),
        (
            "flipped byte",
            Box::new(|_, _, mut m| {
                let l = m.payload.len();
                m.payload[l - 1] ^= 1;
                m
            }),
            |k| matches!(k, Misbehaviour::Undecryptable),
        ),
        (
            "round relabelled",
            Box::new(|_, _, mut m| {
                m.round = 2;
                m
            }),
            |k| matches!(k, Misbehaviour::Undecryptable),
        ),
        (
            "round out of range",
            Box::new(|_, _, mut m| {
                m.round = 40;
                m
            }),
            |k| matches!(k, Misbehaviour::WrongRound { round: 40 }),
        ),
        (
            "round zero",
            Box::new(|_, _, mut m| {
                m.round = 0;
                m
            }),
            |k| matches!(k, Misbehaviour::WrongRound { round: 0 }),
        ),
        (
            "misaddressed",
            Box::new(|_, _, mut m| {
                m.to = idx(2);
                m
            }),
            |k| matches!(k, Misbehaviour::Misaddressed { .. }),
        ),
        (
            "sealed garbage",
            Box::new(|evil, _, m| Message {
                payload: evil.seal(idx(1), 1, b"\xff\xff\xff\xff").unwrap(),
                ..m
            }),
            |k| matches!(k, Misbehaviour::Malformed(_)),
        ),
        (
            "missing broadcast",
            Box::new(|evil, _, _| forge(evil, 1, 1, frame(None, Some(vec![0]), None))),
            |k| matches!(k, Misbehaviour::Malformed(_)),
        ),
        (
            "unexpected echo",
            Box::new(|evil, _, _| forge(evil, 1, 1, frame(Some(vec![0]), None, Some(vec![])))),
            |k| matches!(k, Misbehaviour::Malformed(_)),
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut ch = channels(3);
        let evil = ch.remove(0);
        let victim_channel = ch.remove(0);
        let mut victim = toy(victim_channel, 2, &[1]);
        let _ = victim.start().unwrap();
        let honest = forge(
            &evil,
            1,
            1,
            frame(Some(vec![0, 1]), Some(vec![0, 1, 1]), None),
        );
        let bad = mutate(&evil, &ch[0], honest);
        let err = victim
            .handle(bad)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        match &err {
            ProtocolError::Misbehaviour { party, kind } => {
                assert_eq!(*party, idx(0), "{name}: {err}");
                assert!(expected(kind), "{name}: unexpected kind {kind}");
            }
            other => panic!("{name}: not a misbehaviour: {other}"),
        }
        // The failure is final.
        let again = forge(
            &evil,
            1,
            1,
            frame(Some(vec![0, 1]), Some(vec![0, 1, 1]), None),
        );
        assert_eq!(
            victim.handle(again).err(),
            Some(err),
            "{name}: session recovered after failure"
        );
    }
}

#[test]
fn duplicates_strangers_and_own_messages_are_rejected() {
    let mut ch = channels(3);
    let evil = ch.remove(0);
    let mut victim = toy(ch.remove(0), 2, &[]);
    let _ = victim.start().unwrap();
    let m = forge(&evil, 1, 1, frame(None, Some(vec![0, 1, 1]), None));
    victim.handle(m.clone()).unwrap();
    let err = victim.handle(m).err().unwrap();
    assert!(
        matches!(err, ProtocolError::Misbehaviour { party, kind: Misbehaviour::Duplicate { round: 1 } } if party == idx(0))
    );

    let mut ch = channels(2);
    let mut victim = toy(ch.remove(1), 1, &[]);
    let stranger = Message {
        from: idx(5),
        to: idx(1),
        round: 1,
        payload: vec![0; 40],
    };
    assert_eq!(
        victim.handle(stranger).err().and_then(|e| e.blamed_party()),
        Some(idx(5))
    );
    let mut victim = toy(ch.remove(0), 1, &[]);
    let own = Message {
        from: idx(0),
        to: idx(0),
        round: 1,
        payload: vec![0; 40],
    };
    assert!(victim.handle(own).is_err());
}

#[test]
fn a_message_after_the_end_is_a_duplicate() {
    let mut sessions: Vec<Session<Toy>> = channels(2).into_iter().map(|c| toy(c, 1, &[])).collect();
    let a = sessions[0].start().unwrap();
    let b = sessions[1].start().unwrap();
    sessions[1].handle(a[0].clone()).unwrap();
    sessions[0].handle(b[0].clone()).unwrap();
    assert!(sessions[0].is_finished());
    assert!(matches!(
        sessions[0].handle(b[0].clone()),
        Err(ProtocolError::Misbehaviour {
            kind: Misbehaviour::Duplicate { .. },
            ..
        })
    ));
}

proptest! {
    /// Arbitrary payloads, addressing and rounds never panic, and whatever is rejected names the
    /// claimed sender.
    #[test]
    fn arbitrary_messages_are_rejected_with_blame(from in 0u16..4, to in 0u16..4, round in 0u16..5, payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut ch = channels(3);
        let mut victim = toy(ch.remove(1), 2, &[1]);
        let _ = victim.start();
        let from = idx(from);
        match victim.handle(Message { from, to: idx(to), round, payload }) {
            Ok(_) => prop_assert!(false, "random bytes were accepted"),
            Err(e) => prop_assert_eq!(e.blamed_party(), Some(from)),
        }
    }

    /// Arbitrary plaintext sealed with a genuine key (a malicious participant) is decoded safely.
    #[test]
    fn arbitrary_sealed_plaintext_is_decoded_safely(plain in proptest::collection::vec(any::<u8>(), 0..300), round in 1u16..3) {
        let mut ch = channels(2);
        let evil = ch.remove(0);
        let mut victim = toy(ch.remove(0), 2, &[1]);
        let _ = victim.start();
        let m = Message { from: idx(0), to: idx(1), round, payload: evil.seal(idx(1), round, &plain).unwrap() };
        if let Err(e) = victim.handle(m) {
            prop_assert_eq!(e.blamed_party(), Some(idx(0)));
        }
    }
}
