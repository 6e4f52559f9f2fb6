//! Threshold signing (DKLs23) by exactly `t` signers over a 32-byte prehashed message.
//!
//! Rounds (every signer to every other): 1 and 2 private (commitments, OT-extension
//! multiplication), 3 broadcast (the signature shares `u`, `w`); then each signer combines them
//! locally into a low-s signature with its recovery id, released after the echo round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dkls23::protocols::signing::{
    Broadcast3to4, KeepPhase1to2, KeepPhase2to3, SignData, TransmitPhase1to2, TransmitPhase2to3,
    UniqueKeep1to2, UniqueKeep2to3,
};

use crate::channel::SecureChannel;
use crate::dkls::{Curve, abort_error, check_route, decode, encode};
use crate::ecdsa::Signature;
use crate::error::ProtocolError;
use crate::round::{Incoming, Outgoing, RoundProtocol, Session, Step};
use crate::share::KeyShare;
use crate::types::{MessageHash, PartyIndex};

type DklsIndex = dkls23::protocols::PartyIndex;
/// What phase 1 keeps for phase 2, and phase 2 for phase 3.
type Kept1 = (
    UniqueKeep1to2<Curve>,
    BTreeMap<DklsIndex, KeepPhase1to2<Curve>>,
);
type Kept2 = (
    UniqueKeep2to3<Curve>,
    BTreeMap<DklsIndex, KeepPhase2to3<Curve>>,
);

/// The signing state machine of one signer.
pub struct Sign {
    share: Arc<KeyShare>,
    others: BTreeSet<PartyIndex>,
    data: SignData,
    keep1: Option<Kept1>,
    keep2: Option<Kept2>,
    x_coord: Option<String>,
    own_broadcast: Option<Broadcast3to4<Curve>>,
}

/// Starts signing `hash` with `share`. The channel's roster is the signer set: exactly `t`
/// distinct parties of the key, this one included.
pub fn sign(
    share: Arc<KeyShare>,
    hash: MessageHash,
    channel: SecureChannel,
) -> Result<Session<Sign>, ProtocolError> {
    if hash.is_degenerate() {
        return Err(ProtocolError::InvalidInput(
            crate::types::DEGENERATE_HASH.into(),
        ));
    }
    let signers = channel.parties();
    let params = share.parameters();
    if signers.len() < usize::from(params.threshold()) {
        return Err(ProtocolError::InvalidInput(format!(
            "insufficient participants: signing needs {} signers, got {}",
            params.threshold(),
            signers.len()
        )));
    }
    if signers.len() != usize::from(params.threshold()) {
        return Err(ProtocolError::InvalidInput(format!(
            "signing needs exactly {} signers, got {}",
            params.threshold(),
            signers.len()
        )));
    }
    if let Some(bad) = signers.iter().find(|p| p.get() >= params.parties()) {
        return Err(ProtocolError::InvalidInput(format!(
            "signer {bad} is not a party of this {}-party key",
            params.parties()
        )));
    }
    let me = channel.me();
    if me != share.index() {
        return Err(ProtocolError::InvalidInput(format!(
            "the share is party {}'s but the channel is party {me}'s",
            share.index()
        )));
    }
    let others: BTreeSet<PartyIndex> = signers.into_iter().filter(|p| *p != me).collect();
    let counterparties = others
        .iter()
        .map(|p| p.to_dkls())
        .collect::<Result<Vec<_>, _>>()?;
    let data = SignData {
        sign_id: channel.session_id().derive("sign"),
        counterparties,
        message_hash: *hash.as_bytes(),
    };
    let protocol = Sign {
        share,
        others,
        data,
        keep1: None,
        keep2: None,
        x_coord: None,
        own_broadcast: None,
    };
    Ok(Session::new(protocol, channel))
}

impl Sign {
    fn p2p_by_receiver<T: serde::Serialize>(
        messages: &[T],
        receiver: impl Fn(&T) -> DklsIndex,
    ) -> Result<BTreeMap<PartyIndex, Vec<u8>>, ProtocolError> {
        let mut out = BTreeMap::new();
        for m in messages {
            let to = PartyIndex::from_dkls(receiver(m))
                .ok_or_else(|| ProtocolError::internal("bad receiver"))?;
            out.insert(to, encode(m)?);
        }
        Ok(out)
    }

