//! The `dkls23` library driven bare, as `shared/reference/dkls23-raw-bench` drives it: every
//! message serialised with the library's postcard framing and routed as opaque bytes, but with no
//! encryption, authentication or round bookkeeping. This is the baseline the engine's overhead is
//! measured against (`mpc bench --in-process`); it is benchmark code, never used for real keys.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use dkls23::protocols::dkg::{
    BroadcastDerivationPhase2to4, BroadcastDerivationPhase3to4, ProofCommitment,
    TransmitInitMulPhase3to4, TransmitInitZeroSharePhase2to4, TransmitInitZeroSharePhase3to4,
};
use dkls23::protocols::messages::{MessageTag, PhaseInput, PhaseOutput};
use dkls23::protocols::signing::{Broadcast3to4, SignData, TransmitPhase1to2, TransmitPhase2to3};
use dkls23::protocols::{Parameters, Party, PartyIndex};
use dkls23::secp256k1::compute_eth_address;
use dkls23::utilities::hashes::HashOutput;
use dkls23::{DkgSession, SignSession};
use serde::{Deserialize, Serialize};

use crate::local::PhaseTimes;

type C = k256::Secp256k1;

#[derive(Serialize, Deserialize)]
struct PolyFragment {
    scalar: k256::Scalar,
}
impl MessageTag for PolyFragment {
    const TAG: u8 = 0x80;
}

#[derive(Serialize, Deserialize)]
struct CommitOnly {
    index: PartyIndex,
    commitment: HashOutput,
}
impl MessageTag for CommitOnly {
    const TAG: u8 = 0x81;
}

fn pi(i: u8) -> Result<PartyIndex> {
    PartyIndex::new(i).map_err(|e| anyhow!("{e}"))
}

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// What each party receives from the others' phase outputs.
fn route(outputs: &BTreeMap<u8, PhaseOutput>, ids: &[u8]) -> BTreeMap<u8, PhaseInput> {
    let mut inputs = BTreeMap::new();
    for &r in ids {
        let mut input = PhaseInput {
            broadcasts: BTreeMap::new(),
            p2p: BTreeMap::new(),
        };
        for (&s, out) in outputs {
            if s == r {
                continue;
            }
            if !out.broadcasts.is_empty() {
                input.broadcasts.insert(s, out.broadcasts.concat());
            }
            if let Some(b) = out.p2p.get(&r) {
                input.p2p.insert(s, b.clone());
            }
        }
        inputs.insert(r, input);
    }
    inputs
}

struct Timer<'a> {
    times: &'a mut PhaseTimes,
    parties: usize,
}

impl Timer<'_> {
    fn time<T>(&mut self, phase: usize, party: usize, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t0 = cpu_time::ThreadTime::try_now()?;
        let out = f()?;
        let d = t0.try_elapsed()?;
        while self.times.0.len() <= phase {
            self.times
                .0
                .push(vec![std::time::Duration::ZERO; self.parties]);
        }
        self.times.0[phase][party] += d;
        Ok(out)
    }
}

