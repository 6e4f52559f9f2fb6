//! After a crash, nothing waits for a session's lifetime (issue 10 §1b).
//!
//! Every join names the registered process that runs the participant's protocol (a server
//! party itself, or the Server Party API for a device) and that process's instance, fresh at
//! each start. The protocol state of a session lives only in that process's memory, so:
//!
//! - when a party announces a new instance (it restarted), or stops heartbeating for the
//!   registry's liveness timeout (it died, or cannot reach us), the sessions its earlier
//!   instance was running cannot finish. Those that had started fail at once with a reason that
//!   names the restart; a device's join in a session that had not started yet is undone instead,
//!   so the device may join again through any Server Party API. A server party's join is not
//!   undone: nothing would bring it back to a session it has forgotten.
//! - a session whose parties have not all joined within the join timeout fails ("timeout
//!   waiting for party … to join"), whatever the reason: an event lost with a process, a device
//!   that never called. Nobody is blamed: absence for an unknown reason is not misbehaviour.
//!
//! A coordinator restart loses nothing: sessions are in the database, and parties reconnect
//! with the same instance.

use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ParticipantStatus, PartyId, SessionStatus};
use mpc_store::coordinator::HostedParticipant;
use mpc_store::registry::PartyKind;

use crate::service::{Coordinator, now, short};

/// Sessions failed for missing joins per sweep; the rest wait for the next tick.
const JOIN_TIMEOUT_BATCH: u32 = 100;

/// Why a host's sessions cannot finish.
#[derive(Clone, Copy, Debug)]
enum HostGone {
    Restarted,
    Silent { seconds: u64 },
}

impl Coordinator {
    /// Records an announcement; when it comes from a new instance, ends what the party's
    /// earlier instances were running.
    pub async fn announce(
        &self,
        req: &pb::AnnouncePartyRequest,
    ) -> Result<pb::AnnouncePartyResponse, ApiError> {
        let announced = self.registry.announce(req, now()).await?;
        if let Some(instance) = &announced.new_instance {
            // Only what the database says decides, so a replica that saw a stale snapshot
            // merely repeats work that finds nothing.
            let hosted = self
                .store
                .hosted_by(&announced.party_id, Some(instance))
                .await?;
            if !hosted.is_empty() {
                tracing::warn!(
                    party_id = %announced.party_id,
                    sessions = hosted.len(),
                    "party {} restarted: ending the sessions its previous instance was running",
                    announced.party_id
                );
            }
            self.host_gone(
                &announced.party_id,
                announced.kind,
                hosted,
                HostGone::Restarted,
            )
            .await;
        }
        Ok(announced.response)
    }