    fn after_round1(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Outgoing, ProtocolError> {
        let me = self.share.index();
        let mut messages = Vec::with_capacity(received.len());
        for (from, incoming) in &received {
            let m: TransmitPhase1to2 =
                decode(*from, incoming.p2p.as_ref(), "signing round 1 message")?;
            check_route(&m.parties, *from, me, "signing round 1 message")?;
            messages.push(m);
        }
        let (unique, keep) = self
            .keep1
            .take()
            .ok_or_else(|| ProtocolError::internal("no round 1 state"))?;
        let (unique, keep, transmit) = self
            .share
            .party()
            .sign_phase2(&self.data, unique, keep, &messages)
            .map_err(abort_error)?;
        self.keep2 = Some((unique, keep));
        Ok(Outgoing {
            broadcast: None,
            p2p: Self::p2p_by_receiver(&transmit, |m| m.parties.receiver)?,
        })
    }

    fn after_round2(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Outgoing, ProtocolError> {
        let me = self.share.index();
        let mut messages = Vec::with_capacity(received.len());
        for (from, incoming) in &received {
            let m: TransmitPhase2to3<Curve> =
                decode(*from, incoming.p2p.as_ref(), "signing round 2 message")?;
            check_route(&m.parties, *from, me, "signing round 2 message")?;
            messages.push(m);
        }
        let (unique, keep) = self
            .keep2
            .take()
            .ok_or_else(|| ProtocolError::internal("no round 2 state"))?;
        let (x_coord, broadcast) = self
            .share
            .party()
            .sign_phase3(&self.data, unique, keep, &messages)
            .map_err(abort_error)?;
        let out = Outgoing {
            broadcast: Some(encode(&broadcast)?),
            p2p: BTreeMap::new(),
        };
        self.x_coord = Some(x_coord);
        self.own_broadcast = Some(broadcast);
        Ok(out)
    }

    fn after_round3(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Signature, ProtocolError> {
        let own = self
            .own_broadcast
            .take()
            .ok_or_else(|| ProtocolError::internal("no own broadcast"))?;
        let mut all = vec![own];
        for (from, incoming) in &received {
            all.push(decode::<Broadcast3to4<Curve>>(
                *from,
                incoming.broadcast.as_ref(),
                "signature share",
            )?);
        }
        let x_coord = self
            .x_coord
            .take()
            .ok_or_else(|| ProtocolError::internal("no r"))?;
        // `normalize = true` gives low-s (EIP-2) with the matching recovery id.
        let (s_hex, v) = self
            .share
            .party()
            .sign_phase4(&self.data, &x_coord, &all, true)
            .map_err(abort_error)?;
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        hex::decode_to_slice(&x_coord, &mut r).map_err(ProtocolError::internal)?;
        hex::decode_to_slice(&s_hex, &mut s).map_err(ProtocolError::internal)?;
        if v > 1 {
            return Err(ProtocolError::internal(format!(
                "recovery id {v} out of range"
            )));
        }
        Ok(Signature { r, s, v })
    }
}

impl RoundProtocol for Sign {
    type Output = Signature;

    fn rounds(&self) -> u16 {
        3
    }

    fn has_broadcast(&self, round: u16) -> bool {
        round == 3
    }

    fn recipients(&self, _round: u16) -> BTreeSet<PartyIndex> {
        self.others.clone()
    }

    fn senders(&self, _round: u16) -> BTreeSet<PartyIndex> {
        self.others.clone()
    }

    fn start(&mut self) -> Result<Outgoing, ProtocolError> {
        let (unique, keep, transmit) = self
            .share
            .party()
            .sign_phase1(&self.data)
            .map_err(abort_error)?;
        self.keep1 = Some((unique, keep));
        Ok(Outgoing {
            broadcast: None,
            p2p: Self::p2p_by_receiver(&transmit, |m| m.parties.receiver)?,
        })
    }

    fn advance(
        &mut self,
        round: u16,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Step<Signature>, ProtocolError> {
        match round {
            1 => self.after_round1(received).map(Step::Next),
            2 => self.after_round2(received).map(Step::Next),
            3 => self.after_round3(received).map(Step::Done),
            _ => Err(ProtocolError::internal(format!(
                "signing has no round {round}"
            ))),
        }
    }
}