/// A raw `t`-of-`n` DKG; returns the parties (for signing) and the per-phase CPU times.
pub fn dkg(t: u8, n: u8) -> Result<(Vec<Party<C>>, PhaseTimes)> {
    let params = Parameters::new(t, n).map_err(err)?;
    let ids: Vec<u8> = (1..=n).collect();
    let mut session_id = [0u8; 32];
    getrandom_fill(&mut session_id)?;
    let mut times = PhaseTimes::default();
    let mut timer = Timer {
        times: &mut times,
        parties: n as usize,
    };
    let mut sessions: BTreeMap<u8, Option<DkgSession<C>>> = BTreeMap::new();
    for &i in &ids {
        sessions.insert(
            i,
            Some(DkgSession::<C>::new(
                params.clone(),
                pi(i)?,
                session_id.to_vec(),
            )),
        );
    }

    let mut own_fragment = BTreeMap::new();
    let mut outs = BTreeMap::new();
    for &i in &ids {
        let out = timer.time(0, (i - 1) as usize, || {
            let fragments = sessions[&i]
                .as_ref()
                .ok_or_else(|| anyhow!("no session"))?
                .phase1();
            let mut out = PhaseOutput::new();
            for &j in &ids {
                if j != i {
                    out.add_p2p(
                        j,
                        &PolyFragment {
                            scalar: fragments[(j - 1) as usize],
                        },
                    )
                    .map_err(err)?;
                }
            }
            own_fragment.insert(i, fragments[(i - 1) as usize]);
            Ok(out)
        })?;
        outs.insert(i, out);
    }
    let in1 = route(&outs, &ids);

    let mut own_proof = BTreeMap::new();
    let mut own_bip2 = BTreeMap::new();
    let mut outs = BTreeMap::new();
    for &i in &ids {
        let s = sessions
            .get_mut(&i)
            .and_then(Option::as_mut)
            .ok_or_else(|| anyhow!("no session"))?;
        let out = timer.time(1, (i - 1) as usize, || {
            let mut fragments = vec![own_fragment[&i]];
            for &j in &ids {
                if j != i {
                    fragments.push(in1[&i].get_p2p::<PolyFragment>(j).map_err(err)?.scalar);
                }
            }
            let (proof, zero, bip) = s.phase2(&fragments).map_err(err)?;
            let mut out = PhaseOutput::new();
            out.add_broadcast(&CommitOnly {
                index: proof.index,
                commitment: proof.commitment,
            })
            .map_err(err)?;
            out.add_broadcast(&bip).map_err(err)?;
            for m in &zero {
                out.add_p2p(m.parties.receiver.as_u8(), m).map_err(err)?;
            }
            own_proof.insert(i, proof);
            own_bip2.insert(i, bip);
            Ok(out)
        })?;
        outs.insert(i, out);
    }
    let in2 = route(&outs, &ids);

    let mut own_bip3 = BTreeMap::new();
    let mut outs = BTreeMap::new();
    for &i in &ids {
        let s = sessions
            .get_mut(&i)
            .and_then(Option::as_mut)
            .ok_or_else(|| anyhow!("no session"))?;
        let out = timer.time(2, (i - 1) as usize, || {
            let (zero, mul, bip) = s.phase3().map_err(err)?;
            let mut out = PhaseOutput::new();
            out.add_broadcast(&own_proof[&i]).map_err(err)?;
            out.add_broadcast(&bip).map_err(err)?;
            for m in &zero {
                out.add_p2p(m.parties.receiver.as_u8(), m).map_err(err)?;
            }
            for m in &mul {
                out.add_p2p(m.parties.receiver.as_u8(), m).map_err(err)?;
            }
            own_bip3.insert(i, bip);
            Ok(out)
        })?;
        outs.insert(i, out);
    }
    let in3 = route(&outs, &ids);

    let mut parties = Vec::new();
    for &i in &ids {
        let s = sessions
            .get_mut(&i)
            .and_then(Option::take)
            .ok_or_else(|| anyhow!("no session"))?;
        let party = timer.time(3, (i - 1) as usize, || {
            let mut proofs = vec![own_proof[&i].clone()];
            let (mut zero2, mut zero3, mut mul3) = (Vec::new(), Vec::new(), Vec::new());
            let mut bip2 = BTreeMap::from([(pi(i)?, own_bip2[&i].clone())]);
            let mut bip3 = BTreeMap::from([(pi(i)?, own_bip3[&i].clone())]);
            for &j in &ids {
                if j == i {
                    continue;
                }
                let c: CommitOnly = in2[&i].get_broadcast(j).map_err(err)?;
                let p: ProofCommitment<C> = in3[&i].get_broadcast(j).map_err(err)?;
                if c.index != pi(j)? || p.index != pi(j)? || p.commitment != c.commitment {
                    return Err(anyhow!("commitment mismatch"));
                }
                proofs.push(p);
                bip2.insert(
                    pi(j)?,
                    in2[&i]
                        .get_broadcast::<BroadcastDerivationPhase2to4>(j)
                        .map_err(err)?,
                );
                bip3.insert(
                    pi(j)?,
                    in3[&i]
                        .get_broadcast::<BroadcastDerivationPhase3to4>(j)
                        .map_err(err)?,
                );
                zero2.push(
                    in2[&i]
                        .get_p2p::<TransmitInitZeroSharePhase2to4>(j)
                        .map_err(err)?,
                );
                zero3.push(
                    in3[&i]
                        .get_p2p::<TransmitInitZeroSharePhase3to4>(j)
                        .map_err(err)?,
                );
                mul3.push(
                    in3[&i]
                        .get_p2p::<TransmitInitMulPhase3to4<C>>(j)
                        .map_err(err)?,
                );
            }
            let (party, _package) = s
                .phase4(
                    &proofs,
                    &zero2,
                    &zero3,
                    &mul3,
                    &bip2,
                    &bip3,
                    compute_eth_address,
                )
                .map_err(err)?;
            Ok(party)
        })?;
        parties.push(party);
    }
    Ok((parties, times))
}