    /// Ends the sessions run by registered parties that stopped heartbeating.
    pub(crate) async fn sweep_silent_hosts(&self) {
        let config = self.registry.config();
        if !config.enforce || !config.fail_silent_hosts {
            return;
        }
        let statuses = match self.registry.statuses(now()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "host sweep cannot read the registry");
                return;
            }
        };
        let seconds = self.registry.config().liveness_timeout.as_secs();
        // A party silent for longer than any session lives runs nothing that is not over.
        let horizon =
            chrono::TimeDelta::from_std(self.lifetimes.max).unwrap_or(chrono::TimeDelta::MAX);
        let since = now() - horizon;
        for status in statuses
            .into_iter()
            .filter(|s| !s.live && s.party.last_seen >= since)
        {
            let party = &status.party;
            match self.store.hosted_by(&party.party_id, None).await {
                Ok(hosted) if !hosted.is_empty() => {
                    self.host_gone(
                        &party.party_id,
                        party.kind,
                        hosted,
                        HostGone::Silent { seconds },
                    )
                    .await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(party_id = %party.party_id, error = %e, "host sweep cannot read sessions")
                }
            }
        }
    }

    async fn host_gone(
        &self,
        host: &PartyId,
        kind: PartyKind,
        hosted: Vec<HostedParticipant>,
        why: HostGone,
    ) {
        for h in hosted {
            let started = h.session_status == SessionStatus::InProgress;
            if kind == PartyKind::PartyApi && !started {
                // The device's request died with the API; its session had not started, so it
                // may simply join again.
                match self
                    .store
                    .reset_join(h.session_id, &h.party_id, &h.instance_id, now())
                    .await
                {
                    Ok(true) => {
                        tracing::info!(session_id = %h.session_id, party_id = %h.party_id, "Party {} may join session {} again: the Server Party API that joined for it is gone", h.party_id, short(h.session_id));
                        continue;
                    }
                    // It started meanwhile: fail it like the others.
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(session_id = %h.session_id, error = %e, "cannot undo a join");
                        continue;
                    }
                }
            }
            let session = match self.get(h.session_id).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(session_id = %h.session_id, error = %e, "cannot read a session of a gone host");
                    continue;
                }
            };
            // Its participant may have finished its part already (reported); nothing is lost.
            let still_needed = session.participant(&h.party_id).is_some_and(|p| {
                matches!(
                    p.status,
                    ParticipantStatus::Joined
                        | ParticipantStatus::Ready
                        | ParticipantStatus::Computing
                )
            });
            if !still_needed {
                continue;
            }
            let who = if kind == PartyKind::PartyApi {
                format!("the Server Party API ({host}) running party {}", h.party_id)
            } else {
                format!("party {host}")
            };
            let what = match why {
                HostGone::Restarted => {
                    format!("{who} restarted during the session and lost its protocol state")
                }
                HostGone::Silent { seconds } => format!(
                    "{who} stopped responding (no heartbeat for {seconds} s: it stopped or crashed)"
                ),
            };
            let reason = format!("{} failed: {what}", session.session_type);
            if let Err(e) = self
                .end_session(session, SessionStatus::Failed, reason, None)
                .await
            {
                tracing::warn!(session_id = %h.session_id, error = %e, "cannot fail a session of a gone host");
            }
        }
    }

    /// Fails sessions whose parties did not all join within the join timeout.
    pub(crate) async fn fail_unjoined(&self) {
        let Ok(timeout) = chrono::TimeDelta::from_std(self.lifetimes.join) else {
            return;
        };
        let ids = match self
            .store
            .unstarted_sessions(now() - timeout, JOIN_TIMEOUT_BATCH)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "join-timeout sweep cannot read sessions");
                return;
            }
        };
        for id in ids {
            let session = match self.get(id).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(session_id = %id, error = %e, "join-timeout sweep cannot read session");
                    continue;
                }
            };
            let missing: Vec<&str> = session
                .participants
                .iter()
                .filter(|p| p.status == ParticipantStatus::Invited)
                .map(|p| p.party_id.as_str())
                .collect();
            let who = match missing.as_slice() {
                [] => "the other parties".to_owned(),
                [one] => format!("party {one}"),
                many => format!("parties {}", many.join(", ")),
            };
            let reason = format!(
                "{} failed: timeout waiting for {who} to join (join timeout {} s)",
                session.session_type,
                self.lifetimes.join.as_secs()
            );
            if let Err(e) = self
                .end_session(session, SessionStatus::Failed, reason, None)
                .await
            {
                tracing::warn!(session_id = %id, error = %e, "cannot fail an unjoined session");
            }
        }
    }
}

impl Coordinator {
    /// A join for `party` arrived from a new instance of the process whose earlier instance
    /// `old` had joined: that one is gone.
    pub(crate) async fn joined_by_gone_instance(
        &self,
        session: &mpc_store::coordinator::SessionRecord,
        party: &PartyId,
        old: mpc_store::coordinator::Host,
    ) {
        // A server party runs its own protocol; anything else is a device run by an API.
        let kind = if &old.party_id == party {
            PartyKind::Server
        } else {
            PartyKind::PartyApi
        };
        let hosted = vec![HostedParticipant {
            session_id: session.id,
            party_id: party.clone(),
            session_status: session.status,
            instance_id: old.instance_id,
        }];
        self.host_gone(&old.party_id, kind, hosted, HostGone::Restarted)
            .await;
    }
}
