//! Threshold signing (DKLs23) by exactly `t` signers over one or more 32-byte prehashes,
//! optionally under a BIP32 non-hardened child of the key.
//!
//! Rounds (every signer to every other): 1 and 2 private (commitments, OT-extension
//! multiplication), 3 broadcast (the signature shares `u`, `w`); then each signer combines them
//! locally into low-s signatures with their recovery ids, released after the echo round.
//!
//! A batch of k hashes runs k independent signings inside the same rounds: each frame carries
//! the k library messages of that round for that recipient (one list, in hash order), so a
//! batch costs one session's round trips plus k times the protocol's own work. Each signing has
//! its own `sign_id` (the session's, with the item's position), so no two can be confused.
//!
//! With a derivation path each signer derives its own share locally with the library's BIP32
//! code (the share shifts by a public tweak); nothing is reconstructed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dkls23::protocols::signing::{
    Broadcast3to4, KeepPhase1to2, KeepPhase2to3, SignData, TransmitPhase1to2, TransmitPhase2to3,
    UniqueKeep1to2, UniqueKeep2to3,
};

use crate::channel::SecureChannel;
use crate::dkls::{Curve, Party, abort_error, check_route, decode, encode};
use crate::ecdsa::Signature;
use crate::error::ProtocolError;
use crate::hd::DerivationPath;
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

/// The most hashes one batch signs.
pub const MAX_BATCH: usize = 128;

/// One signing of the batch.
struct Item {
    data: SignData,
    keep1: Option<Kept1>,
    keep2: Option<Kept2>,
    x_coord: Option<String>,
    own_broadcast: Option<Broadcast3to4<Curve>>,
}

/// The signing state machine of one signer.
pub struct Sign {
    share: Arc<KeyShare>,
    /// The share derived along the session's path; `None` signs with the master share.
    derived: Option<Party>,
    others: BTreeSet<PartyIndex>,
    items: Vec<Item>,
}

/// Starts signing `hash` with `share`. The channel's roster is the signer set: exactly `t`
/// distinct parties of the key, this one included.
pub fn sign(
    share: Arc<KeyShare>,
    hash: MessageHash,
    channel: SecureChannel,
) -> Result<Session<Sign>, ProtocolError> {
    sign_batch(share, vec![hash], None, channel)
}

