//! The driver's steps: join, wait for the start, run the engine, report.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ErrorCode, JoinClaims, PartyId, SessionId, SessionStatus};
use mpc_protocol::{PartyIndex, SessionKeys};
use tokio::time::Instant;

use super::error::PartyError;
use super::roster::{Roster, engine_session_id};
use super::transport::{Backoff, Watcher, is_transient, status_of};
use super::{PartyContext, PartyOutcome, PartyOutput, PartyWork, Progress};

/// Common state of every step.
pub(super) struct Base<'c> {
    pub(super) ctx: &'c PartyContext,
    pub(super) token: String,
    pub(super) claims: JoinClaims,
    pub(super) deadline: Instant,
    pub(super) watcher: Watcher,
}

/// Joined; waiting for the others.
pub struct JoinedSession<'c> {
    base: Base<'c>,
    keys: SessionKeys,
}

/// Everyone joined and the roster checked out; nothing sent yet.
pub struct StartedSession<'c> {
    base: Base<'c>,
    keys: SessionKeys,
    roster: Roster,
}

/// The engine produced this party's output; not reported yet.
pub struct FinishedSession<'c> {
    base: Base<'c>,
    roster: Roster,
    output: PartyOutput,
}

/// The token's deadline less the report margin, on the tokio clock.
fn deadline(exp: u64, margin: Duration) -> Instant {
    let expires = UNIX_EPOCH + Duration::from_secs(exp);
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .saturating_sub(margin);
    Instant::now() + left
}

/// Verifies the token, registers fresh session keys with the coordinator, and starts watching
/// the session.
pub async fn join<'c>(
    ctx: &'c PartyContext,
    join_token: &str,
) -> Result<JoinedSession<'c>, PartyError> {
    let claims = ctx
        .token_verifier
        .verify(join_token)
        .map_err(|_| PartyError::InvalidToken)?;
    let base = Base {
        ctx,
        token: join_token.to_owned(),
        deadline: deadline(claims.exp, ctx.options.report_margin),
        watcher: Watcher::spawn(
            ctx.coordinator.clone(),
            claims.sid,
            join_token.to_owned(),
            ctx.options,
        ),
        claims,
    };
    let keys = match base.make_keys() {
        Ok(keys) => keys,
        Err(e) => return Err(base.fail(e).await),
    };
    let identity = *ctx.identity.public_key().as_bytes();
    let joined = base
        .retrying(|| {
            ctx.coordinator.join_session(
                join_token,
                &identity,
                keys.announcement(),
                ctx.host.as_ref(),
            )
        })
        .await;
    if let Err(r) = joined {
        let e = base.coordinator_error(r).await;
        return Err(base.fail(e).await);
    }
    tracing::info!(
        session_id = %base.claims.sid,
        party_id = %base.claims.pid,
        party_index = base.claims.idx,
        session_type = %base.claims.typ,
        "joined session"
    );
    ctx.progress(&Progress::Joined {
        session_id: base.claims.sid,
        party_index: base.claims.idx,
    });
    Ok(JoinedSession { base, keys })
}

impl<'c> JoinedSession<'c> {
    pub fn claims(&self) -> &JoinClaims {
        &self.base.claims
    }

    /// Waits (on `WatchSession`, no polling) until every party joined, then fetches and checks
    /// the roster.
    pub async fn wait_for_start(self) -> Result<StartedSession<'c>, PartyError> {
        let JoinedSession { mut base, keys } = self;
        let started = tokio::select! {
            biased;
            () = base.ctx.cancel.cancelled() => Err(Interrupt::Stop(PartyError::Cancelled)),
            () = tokio::time::sleep_until(base.deadline) => Err(Interrupt::Deadline),
            info = until_started(&mut base.watcher) => Ok(info),
        };
        let info = match started {
            Ok(Some(info)) => info,
            Ok(None) => {
                let e = PartyError::coordinator(ApiError::new(
                    ErrorCode::Unavailable,
                    "lost track of the session",
                ));
                return Err(base.fail(e).await);
            }
            Err(Interrupt::Deadline) => {
                let waiting_for = base
                    .watcher
                    .latest()
                    .map(|info| not_joined(&info))
                    .unwrap_or_default();
                let e = PartyError::Timeout {
                    waiting_for,
                    round: None,
                };
                return Err(base.fail(e).await);
            }
            Err(Interrupt::Stop(e)) => return Err(base.fail(e).await),
        };
        if let Some(status @ (SessionStatus::Failed | SessionStatus::Expired)) = status_of(&info) {
            let e = PartyError::SessionEnded {
                status,
                reason: info.failure_reason,
            };
            return Err(base.fail(e).await);
        }
        let ctx = base.ctx;
        let token = base.token.clone();
        let response = match base.retrying(|| ctx.coordinator.get_roster(&token)).await {
            Ok(response) => Ok(response),
            Err(r) => Err(base.coordinator_error(r).await),
        };
        let roster = response.and_then(|r| {
            Roster::check(
                r,
                &base.claims,
                &ctx.identity.public_key(),
                keys.announcement(),
                &ctx.trust,
            )
        });
        let roster = match roster {
            Ok(roster) => roster,
            Err(e) => return Err(base.fail(e).await),
        };
        tracing::info!(
            session_id = %roster.session_id,
            party_id = %roster.me,
            parties = roster.parties.len(),
            "session started"
        );
        ctx.progress(&Progress::Started {
            session_id: roster.session_id,
            parties: roster.parties.len(),
        });
        Ok(StartedSession { base, keys, roster })
    }
}

