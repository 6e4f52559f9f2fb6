//! Distributed key generation (DKLs23 DKG) for all `n` parties.
//!
//! Rounds (every party to every other):
//! 1. private: the polynomial fragment `p_i(j)` for each `j` (secret, hence sealed);
//! 2. broadcast: the commitment to the party's discrete-log proof and its chain-code commitment;
//!    private: zero-share seed commitments;
//! 3. broadcast: the proof itself (checked against round 2's commitment) and the chain-code
//!    reveal; private: zero-share seeds and the base-OT setup for two-party multiplication;
//!
//! then the local phase 4 (verification, base OT) yields the key share, held until the echo round
//! confirms everybody saw the same broadcasts.

use std::collections::{BTreeMap, BTreeSet};

use dkls23::DkgSession;
use dkls23::protocols::dkg::{
    BroadcastDerivationPhase2to4, BroadcastDerivationPhase3to4, ProofCommitment,
    TransmitInitMulPhase3to4, TransmitInitZeroSharePhase2to4, TransmitInitZeroSharePhase3to4,
};
use dkls23::utilities::hashes::HashOutput;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::channel::SecureChannel;
use crate::dkls::{Curve, abort_error, check_route, check_sender, decode, encode};
use crate::error::ProtocolError;
use crate::round::{Incoming, Outgoing, RoundProtocol, Session, Step};
use crate::share::KeyShare;
use crate::types::{Parameters, PartyIndex};

#[derive(Serialize, Deserialize)]
pub(crate) struct Fragment {
    pub(crate) scalar: k256::Scalar,
}

