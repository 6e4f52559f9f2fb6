//! Runs every party of a session in this process, one after the other, delivering each phase's
//! messages only after every party has produced them (the protocol's own rounds). Each party's CPU
//! time is measured per phase, so the *critical path* (the sum over phases of the slowest party)
//! is what the session would take if every party had its own core and the network were free.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use mpc_protocol::{
    IdentityKey, KeyShare, Message, MessageHash, Parameters, PartyIndex, RosterEntry,
    RoundProtocol, SecureChannel, Session, SessionId, SessionKeys, Signature,
};

/// CPU time of each party in each phase: `[phase][party]`.
#[derive(Clone, Debug, Default)]
pub struct PhaseTimes(pub Vec<Vec<Duration>>);

impl PhaseTimes {
    fn add(&mut self, phase: usize, party: usize, parties: usize, d: Duration) {
        while self.0.len() <= phase {
            self.0.push(vec![Duration::ZERO; parties]);
        }
        self.0[phase][party] += d;
    }

    /// All parties' CPU time.
    pub fn total(&self) -> Duration {
        self.0.iter().flatten().sum()
    }

    /// Sum over phases of the slowest party.
    pub fn critical_path(&self) -> Duration {
        self.0
            .iter()
            .map(|p| p.iter().copied().max().unwrap_or_default())
            .sum()
    }
}

/// The outcome of one in-process run.
pub struct LocalRun<O> {
    pub outputs: Vec<O>,
    pub times: PhaseTimes,
    /// Wall-clock time of the sequential run.
    pub wall: Duration,
    pub messages: usize,
    pub bytes: usize,
}

fn thread_cpu() -> Result<cpu_time::ThreadTime> {
    cpu_time::ThreadTime::try_now().context("reading the thread CPU clock")
}

/// Creates identities and session keys for `indices`, then each party's channel and protocol
/// session with `make`; the per-session work (session keys, channel) is timed as phase 0.
fn setup<P: RoundProtocol>(
    indices: &[PartyIndex],
    times: &mut PhaseTimes,
    mut make: impl FnMut(usize, SecureChannel) -> Result<Session<P>>,
) -> Result<Vec<Session<P>>> {
    let n = indices.len();
    let sid = SessionId::random()?;
    let identities: Vec<IdentityKey> = indices
        .iter()
        .map(|_| IdentityKey::generate())
        .collect::<Result<_, _>>()?;
    let mut keys = Vec::with_capacity(n);
    for (i, (index, identity)) in indices.iter().zip(&identities).enumerate() {
        let t0 = thread_cpu()?;
        keys.push(SessionKeys::generate(identity, &sid, *index)?);
        times.add(0, i, n, t0.try_elapsed()?);
    }
    let roster: Vec<RosterEntry> = indices
        .iter()
        .zip(&identities)
        .zip(&keys)
        .map(|((index, id), k)| RosterEntry {
            index: *index,
            identity: id.public_key(),
            announcement: k.announcement().to_vec(),
        })
        .collect();
    let mut sessions = Vec::with_capacity(n);
    for (i, k) in keys.into_iter().enumerate() {
        let t0 = thread_cpu()?;
        let channel = SecureChannel::establish(k, &roster)?;
        sessions.push(make(i, channel)?);
        times.add(0, i, n, t0.try_elapsed()?);
    }
    Ok(sessions)
}