async fn until_started(watcher: &mut Watcher) -> Option<pb::SessionInfo> {
    watcher
        .until(|info| {
            matches!(
                status_of(info),
                Some(
                    SessionStatus::InProgress
                        | SessionStatus::Completed
                        | SessionStatus::Failed
                        | SessionStatus::Expired
                )
            )
        })
        .await
}

/// The participants that have not joined yet.
fn not_joined(info: &pb::SessionInfo) -> Vec<PartyId> {
    info.participants
        .iter()
        .filter(|p| p.status == i32::from(pb::ParticipantStatus::Invited))
        .filter_map(|p| PartyId::parse(&p.party_id).ok())
        .collect()
}

impl<'c> StartedSession<'c> {
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// Reports `error` as this session's failure and returns it.
    pub async fn fail(self, error: PartyError) -> PartyError {
        self.base.fail(error).await
    }

    /// Runs the engine for the session type with `work` until this party has its output.
    pub async fn run(self, work: PartyWork) -> Result<FinishedSession<'c>, PartyError> {
        let StartedSession {
            mut base,
            keys,
            roster,
        } = self;
        match base.run_engine(&roster, keys, work).await {
            Ok(output) => {
                tracing::info!(
                    session_id = %roster.session_id,
                    party_id = %roster.me,
                    "protocol finished"
                );
                base.ctx.progress(&Progress::Computed {
                    session_id: roster.session_id,
                });
                Ok(FinishedSession {
                    base,
                    roster,
                    output,
                })
            }
            Err(e) => Err(base.fail(e).await),
        }
    }
}

impl FinishedSession<'_> {
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    pub fn output(&self) -> &PartyOutput {
        &self.output
    }

    /// Reports `error` (e.g. the share could not be stored) instead of the result.
    pub async fn fail(self, error: PartyError) -> PartyError {
        self.base.fail(error).await
    }

    /// Reports the result to the coordinator.
    pub async fn report(self) -> Result<PartyOutcome, PartyError> {
        let FinishedSession {
            base,
            roster,
            output,
        } = self;
        let ctx = base.ctx;
        let result = output.report();
        let reported = base
            .retrying(|| {
                ctx.coordinator
                    .report_completion(&base.token, result.clone())
            })
            .await;
        match reported {
            Ok(session) => {
                tracing::info!(session_id = %roster.session_id, party_id = %roster.me, "reported completion");
                ctx.progress(&Progress::Reported {
                    session_id: roster.session_id,
                });
                Ok(PartyOutcome {
                    roster,
                    output,
                    session,
                })
            }
            Err(Retry::Failed(e)) if e.code == ErrorCode::ProtocolFailed => {
                tracing::warn!(session_id = %roster.session_id, party_id = %roster.me, reason = %e.message, "the coordinator refused our result");
                Err(PartyError::Rejected(e.message))
            }
            Err(r) => {
                let e = match base.coordinator_error(r).await {
                    PartyError::Service { error, .. }
                        if error.code == ErrorCode::FailedPrecondition =>
                    {
                        PartyError::Rejected(error.message)
                    }
                    other => other,
                };
                Err(base.fail(e).await)
            }
        }
    }
}

/// Why a guarded wait ended early.
pub(super) enum Interrupt {
    Deadline,
    /// Cancelled, or the session ended elsewhere.
    Stop(PartyError),
}

/// A retried call that did not succeed.
enum Retry {
    Failed(ApiError),
    Interrupted(Interrupt),
}

