//! The round driver shared by every protocol: addressing, round bookkeeping, sealing, and the
//! broadcast consistency check.
//!
//! A protocol ([`RoundProtocol`]) only says, per round, whom it sends to, whom it expects a
//! message from, and what it sends; [`Session`] does the rest:
//! - every message is one sealed [`Frame`] per (sender, recipient, round), carrying the sender's
//!   broadcast part and its private part for that recipient;
//! - a message that is misaddressed, from a stranger, for a round the sender has no business in,
//!   a second one for the same round, undecryptable or malformed aborts the session and names
//!   the sender;
//! - messages for later rounds are buffered, so parties may run ahead;
//! - broadcasts are sent as per-recipient copies, so each frame of round r+1 carries an *echo*:
//!   the digests of every round-r broadcast as its sender saw them. A party that sent different
//!   broadcasts to different recipients is caught by comparing echoes. When the last round has a
//!   broadcast, one extra echo-only round follows before the output is released.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::Zeroize;

use crate::channel::SecureChannel;
use crate::error::{Misbehaviour, ProtocolError};
use crate::types::PartyIndex;

/// One sealed protocol message: what the transport carries. `payload` is ciphertext; `from`,
/// `to` and `round` are authenticated by it (a message with any of them changed does not open).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub from: PartyIndex,
    pub to: PartyIndex,
    pub round: u16,
    pub payload: Vec<u8>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Message({} -> {}, round {}, {} bytes)",
            self.from,
            self.to,
            self.round,
            self.payload.len()
        )
    }
}

/// What one party sends in one round, before sealing (internal to the engine).
#[doc(hidden)]
#[derive(Default)]
pub struct Outgoing {
    /// Sent to every recipient of the round.
    pub(crate) broadcast: Option<Vec<u8>>,
    /// Sent to one recipient each.
    pub(crate) p2p: BTreeMap<PartyIndex, Vec<u8>>,
}

/// What one party received from one sender in one round (internal to the engine).
#[doc(hidden)]
pub struct Incoming {
    pub(crate) broadcast: Option<Vec<u8>>,
    pub(crate) p2p: Option<Vec<u8>>,
}

#[doc(hidden)]
pub enum Step<O> {
    /// The messages of the next round.
    Next(Outgoing),
    Done(O),
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Keygen {}
    impl Sealed for crate::Sign {}
    impl Sealed for crate::Refresh {}
    impl Sealed for crate::Recovery {}
    #[cfg(test)]
    impl Sealed for super::tests::Toy {}
}

/// One protocol as a sequence of rounds (numbered from 1): [`Keygen`](crate::Keygen),
/// [`Sign`](crate::Sign), [`Refresh`](crate::Refresh), [`Recovery`](crate::Recovery). Sealed: the
/// methods are the engine's internals; drive a protocol through [`Session`].
pub trait RoundProtocol: sealed::Sealed {
    /// What the protocol produces.
    type Output;

