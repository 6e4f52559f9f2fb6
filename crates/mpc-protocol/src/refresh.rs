//! Share refresh by all `n` parties: new shares, same public key. This is the library's
//! *complete* refresh (a DKG whose polynomials have a zero constant term, with a fresh base OT),
//! which also rebuilds the state a repaired share lacks, so recovery reuses it as [`RefreshCore`].
//!
//! The refreshed shares carry a new session id: old and new shares cannot sign together, and a
//! party that keeps an old share cannot use it with refreshed ones.

use std::collections::{BTreeMap, BTreeSet};

use dkls23::protocols::dkg::{
    KeepInitMulPhase3to4, KeepInitZeroSharePhase2to3, KeepInitZeroSharePhase3to4, ProofCommitment,
    TransmitInitZeroSharePhase2to4,
};
use dkls23::utilities::hashes::HashOutput;
use zeroize::Zeroize;

use crate::channel::SecureChannel;
use crate::dkls::{Curve, Package, Party, abort_error, check_route, check_sender, decode, encode};
use crate::error::ProtocolError;
use crate::keygen::{Fragment, Round2Broadcast, Round3Broadcast, Round3Private};
use crate::round::{Incoming, Outgoing, RoundProtocol, Session, Step};
use crate::share::KeyShare;
use crate::types::PartyIndex;

type DklsIndex = dkls23::protocols::PartyIndex;

/// The three rounds of a complete refresh, for one party holding `party` (a full or a repaired
/// share) and the group's `package`.
pub(crate) struct RefreshCore {
    me: PartyIndex,
    refresh_id: Vec<u8>,
    party: Party,
    package: Package,
    own_fragment: Option<Fragment>,
    correction: Option<k256::Scalar>,
    own_proof: Option<ProofCommitment<Curve>>,
    zero_keep2: Option<BTreeMap<DklsIndex, KeepInitZeroSharePhase2to3>>,
    zero_keep3: Option<BTreeMap<DklsIndex, KeepInitZeroSharePhase3to4>>,
    mul_keep3: Option<BTreeMap<DklsIndex, KeepInitMulPhase3to4<Curve>>>,
    commitments: BTreeMap<PartyIndex, HashOutput>,
    zero2: Vec<TransmitInitZeroSharePhase2to4>,
}

impl Drop for RefreshCore {
    fn drop(&mut self) {
        self.correction.zeroize();
    }
}

impl RefreshCore {
    pub(crate) fn new(me: PartyIndex, refresh_id: Vec<u8>, party: Party, package: Package) -> Self {
        Self {
            me,
            refresh_id,
            party,
            package,
            own_fragment: None,
            correction: None,
            own_proof: None,
            zero_keep2: None,
            zero_keep3: None,
            mul_keep3: None,
            commitments: BTreeMap::new(),
            zero2: Vec::new(),
        }
    }

    /// Refresh round 1: fragments of a zero-constant polynomial, one per other party.
    pub(crate) fn start(&mut self) -> Result<Outgoing, ProtocolError> {
        let mut fragments = self.party.refresh_complete_phase1();
        let mut out = Outgoing::default();
        for (i, scalar) in fragments.iter().enumerate() {
            let to = PartyIndex::new(i as u16)?;
            let fragment = Fragment { scalar: *scalar };
            if to == self.me {
                self.own_fragment = Some(fragment);
            } else {
                out.p2p.insert(to, encode(&fragment)?);
            }
        }
        fragments.zeroize();
        Ok(out)
    }