impl Base<'_> {
    /// The error for a coordinator call that did not succeed. A refusal because the session
    /// is over (another party failed it, or it expired) is that, not a coordinator problem.
    async fn coordinator_error(&self, r: Retry) -> PartyError {
        let error = match r {
            Retry::Failed(e) => e,
            Retry::Interrupted(Interrupt::Stop(e)) => return e,
            Retry::Interrupted(Interrupt::Deadline) => {
                return PartyError::coordinator(ApiError::new(
                    ErrorCode::Timeout,
                    "the session deadline passed",
                ));
            }
        };
        if matches!(
            error.code,
            ErrorCode::FailedPrecondition | ErrorCode::SessionExpired
        ) && let Some(ended) = self.current_end().await
        {
            return ended;
        }
        PartyError::coordinator(error)
    }

    /// The session's end as the coordinator has it now, if it failed or expired.
    async fn current_end(&self) -> Option<PartyError> {
        let coordinator = &self.ctx.coordinator;
        let mut stream = coordinator
            .watch_session(self.claims.sid, Some(&self.token))
            .await
            .ok()?;
        let info = stream.message().await.ok()??;
        match status_of(&info)? {
            status @ (SessionStatus::Failed | SessionStatus::Expired) => {
                Some(PartyError::SessionEnded {
                    status,
                    reason: info.failure_reason,
                })
            }
            _ => None,
        }
    }

    fn make_keys(&self) -> Result<SessionKeys, PartyError> {
        let index = PartyIndex::new(self.claims.idx).map_err(|_| PartyError::InvalidToken)?;
        let sid = engine_session_id(self.claims.sid)?;
        SessionKeys::generate(&self.ctx.identity, &sid, index)
            .map_err(|e| PartyError::Internal(e.to_string()))
    }

    /// Runs `fut` unless the party is cancelled, the session ends elsewhere, or the deadline
    /// passes first.
    pub(super) async fn guard<T>(
        &mut self,
        fut: impl Future<Output = Result<T, PartyError>>,
    ) -> Result<T, Interrupt> {
        tokio::select! {
            biased;
            () = self.ctx.cancel.cancelled() => Err(Interrupt::Stop(PartyError::Cancelled)),
            e = self.watcher.ended() => Err(Interrupt::Stop(e)),
            () = tokio::time::sleep_until(self.deadline) => Err(Interrupt::Deadline),
            r = fut => r.map_err(Interrupt::Stop),
        }
    }

    /// Repeats a coordinator call while it fails transiently, within the guard.
    async fn retrying<T, F>(&self, mut call: impl FnMut() -> F) -> Result<T, Retry>
    where
        F: Future<Output = Result<T, ApiError>>,
    {
        let mut backoff = Backoff::new(&self.ctx.options);
        loop {
            let attempt = tokio::select! {
                biased;
                () = self.ctx.cancel.cancelled() => return Err(Retry::Interrupted(Interrupt::Stop(PartyError::Cancelled))),
                () = tokio::time::sleep_until(self.deadline) => return Err(Retry::Interrupted(Interrupt::Deadline)),
                r = call() => r,
            };
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) => {
                    tracing::debug!(session_id = %self.claims.sid, error = %e, "coordinator call failed; retrying");
                    backoff.wait().await;
                }
                Err(e) => return Err(Retry::Failed(e)),
            }
        }
    }

    /// Reports `error` to the coordinator (when that makes sense) and returns it.
    async fn fail(self, error: PartyError) -> PartyError {
        let ty = self.claims.typ;
        let me = &self.claims.pid;
        // A service refusing because the session is over (the router: "session has ended") is
        // the session's end, not a failure of ours.
        let error = match &error {
            PartyError::Service { error: e, .. }
                if matches!(
                    e.code,
                    ErrorCode::FailedPrecondition
                        | ErrorCode::SessionExpired
                        | ErrorCode::SessionNotFound
                        | ErrorCode::InvalidJoinToken
                ) =>
            {
                self.current_end().await.unwrap_or(error)
            }
            _ => error,
        };
        if !error.should_report() {
            tracing::info!(session_id = %self.claims.sid, party_id = %me, error = %error, "session ended");
            return error;
        }
        let reason = error.failure_reason(ty, me);
        tracing::warn!(session_id = %self.claims.sid, party_id = %me, %reason, "session failed");
        let blamed = error.blamed_party().cloned();
        // A short, bounded effort: the session fails at its deadline anyway.
        let mut backoff = Backoff::new(&self.ctx.options);
        for _ in 0..3 {
            match self
                .ctx
                .coordinator
                .report_failure(&self.token, &reason, blamed.as_ref())
                .await
            {
                Ok(_) => break,
                Err(e) if is_transient(&e) => backoff.wait().await,
                Err(e) => {
                    tracing::debug!(session_id = %self.claims.sid, error = %e, "failure report refused");
                    break;
                }
            }
        }
        error
    }
}

/// Follows a session until it completes, fails or expires (e.g. to learn that every party
/// reported the same key).
pub async fn wait_until_ended(
    ctx: &PartyContext,
    session_id: SessionId,
    join_token: &str,
) -> Result<pb::SessionInfo, PartyError> {
    let mut watcher = Watcher::spawn(
        ctx.coordinator.clone(),
        session_id,
        join_token.to_owned(),
        ctx.options,
    );
    tokio::select! {
        () = ctx.cancel.cancelled() => Err(PartyError::Cancelled),
        info = watcher.until(|info| status_of(info).is_some_and(|s| s.is_terminal())) => {
            info.ok_or_else(|| PartyError::coordinator(ApiError::new(ErrorCode::Unavailable, "lost track of the session")))
        }
    }
}