    /// Number of message rounds.
    #[doc(hidden)]
    fn rounds(&self) -> u16;
    /// Whether the round's messages have a broadcast part (the same for every sender).
    #[doc(hidden)]
    fn has_broadcast(&self, round: u16) -> bool;
    /// The parties this party sends a frame to in `round`.
    #[doc(hidden)]
    fn recipients(&self, round: u16) -> BTreeSet<PartyIndex>;
    /// The parties this party expects exactly one frame from in `round`.
    #[doc(hidden)]
    fn senders(&self, round: u16) -> BTreeSet<PartyIndex>;
    /// The messages of round 1.
    #[doc(hidden)]
    fn start(&mut self) -> Result<Outgoing, ProtocolError>;
    /// Consumes everything received in `round` and returns the next round's messages or the
    /// output.
    #[doc(hidden)]
    fn advance(
        &mut self,
        round: u16,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Step<Self::Output>, ProtocolError>;
}

/// The plaintext inside a payload.
#[derive(Serialize, Deserialize)]
pub(crate) struct Frame {
    #[serde(with = "serde_bytes")]
    pub(crate) broadcast: Option<Vec<u8>>,
    #[serde(with = "serde_bytes")]
    pub(crate) p2p: Option<Vec<u8>>,
    /// The previous round's broadcasts as the sender saw them: (broadcaster, digest).
    pub(crate) echo: Option<Vec<(PartyIndex, [u8; 32])>>,
}

type Echo = BTreeMap<PartyIndex, [u8; 32]>;

// Round-1 private parts of DKG and refresh are secret polynomial evaluations: wipe every buffer
// that held plaintext.
impl Drop for Frame {
    fn drop(&mut self) {
        self.broadcast.zeroize();
        self.p2p.zeroize();
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.broadcast.zeroize();
        self.p2p.zeroize();
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        self.broadcast.zeroize();
        self.p2p.values_mut().for_each(Zeroize::zeroize);
    }
}

/// A running protocol instance of one party. Feed it every [`Message`] addressed to this party
/// with [`handle`](Session::handle), send whatever it returns, and collect the result with
/// [`take_output`](Session::take_output). The first error is final: the session stays failed.
pub struct Session<P: RoundProtocol> {
    protocol: P,
    channel: SecureChannel,
    started: bool,
    /// The round whose messages are being collected.
    round: u16,
    buffer: BTreeMap<(u16, PartyIndex), Frame>,
    /// This party's view of each broadcast round: (broadcaster → digest).
    echoes: BTreeMap<u16, Echo>,
    /// The digest of this party's own broadcast per round.
    own_broadcast: BTreeMap<u16, [u8; 32]>,
    /// Output computed but held back until the final echo round checks out.
    pending: Option<P::Output>,
    output: Option<P::Output>,
    done: bool,
    failed: Option<ProtocolError>,
}

impl<P: RoundProtocol> fmt::Debug for Session<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("me", &self.channel.me())
            .field("round", &self.round)
            .field("done", &self.done)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<P: RoundProtocol> Session<P> {
    pub(crate) fn new(protocol: P, channel: SecureChannel) -> Self {
        Self {
            protocol,
            channel,
            started: false,
            round: 1,
            buffer: BTreeMap::new(),
            echoes: BTreeMap::new(),
            own_broadcast: BTreeMap::new(),
            pending: None,
            output: None,
            done: false,
            failed: None,
        }
    }

    /// This party's index.
    pub fn me(&self) -> PartyIndex {
        self.channel.me()
    }

    /// The round being collected (the echo round counts as one past the protocol's last).
    pub fn current_round(&self) -> u16 {
        self.round
    }

    /// The parties whose message for the current round has not arrived: whom to blame on timeout.
    pub fn waiting_for(&self) -> Vec<PartyIndex> {
        if self.done || self.failed.is_some() {
            return Vec::new();
        }
        self.expected_senders(self.round)
            .into_iter()
            .filter(|p| !self.buffer.contains_key(&(self.round, *p)))
            .collect()
    }

    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// The output, once: `Some` after the last message was handled.
    pub fn take_output(&mut self) -> Option<P::Output> {
        self.output.take()
    }

    /// Sends the first round. Messages that arrived before are kept and processed now.
    pub fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        self.guard(|s| {
            if s.started {
                return Err(ProtocolError::Misuse("session already started".into()));
            }
            s.started = true;
            let first = s.protocol.start()?;
            let mut out = s.send(1, first)?;
            out.extend(s.drain()?);
            Ok(out)
        })
    }

    /// Takes one message addressed to this party and returns the messages to send in response.
    pub fn handle(&mut self, message: Message) -> Result<Vec<Message>, ProtocolError> {
        self.guard(|s| {
            s.accept(message)?;
            if s.started { s.drain() } else { Ok(Vec::new()) }
        })
    }

