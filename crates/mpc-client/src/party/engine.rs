//! Running the engine for the session type: the checks before anything is sent, then the
//! message loop (engine steps on `spawn_blocking`, envelopes through the router).

use std::sync::Arc;

use mpc_proto::PartyId;
use mpc_proto::SessionType;
use mpc_proto::pb::mpc::router::v1::MpcMessage;
use mpc_protocol::{
    Message, Parameters, ProtocolError, RecoveryRole, RoundProtocol, SecureChannel, Session,
    SessionKeys,
};

use super::error::PartyError;
use super::roster::Roster;
use super::session::{Base, Interrupt};
use super::transport::{Inbox, send};
use super::{PartyOutput, PartyWork, Progress};
use crate::compute::{ComputePool, Priority};

impl Base<'_> {
    pub(super) async fn run_engine(
        &mut self,
        roster: &Roster,
        keys: SessionKeys,
        work: PartyWork,
    ) -> Result<PartyOutput, PartyError> {
        let channel = SecureChannel::establish(keys, &roster.engine_entries())
            .map_err(|e| protocol(roster, e))?;
        let t = roster.threshold.t;
        let n = roster.threshold.n;
        let parameters = Parameters::new(t, n).map_err(|e| protocol(roster, e))?;
        let mismatch = |what: &str| PartyError::Mismatch(what.to_owned());
        match (roster.session_type, work) {
            (SessionType::Keygen, PartyWork::Keygen) => {
                if roster.parties.len() != usize::from(n) {
                    return Err(mismatch("a keygen needs all threshold_n parties"));
                }
                let session =
                    mpc_protocol::keygen(parameters, channel).map_err(|e| protocol(roster, e))?;
                self.drive(roster, session).await.map(PartyOutput::Share)
            }
            (SessionType::Sign, PartyWork::Sign { share, expected }) => {
                check_share(roster, &share, parameters)?;
                if let Some(key_id) = &expected.key_id
                    && *key_id != roster.key_id
                {
                    return Err(PartyError::Mismatch(format!(
                        "the session signs with key {}, not with key {key_id}",
                        roster.key_id
                    )));
                }
                let hash = roster
                    .message_hash
                    .ok_or_else(|| mismatch("the sign session has no message hash"))?;
                if expected.message_hash.is_some_and(|h| h != hash) {
                    return Err(mismatch(
                        "the session's message hash is not the one this party was asked to sign",
                    ));
                }
                let session =
                    mpc_protocol::sign(share, hash, channel).map_err(|e| protocol(roster, e))?;
                // One hash: the batch of one's only signature.
                let signature = self
                    .drive(roster, session)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        PartyError::Internal("the engine returned no signature".into())
                    })?;
                Ok(PartyOutput::Signature(signature))
            }
            (SessionType::Refresh, PartyWork::Refresh { share }) => {
                check_share(roster, &share, parameters)?;
                let session =
                    mpc_protocol::refresh(&share, channel).map_err(|e| protocol(roster, e))?;
                self.drive(roster, session).await.map(PartyOutput::Share)
            }
            (SessionType::Recovery, PartyWork::Recovery { share }) => {
                let roles = roster
                    .recovery
                    .as_ref()
                    .ok_or_else(|| mismatch("the recovery session has no roles"))?;
                let index_of = |p: &PartyId| {
                    roster
                        .party(p)
                        .map(|e| e.index)
                        .ok_or_else(|| mismatch("a recovery role names a non-participant"))
                };
                let target = index_of(&roles.target)?;
                let helpers = roles
                    .helpers
                    .iter()
                    .map(index_of)
                    .collect::<Result<Vec<_>, _>>()?;
                let public_key = roster
                    .public_key
                    .ok_or_else(|| mismatch("the recovery session has no public key"))?;
                let session = match (&share, target == roster.my_index) {
                    (None, true) => mpc_protocol::recover(
                        RecoveryRole::NewHolder {
                            parameters,
                            public_key,
                        },
                        target,
                        &helpers,
                        channel,
                    ),
                    (Some(share), false) => {
                        check_share(roster, share, parameters)?;
                        mpc_protocol::recover(
                            RecoveryRole::Holder(share),
                            target,
                            &helpers,
                            channel,
                        )
                    }
                    (Some(_), true) => {
                        return Err(mismatch("the recovery's target brings no share"));
                    }
                    (None, false) => {
                        return Err(mismatch("this party needs its share to help the recovery"));
                    }
                }
                .map_err(|e| protocol(roster, e))?;
                self.drive(roster, session).await.map(PartyOutput::Share)
            }
            (ty, work) => Err(PartyError::Mismatch(format!(
                "this party was asked for {} but the session is a {ty} session",
                work.describe()
            ))),
        }
    }

    /// Feeds the engine every envelope addressed to us and sends what it answers, until it
    /// has its output.
    async fn drive<P>(
        &mut self,
        roster: &Roster,
        session: Session<P>,
    ) -> Result<P::Output, PartyError>
    where
        P: RoundProtocol + Send + 'static,
        P::Output: Send + 'static,
    {
        let ctx = self.ctx;
        let mut inbox = Inbox::spawn(
            ctx.clone(),
            self.token.clone(),
            roster.session_id,
            roster.me.clone(),
        );
        let (compute, priority) = (&ctx.compute, roster.priority());
        let (mut session, first) = blocking(compute, priority, session, |s| s.start()).await?;
        let first = first.map_err(|e| protocol(roster, e))?;
        self.send_all(roster, &session, first).await?;
        loop {
            if let Some(output) = session.take_output() {
                return Ok(output);
            }
            let envelope = match self.guard(inbox.next()).await {
                Ok(envelope) => envelope,
                Err(Interrupt::Deadline) => return Err(timeout(roster, &session)),
                Err(Interrupt::Stop(e)) => return Err(e),
            };
            let (round, seq) = (envelope.round, envelope.seq);
            let Some((message, from)) = incoming(roster, envelope) else {
                continue;
            };
            ctx.progress(&Progress::Received {
                session_id: roster.session_id,
                from,
                round,
                seq,
            });
            let (next, replies) =
                blocking(compute, priority, session, move |s| s.handle(message)).await?;
            session = next;
            let replies = replies.map_err(|e| protocol(roster, e))?;
            self.send_all(roster, &session, replies).await?;
        }
    }

    async fn send_all<P: RoundProtocol>(
        &mut self,
        roster: &Roster,
        session: &Session<P>,
        messages: Vec<Message>,
    ) -> Result<(), PartyError> {
        if messages.is_empty() {
            return Ok(());
        }
        let ctx = self.ctx;
        let mut envelopes = Vec::with_capacity(messages.len());
        let mut recipients = Vec::with_capacity(messages.len());
        for m in messages {
            let to = roster
                .party_at(m.to)
                .ok_or_else(|| PartyError::Internal(format!("no party at index {}", m.to)))?;
            recipients.push((to.party_id.clone(), u32::from(m.round)));
            envelopes.push(MpcMessage {
                message_id: uuid::Uuid::new_v4().to_string(),
                session_id: roster.session_id.to_string(),
                from_party: roster.me.to_string(),
                to_party: to.party_id.to_string(),
                round: u32::from(m.round),
                payload: m.payload,
                seq: 0,
                created_at: String::new(),
            });
        }
        let token = self.token.clone();
        let sends = envelopes
            .iter()
            .map(|e| send(&ctx.router, &token, e.clone(), &ctx.options));
        match self
            .guard(async { futures::future::try_join_all(sends).await.map(drop) })
            .await
        {
            Ok(()) => {}
            Err(Interrupt::Deadline) => return Err(timeout(roster, session)),
            Err(Interrupt::Stop(e)) => return Err(e),
        }
        for (to, round) in recipients {
            ctx.progress(&Progress::Sent {
                session_id: roster.session_id,
                to,
                round,
            });
        }
        Ok(())
    }
}