    pub(crate) fn after_round1(
        &mut self,
        received: &BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Outgoing, ProtocolError> {
        let own = self
            .own_fragment
            .take()
            .ok_or_else(|| ProtocolError::internal("no own fragment"))?;
        let mut fragments = vec![own.scalar];
        for (from, incoming) in received {
            let f: Fragment = decode(*from, incoming.p2p.as_ref(), "refresh fragment")?;
            fragments.push(f.scalar);
        }
        let (correction, proof, zero_keep, zero_transmit) = self
            .party
            .refresh_complete_phase2(&self.refresh_id, &fragments);
        fragments.zeroize();
        let mut out = Outgoing {
            broadcast: Some(encode(&Round2Broadcast {
                commitment: proof.commitment,
                derivation: None,
            })?),
            p2p: BTreeMap::new(),
        };
        for m in &zero_transmit {
            let to = PartyIndex::from_dkls(m.parties.receiver)
                .ok_or_else(|| ProtocolError::internal("bad receiver"))?;
            out.p2p.insert(to, encode(m)?);
        }
        self.correction = Some(correction);
        self.own_proof = Some(proof);
        self.zero_keep2 = Some(zero_keep);
        Ok(out)
    }

    pub(crate) fn after_round2(
        &mut self,
        received: &BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Outgoing, ProtocolError> {
        for (from, incoming) in received {
            let b: Round2Broadcast =
                decode(*from, incoming.broadcast.as_ref(), "refresh commitment")?;
            if b.derivation.is_some() {
                return Err(ProtocolError::malformed(
                    *from,
                    "refresh carries no chain-code data",
                ));
            }
            let zero: TransmitInitZeroSharePhase2to4 =
                decode(*from, incoming.p2p.as_ref(), "zero-share commitment")?;
            check_route(&zero.parties, *from, self.me, "zero-share commitment")?;
            self.commitments.insert(*from, b.commitment);
            self.zero2.push(zero);
        }
        let zero_keep2 = self
            .zero_keep2
            .take()
            .ok_or_else(|| ProtocolError::internal("no zero-share state"))?;
        let (zero_keep3, zero_transmit, mul_keep3, mul_transmit) = self
            .party
            .refresh_complete_phase3(&self.refresh_id, &zero_keep2);
        let proof = self
            .own_proof
            .clone()
            .ok_or_else(|| ProtocolError::internal("no own proof"))?;
        let mut out = Outgoing {
            broadcast: Some(encode(&Round3Broadcast {
                proof,
                derivation: None,
            })?),
            p2p: BTreeMap::new(),
        };
        let mut mul_by_receiver = BTreeMap::new();
        for m in mul_transmit {
            let to = PartyIndex::from_dkls(m.parties.receiver)
                .ok_or_else(|| ProtocolError::internal("bad receiver"))?;
            mul_by_receiver.insert(to, m);
        }
        for zero in zero_transmit {
            let to = PartyIndex::from_dkls(zero.parties.receiver)
                .ok_or_else(|| ProtocolError::internal("bad receiver"))?;
            let mul = mul_by_receiver
                .remove(&to)
                .ok_or_else(|| ProtocolError::internal("missing OT setup message"))?;
            out.p2p.insert(to, encode(&Round3Private { zero, mul })?);
        }
        self.zero_keep3 = Some(zero_keep3);
        self.mul_keep3 = Some(mul_keep3);
        Ok(out)
    }

    pub(crate) fn after_round3(
        &mut self,
        received: &BTreeMap<PartyIndex, Incoming>,
    ) -> Result<KeyShare, ProtocolError> {
        let mut proofs = Vec::with_capacity(received.len() + 1);
        let mut zero3 = Vec::with_capacity(received.len());
        let mut mul3 = Vec::with_capacity(received.len());
        for (from, incoming) in received {
            let b: Round3Broadcast = decode(*from, incoming.broadcast.as_ref(), "refresh proof")?;
            check_sender(b.proof.index, *from, "refresh proof")?;
            if self.commitments.get(from) != Some(&b.proof.commitment) || b.derivation.is_some() {
                return Err(ProtocolError::malformed(
                    *from,
                    "revealed proof does not match its round 2 commitment",
                ));
            }
            let p: Round3Private = decode(*from, incoming.p2p.as_ref(), "refresh private part")?;
            check_route(&p.zero.parties, *from, self.me, "zero-share seed")?;
            check_route(&p.mul.parties, *from, self.me, "OT setup")?;
            proofs.push(b.proof);
            zero3.push(p.zero);
            mul3.push(p.mul);
        }
        proofs.push(
            self.own_proof
                .take()
                .ok_or_else(|| ProtocolError::internal("no own proof"))?,
        );
        let correction = self
            .correction
            .take()
            .ok_or_else(|| ProtocolError::internal("no correction value"))?;
        let zero_keep3 = self
            .zero_keep3
            .take()
            .ok_or_else(|| ProtocolError::internal("no zero-share state"))?;
        let mul_keep3 = self
            .mul_keep3
            .take()
            .ok_or_else(|| ProtocolError::internal("no OT state"))?;
        let party = self
            .party
            .refresh_complete_phase4(
                &self.refresh_id,
                &correction,
                &proofs,
                &zero_keep3,
                &self.zero2,
                &zero3,
                &mul_keep3,
                &mul3,
            )
            .map_err(abort_error)?;
        let package = self
            .package
            .refresh(&self.refresh_id, &proofs)
            .map_err(|reason| {
                ProtocolError::Aborted(format!("public key package refresh failed: {reason}"))
            })?;
        KeyShare::new(party, package)
    }
}

/// The refresh state machine of one party.
pub struct Refresh {
    others: BTreeSet<PartyIndex>,
    core: RefreshCore,
}

/// Starts a refresh of `share`. The channel's roster must hold every party of the key.
pub fn refresh(
    share: &KeyShare,
    channel: SecureChannel,
) -> Result<Session<Refresh>, ProtocolError> {
    let parties = channel.parties();
    let expected: Vec<PartyIndex> = share.parameters().indices().collect();
    if parties != expected {
        return Err(ProtocolError::InvalidInput(format!(
            "refresh needs all {} parties of the key, got {parties:?}",
            share.parameters().parties()
        )));
    }
    let me = channel.me();
    if me != share.index() {
        return Err(ProtocolError::InvalidInput(
            "the share belongs to another party than the channel".into(),
        ));
    }
    let core = RefreshCore::new(
        me,
        channel.session_id().derive("refresh"),
        share.party().clone(),
        share.package().clone(),
    );
    let others = parties.into_iter().filter(|p| *p != me).collect();
    Ok(Session::new(Refresh { others, core }, channel))
}

impl RoundProtocol for Refresh {
    type Output = KeyShare;

    fn rounds(&self) -> u16 {
        3
    }

    fn has_broadcast(&self, round: u16) -> bool {
        round >= 2
    }

    fn recipients(&self, _round: u16) -> BTreeSet<PartyIndex> {
        self.others.clone()
    }

    fn senders(&self, _round: u16) -> BTreeSet<PartyIndex> {
        self.others.clone()
    }

    fn start(&mut self) -> Result<Outgoing, ProtocolError> {
        self.core.start()
    }

    fn advance(
        &mut self,
        round: u16,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Step<KeyShare>, ProtocolError> {
        match round {
            1 => self.core.after_round1(&received).map(Step::Next),
            2 => self.core.after_round2(&received).map(Step::Next),
            3 => self.core.after_round3(&received).map(Step::Done),
            _ => Err(ProtocolError::internal(format!(
                "refresh has no round {round}"
            ))),
        }
    }
}