/// Drives the sessions to completion phase by phase. `progress` is told when each phase ends.
pub fn drive<P: RoundProtocol>(
    mut sessions: Vec<Session<P>>,
    mut times: PhaseTimes,
    progress: &mut dyn FnMut(usize),
) -> Result<LocalRun<P::Output>> {
    let n = sessions.len();
    let wall = Instant::now();
    let position =
        |p: PartyIndex, sessions: &[Session<P>]| sessions.iter().position(|s| s.me() == p);
    let mut outbox: Vec<Message> = Vec::new();
    for (i, s) in sessions.iter_mut().enumerate() {
        let t0 = thread_cpu()?;
        outbox.extend(s.start()?);
        times.add(0, i, n, t0.try_elapsed()?);
    }
    let (mut messages, mut bytes) = (0, 0);
    let mut phase = 0;
    progress(phase);
    while !sessions.iter().all(|s| s.is_finished()) {
        if outbox.is_empty() {
            let waiting: Vec<_> = sessions.iter().map(|s| (s.me(), s.waiting_for())).collect();
            return Err(anyhow!("sessions stalled waiting for {waiting:?}"));
        }
        phase += 1;
        let mut next = Vec::new();
        for m in std::mem::take(&mut outbox) {
            messages += 1;
            bytes += m.payload.len();
            let i = position(m.to, &sessions)
                .ok_or_else(|| anyhow!("message for unknown party {}", m.to))?;
            let t0 = thread_cpu()?;
            next.extend(sessions[i].handle(m)?);
            times.add(phase, i, n, t0.try_elapsed()?);
        }
        outbox = next;
        progress(phase);
    }
    let outputs = sessions
        .iter_mut()
        .map(|s| {
            s.take_output()
                .ok_or_else(|| anyhow!("party {} finished without output", s.me()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LocalRun {
        outputs,
        times,
        wall: wall.elapsed(),
        messages,
        bytes,
    })
}

/// A `t`-of-`n` keygen among `n` in-process parties.
pub fn keygen(t: u16, n: u16, progress: &mut dyn FnMut(usize)) -> Result<LocalRun<KeyShare>> {
    let params = Parameters::new(t, n)?;
    let indices: Vec<PartyIndex> = params.indices().collect();
    let mut times = PhaseTimes::default();
    let sessions = setup(&indices, &mut times, |_, c| {
        Ok(mpc_protocol::keygen(params, c)?)
    })?;
    drive(sessions, times, progress)
}

/// Signs `hash` with the given shares (exactly `t` of them).
pub fn sign(
    shares: &[Arc<KeyShare>],
    hash: MessageHash,
    progress: &mut dyn FnMut(usize),
) -> Result<LocalRun<Signature>> {
    let run = sign_batch(shares, &[hash], progress)?;
    let outputs = run
        .outputs
        .into_iter()
        .map(|sigs| {
            sigs.into_iter()
                .next()
                .ok_or_else(|| anyhow!("a signer returned no signature"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LocalRun {
        outputs,
        times: run.times,
        wall: run.wall,
        messages: run.messages,
        bytes: run.bytes,
    })
}

/// Signs every hash of `hashes` in one session (a batch): one signature list per signer.
pub fn sign_batch(
    shares: &[Arc<KeyShare>],
    hashes: &[MessageHash],
    progress: &mut dyn FnMut(usize),
) -> Result<LocalRun<Vec<Signature>>> {
    let indices: Vec<PartyIndex> = shares.iter().map(|s| s.index()).collect();
    let mut times = PhaseTimes::default();
    let sessions = setup(&indices, &mut times, |i, c| {
        Ok(mpc_protocol::sign_batch(
            shares[i].clone(),
            hashes.to_vec(),
            None,
            c,
        )?)
    })?;
    drive(sessions, times, progress)
}

/// Checks a signature the way a wallet would, with `k256` (not with the engine): low-s, valid,
/// and `ecrecover(hash, r, s, v)` returns the group key.
pub fn verify(public_key: &[u8; 65], hash: &MessageHash, sig: &Signature) -> Result<()> {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    use k256::ecdsa::{RecoveryId, VerifyingKey};
    let vk = VerifyingKey::from_sec1_bytes(public_key).context("group key")?;
    let s = k256::ecdsa::Signature::from_scalars(sig.r, sig.s).context("signature scalars")?;
    if s.normalize_s() != s {
        return Err(anyhow!("signature is not low-s"));
    }
    vk.verify_prehash(hash.as_bytes(), &s)
        .context("signature does not verify")?;
    let v = RecoveryId::from_byte(sig.v)
        .ok_or_else(|| anyhow!("recovery id {} is not 0 or 1", sig.v))?;
    let recovered =
        VerifyingKey::recover_from_prehash(hash.as_bytes(), &s, v).context("ecrecover")?;
    if recovered != vk {
        return Err(anyhow!("ecrecover returned another key"));
    }
    Ok(())
}

/// Wall-clock time of a `t`-of-`n` keygen with every party on its own thread of this process,
/// exchanging messages over in-memory channels: the engine's latency on this machine's cores,
/// with no network, database or services. The baseline for the service benchmark.
pub fn keygen_parallel_wall(t: u16, n: u16) -> Result<Duration> {
    use std::sync::mpsc;
    let params = Parameters::new(t, n)?;
    let indices: Vec<PartyIndex> = params.indices().collect();
    let mut times = PhaseTimes::default();
    let sessions = setup(&indices, &mut times, |_, c| {
        Ok(mpc_protocol::keygen(params, c)?)
    })?;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        indices.iter().map(|_| mpsc::channel::<Message>()).unzip();
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = sessions
            .into_iter()
            .zip(receivers)
            .map(|(mut session, inbox)| {
                let senders = senders.clone();
                scope.spawn(move || -> Result<()> {
                    let send = |out: Vec<Message>| -> Result<()> {
                        for m in out {
                            senders[m.to.get() as usize]
                                .send(m)
                                .map_err(|_| anyhow!("a party stopped early"))?;
                        }
                        Ok(())
                    };
                    send(session.start()?)?;
                    while !session.is_finished() {
                        let m = inbox
                            .recv_timeout(Duration::from_secs(120))
                            .context("no message for 120 s")?;
                        send(session.handle(m)?)?;
                    }
                    session
                        .take_output()
                        .map(|_| ())
                        .ok_or_else(|| anyhow!("finished without output"))
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow!("a party thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(started.elapsed())
}