impl Drop for Fragment {
    fn drop(&mut self) {
        self.scalar.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Round2Broadcast {
    pub(crate) commitment: HashOutput,
    pub(crate) derivation: Option<BroadcastDerivationPhase2to4>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Round3Broadcast {
    pub(crate) proof: ProofCommitment<Curve>,
    pub(crate) derivation: Option<BroadcastDerivationPhase3to4>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Round3Private {
    pub(crate) zero: TransmitInitZeroSharePhase3to4,
    pub(crate) mul: TransmitInitMulPhase3to4<Curve>,
}

/// The DKG state machine of one party.
pub struct Keygen {
    me: PartyIndex,
    others: BTreeSet<PartyIndex>,
    dkg: Option<DkgSession<Curve>>,
    own_fragment: Option<Fragment>,
    own_proof: Option<ProofCommitment<Curve>>,
    own_derivation2: Option<BroadcastDerivationPhase2to4>,
    own_derivation3: Option<BroadcastDerivationPhase3to4>,
    commitments: BTreeMap<PartyIndex, HashOutput>,
    derivation2: BTreeMap<PartyIndex, BroadcastDerivationPhase2to4>,
    zero2: Vec<TransmitInitZeroSharePhase2to4>,
}

/// Starts a keygen for `parameters` as the channel's party. The channel's roster must hold
/// exactly the parties `0..n`.
pub fn keygen(
    parameters: Parameters,
    channel: SecureChannel,
) -> Result<Session<Keygen>, ProtocolError> {
    let parties = channel.parties();
    if parties != parameters.indices().collect::<Vec<_>>() {
        return Err(ProtocolError::InvalidInput(format!(
            "keygen needs exactly the parties 0..{} in the roster, got {parties:?}",
            parameters.parties()
        )));
    }
    let me = channel.me();
    let session_id = channel.session_id().derive("dkg");
    let dkg = DkgSession::new(parameters.to_dkls()?, me.to_dkls()?, session_id);
    let others = parties.into_iter().filter(|p| *p != me).collect();
    let protocol = Keygen {
        me,
        others,
        dkg: Some(dkg),
        own_fragment: None,
        own_proof: None,
        own_derivation2: None,
        own_derivation3: None,
        commitments: BTreeMap::new(),
        derivation2: BTreeMap::new(),
        zero2: Vec::new(),
    };
    Ok(Session::new(protocol, channel))
}

impl Keygen {
    fn dkg(&mut self) -> Result<&mut DkgSession<Curve>, ProtocolError> {
        self.dkg
            .as_mut()
            .ok_or_else(|| ProtocolError::internal("dkg state already consumed"))
    }

    fn after_round1(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Outgoing, ProtocolError> {
        let own = self
            .own_fragment
            .take()
            .ok_or_else(|| ProtocolError::internal("no own fragment"))?;
        let mut fragments = vec![own.scalar];
        for (from, incoming) in &received {
            let f: Fragment = decode(*from, incoming.p2p.as_ref(), "polynomial fragment")?;
            fragments.push(f.scalar);
        }
        let result = self.dkg()?.phase2(&fragments);
        fragments.zeroize();
        let (proof, zero_transmit, derivation) = result.map_err(abort_error)?;
        let mut out = Outgoing {
            broadcast: Some(encode(&Round2Broadcast {
                commitment: proof.commitment,
                derivation: Some(derivation.clone()),
            })?),
            p2p: BTreeMap::new(),
        };
        for m in &zero_transmit {
            let to = PartyIndex::from_dkls(m.parties.receiver)
                .ok_or_else(|| ProtocolError::internal("bad receiver"))?;
            out.p2p.insert(to, encode(m)?);
        }
        self.own_proof = Some(proof);
        self.own_derivation2 = Some(derivation);
        Ok(out)
    }

    fn after_round2(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Outgoing, ProtocolError> {
        let me = self.me;
        for (from, incoming) in &received {
            let b: Round2Broadcast =
                decode(*from, incoming.broadcast.as_ref(), "round 2 broadcast")?;
            let derivation = b
                .derivation
                .ok_or_else(|| ProtocolError::malformed(*from, "missing chain-code commitment"))?;
            check_sender(derivation.sender_index, *from, "chain-code commitment")?;
            let zero: TransmitInitZeroSharePhase2to4 =
                decode(*from, incoming.p2p.as_ref(), "zero-share commitment")?;
            check_route(&zero.parties, *from, me, "zero-share commitment")?;
            self.commitments.insert(*from, b.commitment);
            self.derivation2.insert(*from, derivation);
            self.zero2.push(zero);
        }
        let (zero_transmit, mul_transmit, derivation) =
            self.dkg()?.phase3().map_err(abort_error)?;
        let proof = self
            .own_proof
            .clone()
            .ok_or_else(|| ProtocolError::internal("no own proof"))?;
        let mut out = Outgoing {
            broadcast: Some(encode(&Round3Broadcast {
                proof,
                derivation: Some(derivation.clone()),
            })?),
            p2p: BTreeMap::new(),
        };
        let mut mul_by_receiver: BTreeMap<PartyIndex, TransmitInitMulPhase3to4<Curve>> =
            BTreeMap::new();
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
        self.own_derivation3 = Some(derivation);
        Ok(out)
    }

    fn after_round3(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<KeyShare, ProtocolError> {
        let me = self.me;
        let own_proof = self
            .own_proof
            .take()
            .ok_or_else(|| ProtocolError::internal("no own proof"))?;
        let mut proofs = Vec::with_capacity(received.len() + 1);
        let mut zero3 = Vec::with_capacity(received.len());
        let mut mul3 = Vec::with_capacity(received.len());
        let mut derivation3 = BTreeMap::new();
        for (from, incoming) in &received {
            let b: Round3Broadcast =
                decode(*from, incoming.broadcast.as_ref(), "round 3 broadcast")?;
            check_sender(b.proof.index, *from, "proof")?;
            if self.commitments.get(from) != Some(&b.proof.commitment) {
                return Err(ProtocolError::malformed(
                    *from,
                    "revealed proof does not match its round 2 commitment",
                ));
            }
            let derivation = b
                .derivation
                .ok_or_else(|| ProtocolError::malformed(*from, "missing chain-code reveal"))?;
            check_sender(derivation.sender_index, *from, "chain-code reveal")?;
            let p: Round3Private = decode(*from, incoming.p2p.as_ref(), "round 3 private part")?;
            check_route(&p.zero.parties, *from, me, "zero-share seed")?;
            check_route(&p.mul.parties, *from, me, "OT setup")?;
            proofs.push(b.proof);
            derivation3.insert(from.to_dkls()?, derivation);
            zero3.push(p.zero);
            mul3.push(p.mul);
        }
        proofs.push(own_proof);
        let mut derivation2: BTreeMap<_, _> = BTreeMap::new();
        for (p, d) in std::mem::take(&mut self.derivation2) {
            derivation2.insert(p.to_dkls()?, d);
        }
        let own2 = self
            .own_derivation2
            .take()
            .ok_or_else(|| ProtocolError::internal("no own derivation"))?;
        let own3 = self
            .own_derivation3
            .take()
            .ok_or_else(|| ProtocolError::internal("no own derivation"))?;
        derivation2.insert(me.to_dkls()?, own2);
        derivation3.insert(me.to_dkls()?, own3);
        let dkg = self
            .dkg
            .take()
            .ok_or_else(|| ProtocolError::internal("dkg state already consumed"))?;
        let zero2 = std::mem::take(&mut self.zero2);
        let (party, package) = dkg
            .phase4(
                &proofs,
                &zero2,
                &zero3,
                &mul3,
                &derivation2,
                &derivation3,
                dkls23::secp256k1::compute_eth_address,
            )
            .map_err(abort_error)?;
        KeyShare::new(party, package)
    }
}

impl RoundProtocol for Keygen {
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
        let me = self.me;
        let mut fragments = self.dkg()?.phase1();
        let mut out = Outgoing::default();
        for (i, scalar) in fragments.iter().enumerate() {
            let to = PartyIndex::new(i as u16)?;
            let fragment = Fragment { scalar: *scalar };
            if to == me {
                self.own_fragment = Some(fragment);
            } else {
                out.p2p.insert(to, encode(&fragment)?);
            }
        }
        fragments.zeroize();
        Ok(out)
    }

    fn advance(
        &mut self,
        round: u16,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Step<KeyShare>, ProtocolError> {
        match round {
            1 => self.after_round1(received).map(Step::Next),
            2 => self.after_round2(received).map(Step::Next),
            3 => self.after_round3(received).map(Step::Done),
            _ => Err(ProtocolError::internal(format!(
                "keygen has no round {round}"
            ))),
        }
    }
}