/// Starts signing every hash of `hashes` (1 to [`MAX_BATCH`]) in one session, with the share
/// derived along `path` when there is one. The output is one signature per hash, in order,
/// under the child key.
pub fn sign_batch(
    share: Arc<KeyShare>,
    hashes: Vec<MessageHash>,
    path: Option<&DerivationPath>,
    channel: SecureChannel,
) -> Result<Session<Sign>, ProtocolError> {
    if hashes.is_empty() || hashes.len() > MAX_BATCH {
        return Err(ProtocolError::InvalidInput(format!(
            "a sign session signs 1 to {MAX_BATCH} hashes, got {}",
            hashes.len()
        )));
    }
    if hashes.iter().any(MessageHash::is_degenerate) {
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
    let derived = match path.filter(|p| !p.is_master()) {
        Some(path) => Some(
            share
                .party()
                .derive_from_path(&path.to_string(), |_| String::new())
                .map_err(|e| {
                    ProtocolError::InvalidInput(format!("cannot derive {path}: {}", e.description))
                })?,
        ),
        None => None,
    };
    let others: BTreeSet<PartyIndex> = signers.into_iter().filter(|p| *p != me).collect();
    let counterparties = others
        .iter()
        .map(|p| p.to_dkls())
        .collect::<Result<Vec<_>, _>>()?;
    // A single hash keeps the session's own sign id; batch items add their position.
    let single = hashes.len() == 1;
    let items = hashes
        .iter()
        .enumerate()
        .map(|(i, hash)| Item {
            data: SignData {
                sign_id: if single {
                    channel.session_id().derive("sign")
                } else {
                    channel.session_id().derive(&format!("sign/{i}"))
                },
                counterparties: counterparties.clone(),
                message_hash: *hash.as_bytes(),
            },
            keep1: None,
            keep2: None,
            x_coord: None,
            own_broadcast: None,
        })
        .collect();
    let protocol = Sign {
        share,
        derived,
        others,
        items,
    };
    Ok(Session::new(protocol, channel))
}

impl Sign {
    fn party(&self) -> &Party {
        self.derived.as_ref().unwrap_or_else(|| self.share.party())
    }

    /// The k library messages of a round, one list per receiver (in item order).
    fn p2p_by_receiver<T: serde::Serialize>(
        per_item: Vec<Vec<T>>,
        receiver: impl Fn(&T) -> DklsIndex,
    ) -> Result<BTreeMap<PartyIndex, Vec<u8>>, ProtocolError> {
        let mut lists: BTreeMap<PartyIndex, Vec<T>> = BTreeMap::new();
        for messages in per_item {
            for m in messages {
                let to = PartyIndex::from_dkls(receiver(&m))
                    .ok_or_else(|| ProtocolError::internal("bad receiver"))?;
                lists.entry(to).or_default().push(m);
            }
        }
        lists
            .into_iter()
            .map(|(to, list)| Ok((to, encode(&list)?)))
            .collect()
    }

    /// Each sender's list for this round, checked to hold one message per item; returns the
    /// messages of item `i` from every sender as `per_item[i]`.
    fn per_item<T: serde::de::DeserializeOwned>(
        &self,
        received: &BTreeMap<PartyIndex, Incoming>,
        broadcast: bool,
        what: &str,
    ) -> Result<Vec<Vec<(PartyIndex, T)>>, ProtocolError> {
        let k = self.items.len();
        let mut per_item: Vec<Vec<(PartyIndex, T)>> = (0..k).map(|_| Vec::new()).collect();
        for (from, incoming) in received {
            let part = if broadcast {
                incoming.broadcast.as_ref()
            } else {
                incoming.p2p.as_ref()
            };
            let list: Vec<T> = decode(*from, part, what)?;
            if list.len() != k {
                return Err(ProtocolError::malformed(
                    *from,
                    format!("{what} carries {} messages for a batch of {k}", list.len()),
                ));
            }
            for (i, m) in list.into_iter().enumerate() {
                per_item[i].push((*from, m));
            }
        }
        Ok(per_item)
    }

    fn after_round1(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Outgoing, ProtocolError> {
        let me = self.share.index();
        let per_item =
            self.per_item::<TransmitPhase1to2>(&received, false, "signing round 1 message")?;
        let mut transmit_all = Vec::with_capacity(self.items.len());
        for (i, messages) in per_item.into_iter().enumerate() {
            let mut list = Vec::with_capacity(messages.len());
            for (from, m) in messages {
                check_route(&m.parties, from, me, "signing round 1 message")?;
                list.push(m);
            }
            let (unique, keep) = self.items[i]
                .keep1
                .take()
                .ok_or_else(|| ProtocolError::internal("no round 1 state"))?;
            let (unique, keep, transmit) = self
                .party()
                .sign_phase2(&self.items[i].data, unique, keep, &list)
                .map_err(abort_error)?;
            self.items[i].keep2 = Some((unique, keep));
            transmit_all.push(transmit);
        }
        Ok(Outgoing {
            broadcast: None,
            p2p: Self::p2p_by_receiver(transmit_all, |m| m.parties.receiver)?,
        })
    }

    fn after_round2(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Outgoing, ProtocolError> {
        let me = self.share.index();
        let per_item =
            self.per_item::<TransmitPhase2to3<Curve>>(&received, false, "signing round 2 message")?;
        let mut broadcasts = Vec::with_capacity(self.items.len());
        for (i, messages) in per_item.into_iter().enumerate() {
            let mut list = Vec::with_capacity(messages.len());
            for (from, m) in messages {
                check_route(&m.parties, from, me, "signing round 2 message")?;
                list.push(m);
            }
            let (unique, keep) = self.items[i]
                .keep2
                .take()
                .ok_or_else(|| ProtocolError::internal("no round 2 state"))?;
            let (x_coord, broadcast) = self
                .party()
                .sign_phase3(&self.items[i].data, unique, keep, &list)
                .map_err(abort_error)?;
            self.items[i].x_coord = Some(x_coord);
            broadcasts.push(broadcast.clone());
            self.items[i].own_broadcast = Some(broadcast);
        }
        Ok(Outgoing {
            broadcast: Some(encode(&broadcasts)?),
            p2p: BTreeMap::new(),
        })
    }

    fn after_round3(
        &mut self,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Vec<Signature>, ProtocolError> {
        let per_item = self.per_item::<Broadcast3to4<Curve>>(&received, true, "signature share")?;
        let mut out = Vec::with_capacity(self.items.len());
        for (i, shares) in per_item.into_iter().enumerate() {
            let own = self.items[i]
                .own_broadcast
                .take()
                .ok_or_else(|| ProtocolError::internal("no own broadcast"))?;
            let mut all = vec![own];
            all.extend(shares.into_iter().map(|(_, b)| b));
            let x_coord = self.items[i]
                .x_coord
                .take()
                .ok_or_else(|| ProtocolError::internal("no r"))?;
            // `normalize = true` gives low-s (EIP-2) with the matching recovery id.
            let (s_hex, v) = self
                .party()
                .sign_phase4(&self.items[i].data, &x_coord, &all, true)
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
            out.push(Signature { r, s, v });
        }
        Ok(out)
    }
}

impl RoundProtocol for Sign {
    /// One signature per hash, in order.
    type Output = Vec<Signature>;

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
        let mut transmit_all = Vec::with_capacity(self.items.len());
        for i in 0..self.items.len() {
            let (unique, keep, transmit) = self
                .party()
                .sign_phase1(&self.items[i].data)
                .map_err(abort_error)?;
            self.items[i].keep1 = Some((unique, keep));
            transmit_all.push(transmit);
        }
        Ok(Outgoing {
            broadcast: None,
            p2p: Self::p2p_by_receiver(transmit_all, |m| m.parties.receiver)?,
        })
    }

    fn advance(
        &mut self,
        round: u16,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Step<Vec<Signature>>, ProtocolError> {
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
