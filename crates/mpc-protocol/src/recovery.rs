//! Recovery of a lost share at the same index, for a new holder, with the same public key (and so
//! the same Ethereum address).
//!
//! Round 1 (repair): each helper (at least `t` holders of a share) sends the new holder, and only
//! it, a masked term of the lost share together with the group's public key package. The new
//! holder checks that every helper sent the same package for the expected public key and adds
//! the terms up into a *hollow* share: the right secret, but none of the pairwise signing state.
//! No helper learns the lost share; the masks cancel only in the sum.
//!
//! Rounds 2–4: a complete refresh by all `n` parties ([`RefreshCore`]) rebuilds the hollow share's
//! state and re-randomises everybody's share. Afterwards the lost share (if it is ever found) no
//! longer signs with the others.

use std::collections::{BTreeMap, BTreeSet};

use dkls23::protocols::repair::{RepairTerm, repair_assemble};
use serde::{Deserialize, Serialize};

use crate::channel::SecureChannel;
use crate::dkls::{Curve, Package, check_sender, decode, encode};
use crate::ecdsa::PublicKey;
use crate::error::ProtocolError;
use crate::refresh::RefreshCore;
use crate::round::{Incoming, Outgoing, RoundProtocol, Session, Step};
use crate::share::KeyShare;
use crate::types::{Parameters, PartyIndex};

#[derive(Serialize, Deserialize)]
struct RepairMessage {
    term: RepairTerm<Curve>,
    package: Package,
}

/// What this party brings to a recovery.
pub enum RecoveryRole<'a> {
    /// A holder of a share. It helps rebuild the lost share if it is in the helper set, and takes
    /// part in the refresh in any case.
    Holder(&'a KeyShare),
    /// The new holder of the lost index. It knows only the key's parameters and public key.
    NewHolder {
        parameters: Parameters,
        public_key: PublicKey,
    },
}

/// The recovery state machine of one party.
pub struct Recovery {
    me: PartyIndex,
    target: PartyIndex,
    helpers: BTreeSet<PartyIndex>,
    others: BTreeSet<PartyIndex>,
    refresh_id: Vec<u8>,
    repair_id: Vec<u8>,
    /// Holders: their share; the new holder gets one in round 1.
    holder: Option<(crate::dkls::Party, Package)>,
    expected_key: Option<PublicKey>,
    core: Option<RefreshCore>,
}

/// Starts a recovery of the share at `target` with the given `helpers` (at least `t` holders,
/// not the target). The channel's roster must hold every index of the key, with the new holder at
/// `target`.
pub fn recover(
    role: RecoveryRole<'_>,
    target: PartyIndex,
    helpers: &[PartyIndex],
    channel: SecureChannel,
) -> Result<Session<Recovery>, ProtocolError> {
    let me = channel.me();
    let (parameters, holder, expected_key) = match role {
        RecoveryRole::Holder(share) => {
            if share.index() != me {
                return Err(ProtocolError::InvalidInput(
                    "the share belongs to another party than the channel".into(),
                ));
            }
            if me == target {
                return Err(ProtocolError::InvalidInput(
                    "the party at the recovered index cannot bring an old share".into(),
                ));
            }
            (
                share.parameters(),
                Some((share.party().clone(), share.package().clone())),
                None,
            )
        }
        RecoveryRole::NewHolder {
            parameters,
            public_key,
        } => {
            if me != target {
                return Err(ProtocolError::InvalidInput(
                    "only the party at the recovered index is the new holder".into(),
                ));
            }
            (parameters, None, Some(public_key))
        }
    };
    let parties = channel.parties();
    if parties != parameters.indices().collect::<Vec<_>>() {
        return Err(ProtocolError::InvalidInput(format!(
            "recovery needs all {} indices of the key in the roster, got {parties:?}",
            parameters.parties()
        )));
    }
    let helper_set: BTreeSet<PartyIndex> = helpers.iter().copied().collect();
    if helper_set.len() != helpers.len()
        || helper_set.contains(&target)
        || target.get() >= parameters.parties()
    {
        return Err(ProtocolError::InvalidInput(
            "helpers must be distinct parties of the key other than the target".into(),
        ));
    }
    if helper_set.len() < usize::from(parameters.threshold())
        || helper_set.iter().any(|h| h.get() >= parameters.parties())
    {
        return Err(ProtocolError::InvalidInput(format!(
            "insufficient participants: recovery needs at least {} helpers of the key",
            parameters.threshold()
        )));
    }
    let sid = channel.session_id();
    let protocol = Recovery {
        me,
        target,
        helpers: helper_set,
        others: parties.iter().copied().filter(|p| *p != me).collect(),
        refresh_id: sid.derive("recovery-refresh"),
        repair_id: sid.derive("recovery-repair"),
        holder,
        expected_key,
        core: None,
    };
    Ok(Session::new(protocol, channel))
}