/// A raw signature by `signers` (1-based indices into `parties`).
pub fn sign(parties: &[Party<C>], signers: &[u8], hash: [u8; 32]) -> Result<PhaseTimes> {
    let mut sign_id = [0u8; 32];
    getrandom_fill(&mut sign_id)?;
    let mut times = PhaseTimes::default();
    let mut timer = Timer {
        times: &mut times,
        parties: signers.len(),
    };
    let slot = |i: u8| signers.iter().position(|s| *s == i).unwrap_or(0);

    let mut sessions = BTreeMap::new();
    let mut outs = BTreeMap::new();
    for &i in signers {
        let (s, out) = timer.time(0, slot(i), || {
            let counterparties = signers
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| pi(j))
                .collect::<Result<Vec<_>>>()?;
            let data = SignData {
                sign_id: sign_id.to_vec(),
                counterparties,
                message_hash: hash,
            };
            let (s, tx) = SignSession::new(&parties[(i - 1) as usize], data).map_err(err)?;
            let mut out = PhaseOutput::new();
            for m in &tx {
                out.add_p2p(m.parties.receiver.as_u8(), m).map_err(err)?;
            }
            Ok((s, out))
        })?;
        sessions.insert(i, Some(s));
        outs.insert(i, out);
    }
    let in1 = route(&outs, signers);

    let mut outs = BTreeMap::new();
    for &i in signers {
        let s = sessions
            .get_mut(&i)
            .and_then(Option::as_mut)
            .ok_or_else(|| anyhow!("no session"))?;
        let out = timer.time(1, slot(i), || {
            let recv: Vec<TransmitPhase1to2> = signers
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| in1[&i].get_p2p(j).map_err(err))
                .collect::<Result<_>>()?;
            let tx = s.phase2(&recv).map_err(err)?;
            let mut out = PhaseOutput::new();
            for m in &tx {
                out.add_p2p(m.parties.receiver.as_u8(), m).map_err(err)?;
            }
            Ok(out)
        })?;
        outs.insert(i, out);
    }
    let in2 = route(&outs, signers);

    let mut own = BTreeMap::new();
    let mut outs = BTreeMap::new();
    for &i in signers {
        let s = sessions
            .get_mut(&i)
            .and_then(Option::as_mut)
            .ok_or_else(|| anyhow!("no session"))?;
        let out = timer.time(2, slot(i), || {
            let recv: Vec<TransmitPhase2to3<C>> = signers
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| in2[&i].get_p2p(j).map_err(err))
                .collect::<Result<_>>()?;
            let bc = s.phase3(&recv).map_err(err)?;
            let mut out = PhaseOutput::new();
            out.add_broadcast(&bc).map_err(err)?;
            own.insert(i, bc);
            Ok(out)
        })?;
        outs.insert(i, out);
    }
    let in3 = route(&outs, signers);

    for &i in signers {
        let s = sessions
            .get_mut(&i)
            .and_then(Option::take)
            .ok_or_else(|| anyhow!("no session"))?;
        timer.time(3, slot(i), || {
            let mut all = vec![own[&i].clone()];
            for &j in signers {
                if j != i {
                    all.push(in3[&i].get_broadcast::<Broadcast3to4<C>>(j).map_err(err)?);
                }
            }
            s.phase4(&all, true).map_err(err)?;
            Ok(())
        })?;
    }
    Ok(times)
}

fn getrandom_fill(buf: &mut [u8]) -> Result<()> {
    use rand::Rng;
    rand::rng().fill_bytes(buf);
    Ok(())
}