    fn guard<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ProtocolError>,
    ) -> Result<T, ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = f(self);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buffer.clear();
        }
        result
    }

    fn total_rounds(&self) -> u16 {
        let last = self.protocol.rounds();
        if self.protocol.has_broadcast(last) {
            last + 1
        } else {
            last
        }
    }

    fn expected_senders(&self, round: u16) -> BTreeSet<PartyIndex> {
        let last = self.protocol.rounds();
        if round > last {
            // The echo round mirrors the last round's exchange.
            self.protocol.senders(last)
        } else {
            self.protocol.senders(round)
        }
    }

    fn recipients(&self, round: u16) -> BTreeSet<PartyIndex> {
        let last = self.protocol.rounds();
        if round > last {
            self.protocol.recipients(last)
        } else {
            self.protocol.recipients(round)
        }
    }

    /// Checks addressing and round, opens and decodes, and buffers one message.
    fn accept(&mut self, m: Message) -> Result<(), ProtocolError> {
        let me = self.channel.me();
        if m.to != me {
            return Err(ProtocolError::blame(
                m.from,
                Misbehaviour::Misaddressed { to: m.to },
            ));
        }
        if m.from == me || !self.channel.parties().contains(&m.from) {
            return Err(ProtocolError::blame(m.from, Misbehaviour::UnknownSender));
        }
        if m.round == 0
            || m.round > self.total_rounds()
            || !self.expected_senders(m.round).contains(&m.from)
        {
            return Err(ProtocolError::blame(
                m.from,
                Misbehaviour::WrongRound { round: m.round },
            ));
        }
        // Authenticate before judging duplicates: a forgery injected after the genuine message
        // is reported as undecryptable, a true repeat as a duplicate.
        let plain = self.channel.open(m.from, m.round, &m.payload)?;
        if self.done || m.round < self.round || self.buffer.contains_key(&(m.round, m.from)) {
            return Err(ProtocolError::blame(
                m.from,
                Misbehaviour::Duplicate { round: m.round },
            ));
        }
        let frame: Frame =
            postcard::from_bytes(&plain).map_err(|e| ProtocolError::malformed(m.from, e))?;
        self.check_frame_shape(m.from, m.round, &frame)?;
        self.buffer.insert((m.round, m.from), frame);
        Ok(())
    }

    fn check_frame_shape(
        &self,
        from: PartyIndex,
        round: u16,
        frame: &Frame,
    ) -> Result<(), ProtocolError> {
        let last = self.protocol.rounds();
        let wants_broadcast = round <= last && self.protocol.has_broadcast(round);
        if frame.broadcast.is_some() != wants_broadcast {
            return Err(ProtocolError::malformed(
                from,
                format!("broadcast part present/absent wrongly in round {round}"),
            ));
        }
        if round > last && frame.p2p.is_some() {
            return Err(ProtocolError::malformed(
                from,
                "the echo round carries no data",
            ));
        }
        let wants_echo = round > 1 && self.protocol.has_broadcast(round - 1);
        if frame.echo.is_some() != wants_echo {
            return Err(ProtocolError::malformed(
                from,
                format!("echo present/absent wrongly in round {round}"),
            ));
        }
        Ok(())
    }

    /// Processes every round whose messages are complete.
    fn drain(&mut self) -> Result<Vec<Message>, ProtocolError> {
        let mut out = Vec::new();
        while !self.done && self.round_complete() {
            out.extend(self.process_round()?);
        }
        Ok(out)
    }

    fn round_complete(&self) -> bool {
        self.expected_senders(self.round)
            .iter()
            .all(|p| self.buffer.contains_key(&(self.round, *p)))
    }

    fn process_round(&mut self) -> Result<Vec<Message>, ProtocolError> {
        let r = self.round;
        let senders = self.expected_senders(r);
        let mut frames = BTreeMap::new();
        for p in senders {
            let frame = self
                .buffer
                .remove(&(r, p))
                .ok_or_else(|| ProtocolError::internal("frame vanished"))?;
            frames.insert(p, frame);
        }
        if r > 1 && self.protocol.has_broadcast(r - 1) {
            self.check_echoes(r - 1, &frames)?;
        }
        let last = self.protocol.rounds();
        if r > last {
            // The echo round checked out: release the output.
            self.output = self.pending.take();
            self.done = true;
            return Ok(Vec::new());
        }
        if self.protocol.has_broadcast(r) {
            let mut echo: Echo = frames
                .iter()
                .filter_map(|(p, f)| f.broadcast.as_ref().map(|b| (*p, digest(r, *p, b))))
                .collect();
            if let Some(own) = self.own_broadcast.get(&r) {
                echo.insert(self.channel.me(), *own);
            }
            self.echoes.insert(r, echo);
        }
        let received = frames
            .into_iter()
            .map(|(p, mut f)| {
                (
                    p,
                    Incoming {
                        broadcast: f.broadcast.take(),
                        p2p: f.p2p.take(),
                    },
                )
            })
            .collect();
        self.round = r + 1;
        match self.protocol.advance(r, received)? {
            Step::Next(next) => {
                if r == last {
                    return Err(ProtocolError::internal(
                        "protocol continued past its last round",
                    ));
                }
                self.send(r + 1, next)
            }
            Step::Done(output) => {
                if r != last {
                    return Err(ProtocolError::internal(
                        "protocol finished before its last round",
                    ));
                }
                if self.protocol.has_broadcast(last) {
                    self.pending = Some(output);
                    self.send(last + 1, Outgoing::default())
                } else {
                    self.output = Some(output);
                    self.done = true;
                    Ok(Vec::new())
                }
            }
        }
    }

    /// Compares each sender's echo of `round` with ours.
    fn check_echoes(
        &self,
        round: u16,
        frames: &BTreeMap<PartyIndex, Frame>,
    ) -> Result<(), ProtocolError> {
        let me = self.channel.me();
        let Some(mine) = self.echoes.get(&round) else {
            return Err(ProtocolError::internal(format!(
                "no echo recorded for round {round}"
            )));
        };
        for (reporter, frame) in frames {
            let theirs: Echo = frame.echo.iter().flatten().copied().collect();
            if theirs.len() != frame.echo.as_ref().map_or(0, Vec::len)
                || theirs.keys().ne(mine.keys())
            {
                return Err(ProtocolError::malformed(
                    *reporter,
                    format!("echo of round {round} lists the wrong parties"),
                ));
            }
            for (broadcaster, d) in &theirs {
                if mine.get(broadcaster) != Some(d) {
                    // If the reporter misstates our own broadcast, or its own, it is the one lying;
                    // otherwise the broadcaster sent different content to different parties.
                    let culprit = if *broadcaster == me {
                        *reporter
                    } else {
                        *broadcaster
                    };
                    return Err(ProtocolError::blame(
                        culprit,
                        Misbehaviour::Equivocation {
                            round,
                            reported_by: *reporter,
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    /// Seals one frame per recipient of `round`.
    fn send(&mut self, round: u16, mut out: Outgoing) -> Result<Vec<Message>, ProtocolError> {
        let me = self.channel.me();
        let last = self.protocol.rounds();
        let recipients = self.recipients(round);
        if out.p2p.keys().any(|p| !recipients.contains(p)) {
            return Err(ProtocolError::internal(format!(
                "round {round} addresses a party outside the round"
            )));
        }
        let wants_broadcast = round <= last && self.protocol.has_broadcast(round);
        if out.broadcast.is_some() != wants_broadcast {
            return Err(ProtocolError::internal(format!(
                "round {round} broadcast part mismatch"
            )));
        }
        if let Some(b) = &out.broadcast {
            self.own_broadcast.insert(round, digest(round, me, b));
        }
        let echo: Option<Vec<(PartyIndex, [u8; 32])>> =
            if round > 1 && self.protocol.has_broadcast(round - 1) {
                let e = self
                    .echoes
                    .get(&(round - 1))
                    .ok_or_else(|| ProtocolError::internal("missing echo"))?;
                Some(e.iter().map(|(p, d)| (*p, *d)).collect())
            } else {
                None
            };
        let mut messages = Vec::with_capacity(recipients.len());
        for to in recipients {
            let frame = Frame {
                broadcast: out.broadcast.clone(),
                p2p: out.p2p.remove(&to),
                echo: echo.clone(),
            };
            let plain = zeroize::Zeroizing::new(
                postcard::to_allocvec(&frame).map_err(ProtocolError::internal)?,
            );
            let payload = self.channel.seal(to, round, &plain)?;
            messages.push(Message {
                from: me,
                to,
                round,
                payload,
            });
        }
        Ok(messages)
    }
}

fn digest(round: u16, sender: PartyIndex, broadcast: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"mpc-system/echo/v1");
    h.update(round.to_be_bytes());
    h.update(sender.get().to_be_bytes());
    h.update(broadcast);
    h.finalize().into()
}

#[cfg(test)]
mod tests;