/// Moves the engine session onto a blocking thread for one step (keygen and refresh rounds take
/// up to a second of CPU) and back, holding one of the machine's CPU permits only while the
/// step runs (never while waiting for other parties).
async fn blocking<P, T>(
    compute: &ComputePool,
    priority: Priority,
    mut session: Session<P>,
    step: impl FnOnce(&mut Session<P>) -> T + Send + 'static,
) -> Result<(Session<P>, T), PartyError>
where
    P: RoundProtocol + Send + 'static,
    P::Output: Send + 'static,
    T: Send + 'static,
{
    let permit = compute.acquire(priority).await;
    let stepped = tokio::task::spawn_blocking(move || {
        let out = step(&mut session);
        (session, out)
    })
    .await;
    drop(permit);
    stepped.map_err(|e| PartyError::Internal(format!("engine task failed: {e}")))
}

/// The engine message for an envelope, or `None` for one we cannot attribute (the router only
/// relays between the session's parties, so this does not happen with an honest router).
fn incoming(roster: &Roster, envelope: MpcMessage) -> Option<(Message, PartyId)> {
    let from = roster
        .parties
        .iter()
        .find(|p| p.party_id.as_str() == envelope.from_party)?;
    // Out of range: the engine blames the sender for a round it has no business in.
    let round = u16::try_from(envelope.round).unwrap_or(u16::MAX);
    if from.party_id == roster.me {
        tracing::warn!(session_id = %roster.session_id, "ignoring an envelope that claims to be from us");
        return None;
    }
    Some((
        Message {
            from: from.index,
            to: roster.my_index,
            round,
            payload: envelope.payload,
        },
        from.party_id.clone(),
    ))
}

fn protocol(roster: &Roster, error: ProtocolError) -> PartyError {
    let blamed = error
        .blamed_party()
        .and_then(|i| roster.party_at(i))
        .map(|p| p.party_id.clone());
    PartyError::Protocol { error, blamed }
}

fn timeout<P: RoundProtocol>(roster: &Roster, session: &Session<P>) -> PartyError {
    PartyError::Timeout {
        waiting_for: roster.names(&session.waiting_for()),
        round: Some(session.current_round()),
    }
}

fn check_share(
    roster: &Roster,
    share: &Arc<mpc_protocol::KeyShare>,
    parameters: Parameters,
) -> Result<(), PartyError> {
    if Some(share.public_key()) != roster.public_key {
        return Err(PartyError::Mismatch(format!(
            "the session's public key is not the key of this party's share for {}",
            roster.key_id
        )));
    }
    if share.index() != roster.my_index {
        return Err(PartyError::Mismatch(format!(
            "this party's share is at index {}, the session puts it at {}",
            share.index(),
            roster.my_index
        )));
    }
    if share.parameters() != parameters {
        return Err(PartyError::Mismatch(
            "the session's threshold is not this share's".into(),
        ));
    }
    Ok(())
}