impl Recovery {
    fn core(&mut self) -> Result<&mut RefreshCore, ProtocolError> {
        self.core
            .as_mut()
            .ok_or_else(|| ProtocolError::internal("refresh not started"))
    }

    /// The new holder: check the helpers' terms and packages and assemble the hollow share.
    fn assemble(
        &mut self,
        received: &BTreeMap<PartyIndex, Incoming>,
    ) -> Result<(crate::dkls::Party, Package), ProtocolError> {
        let expected = self
            .expected_key
            .ok_or_else(|| ProtocolError::internal("no expected key"))?;
        let mut terms = Vec::with_capacity(received.len());
        let mut package: Option<(Vec<u8>, Package)> = None;
        for (from, incoming) in received {
            let m: RepairMessage = decode(*from, incoming.p2p.as_ref(), "repair term")?;
            check_sender(m.term.helper, *from, "repair term")?;
            if PartyIndex::from_dkls(m.term.target) != Some(self.target) {
                return Err(ProtocolError::malformed(
                    *from,
                    "repair term is for another index",
                ));
            }
            if m.package.verifying_key() != expected.as_affine() {
                return Err(ProtocolError::malformed(
                    *from,
                    "public key package is for another key",
                ));
            }
            let bytes = encode(&m.package)?;
            match &package {
                None => package = Some((bytes, m.package.clone())),
                Some((first, _)) if *first != bytes => {
                    return Err(ProtocolError::malformed(
                        *from,
                        "public key package differs from the other helpers'",
                    ));
                }
                Some(_) => {}
            }
            terms.push(m.term);
        }
        let (_, package) = package.ok_or_else(|| ProtocolError::internal("no helper messages"))?;
        let party = repair_assemble(
            &package,
            self.target.to_dkls()?,
            &terms,
            dkls23::secp256k1::compute_eth_address,
        )
        .map_err(|e| {
            ProtocolError::Aborted(format!(
                "repair failed: {e} (retry with another helper set to isolate a bad helper)"
            ))
        })?;
        Ok((party, package))
    }
}

impl RoundProtocol for Recovery {
    type Output = KeyShare;

    fn rounds(&self) -> u16 {
        4
    }

    fn has_broadcast(&self, round: u16) -> bool {
        round >= 3
    }

    fn recipients(&self, round: u16) -> BTreeSet<PartyIndex> {
        match round {
            1 if self.helpers.contains(&self.me) => BTreeSet::from([self.target]),
            1 => BTreeSet::new(),
            _ => self.others.clone(),
        }
    }

    fn senders(&self, round: u16) -> BTreeSet<PartyIndex> {
        match round {
            1 if self.me == self.target => self.helpers.clone(),
            1 => BTreeSet::new(),
            _ => self.others.clone(),
        }
    }

    fn start(&mut self) -> Result<Outgoing, ProtocolError> {
        let mut out = Outgoing::default();
        if self.helpers.contains(&self.me) {
            let (party, package) = self
                .holder
                .as_ref()
                .ok_or_else(|| ProtocolError::internal("helper without share"))?;
            let helpers = self
                .helpers
                .iter()
                .map(|h| h.to_dkls())
                .collect::<Result<Vec<_>, _>>()?;
            let term = party
                .repair_term(&helpers, self.target.to_dkls()?, &self.repair_id)
                .map_err(|e| ProtocolError::InvalidInput(format!("cannot help repair: {e}")))?;
            out.p2p.insert(
                self.target,
                encode(&RepairMessage {
                    term,
                    package: package.clone(),
                })?,
            );
        }
        Ok(out)
    }

    fn advance(
        &mut self,
        round: u16,
        received: BTreeMap<PartyIndex, Incoming>,
    ) -> Result<Step<KeyShare>, ProtocolError> {
        match round {
            1 => {
                let (party, package) = match self.holder.take() {
                    Some(held) => held,
                    None => self.assemble(&received)?,
                };
                let mut core = RefreshCore::new(self.me, self.refresh_id.clone(), party, package);
                let out = core.start()?;
                self.core = Some(core);
                Ok(Step::Next(out))
            }
            2 => self.core()?.after_round1(&received).map(Step::Next),
            3 => self.core()?.after_round2(&received).map(Step::Next),
            4 => self.core()?.after_round3(&received).map(Step::Done),
            _ => Err(ProtocolError::internal(format!(
                "recovery has no round {round}"
            ))),
        }
    }
}
