//! One request's session, for the device it stands in for.
//!
//! 1. Checks before joining, so that a caller's mistake never touches the session: the join
//!    token (session, party, type), the session's state as the coordinator has it (`WatchSession`
//!    with the token), the caller's right to the session's key, the message hash, and the
//!    `share_data` — it must open as this party's share of this key, at this index.
//! 2. The party driver (`mpc_client`), as every party runs it, in a task of its own with a
//!    cancellation token that fires when the caller goes away (the request future is dropped) or
//!    the API stops: the party then reports a failure instead of leaving the others waiting.
//! 3. The answer only once the session *completed*: a share of a key the other parties did not
//!    all confirm, or a signature the coordinator did not verify, is no result. The share lives in
//!    memory only until it is wrapped for the response (`KeyShare` zeroizes on drop).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use mpc_client::party::wait_until_ended;
use mpc_client::{
    PartyContext, PartyError, PartyOutput, PartyWork, Roster, SessionHooks, SignExpectation,
    run_session_with,
};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ErrorCode, JoinClaims, PartyId, SessionId, SessionType};
use mpc_protocol::{MessageHash, PublicKey, Signature};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::{Authenticator, Caller};
use crate::hpke::DevicePublicKey;
use crate::metrics::{ApiMetrics, Outcome};
use crate::share::{self, ShareKeys, ShareOwner};

/// How long a party that timed out gets to report its failure before the request is answered.
const REPORT_GRACE: Duration = Duration::from_secs(10);
/// Bound on reading the session's current state before joining.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Shared by every request.
pub(crate) struct Api {
    /// The template of every request's party context (its `cancel` is the API's shutdown).
    pub(crate) ctx: PartyContext,
    pub(crate) share_keys: ShareKeys,
    pub(crate) auth: Arc<dyn Authenticator>,
    /// Device sessions in flight, the FIFO queue in front of them, 429 beyond.
    pub(crate) admission: mpc_service::Admission,
    pub(crate) max_request_time: Duration,
    pub(crate) metrics: ApiMetrics,
    /// (session, party) pairs with a request running here: a retry must not join twice.
    pub(crate) running: Mutex<HashSet<(SessionId, PartyId)>>,
}

/// The request's ids, parsed.
pub(crate) struct Target {
    pub(crate) session_id: SessionId,
    pub(crate) party_id: PartyId,
    pub(crate) join_token: String,
}

/// What the device brings and asks for.
pub(crate) enum Request {
    Keygen {
        device: Option<DevicePublicKey>,
    },
    Sign {
        share_data: String,
        message_hash: MessageHash,
    },
    Refresh {
        share_data: String,
        device: Option<DevicePublicKey>,
    },
    /// `share_data: None`: the device is the target; `Some`: it holds a share and helps.
    Recovery {
        share_data: Option<String>,
        device: Option<DevicePublicKey>,
    },
}

impl Request {
    fn session_type(&self) -> SessionType {
        match self {
            Request::Keygen { .. } => SessionType::Keygen,
            Request::Sign { .. } => SessionType::Sign,
            Request::Refresh { .. } => SessionType::Refresh,
            Request::Recovery { .. } => SessionType::Recovery,
        }
    }
}

/// A completed session's result for the device.
pub(crate) enum Answer {
    Share {
        party_index: u16,
        share_data: String,
        public_key: String,
    },
    Signature(Signature),
}

/// Checked and ready to join.
struct Prepared {
    claims: JoinClaims,
    token: String,
    key_id: String,
    work: PartyWork,
    device: Option<DevicePublicKey>,
}

fn failed_precondition(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::FailedPrecondition, message)
}

impl Api {
    /// Sessions this API is taking part in now (for the registry's heartbeat).
    pub(crate) fn active_sessions(&self) -> u32 {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        u32::try_from(running.len()).unwrap_or(u32::MAX)
    }

    /// Runs the request's session to its end (or refuses it before joining).
    pub(crate) async fn handle(
        self: &Arc<Self>,
        caller: &Caller,
        target: Target,
        request: Request,
    ) -> Result<Answer, ApiError> {
        let started = Instant::now();
        let deadline = started + self.max_request_time;
        let ty = request.session_type();
        // Admitted first: a refusal (429 overloaded) costs nothing and touches no session.
        let admitted = match self.admission.admit(operation_name(ty)).await {
            Ok(admitted) => admitted,
            Err(e) => {
                tracing::info!(session_type = %ty, code = %e.code, "request refused: at capacity");
                self.metrics.ended(ty, Outcome::Refused, None);
                return Err(e);
            }
        };
        let prepared = match self.prepare(caller, target, request).await {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(session_type = %ty, code = %e.code, reason = %e.message, "request refused before joining");
                self.metrics.ended(ty, Outcome::Refused, None);
                return Err(e);
            }
        };
        let result = self.run(prepared, deadline, admitted).await;
        let outcome = if result.is_ok() {
            Outcome::Completed
        } else {
            Outcome::Failed
        };
        self.metrics
            .ended(ty, outcome, Some(started.elapsed().as_secs_f64()));
        result
    }

    async fn prepare(
        &self,
        caller: &Caller,
        target: Target,
        request: Request,
    ) -> Result<Prepared, ApiError> {
        let ty = request.session_type();
        let claims = self
            .ctx
            .token_verifier
            .verify(&target.join_token)
            .map_err(|_| ApiError::invalid_join_token())?;
        if claims.sid != target.session_id {
            return Err(ApiError::new(
                ErrorCode::InvalidJoinToken,
                "invalid join token: it was issued for another session",
            ));
        }
        if claims.pid != target.party_id {
            return Err(ApiError::new(
                ErrorCode::InvalidJoinToken,
                "invalid join token: it was issued for another party",
            ));
        }
        if claims.typ != ty {
            return Err(ApiError::invalid_argument(format!(
                "the join token is for a {} session; this endpoint takes {ty} sessions",
                claims.typ
            )));
        }
        let info = self.current_session(&claims, &target.join_token).await?;
        caller.check_key(&info.key_id)?;
        let public_key = if info.public_key.is_empty() {
            None
        } else {
            Some(PublicKey::from_sec1(&info.public_key).map_err(|e| {
                ApiError::internal(&format_args!("the coordinator's public key: {e}"))
            })?)
        };
        let owner = ShareOwner {
            key_id: &info.key_id,
            party_id: &claims.pid,
            party_index: claims.idx,
        };
        let open = |share_data: &str| {
            share::open(&self.share_keys, &owner, share_data, public_key.as_ref())
                .map(Arc::new)
                .map_err(|e| e.to_api_error())
        };
        let (work, device) = match request {
            Request::Keygen { device } => (PartyWork::Keygen, device),
            Request::Sign {
                share_data,
                message_hash,
            } => {
                if info.message_hash.as_slice() != message_hash.as_bytes() {
                    return Err(ApiError::new(
                        ErrorCode::InvalidMessageHash,
                        "message_hash is not the hash this session signs",
                    ));
                }
                let work = PartyWork::Sign {
                    share: open(&share_data)?,
                    expected: SignExpectation {
                        key_id: Some(info.key_id.clone()),
                        message_hash: Some(message_hash),
                    },
                };
                (work, None)
            }
            Request::Refresh { share_data, device } => (
                PartyWork::Refresh {
                    share: open(&share_data)?,
                },
                device,
            ),
            Request::Recovery { share_data, device } => {
                let target = info
                    .recovery
                    .as_ref()
                    .map(|r| r.target_party_id.as_str())
                    .unwrap_or_default();
                let share = match (share_data, target == claims.pid.as_str()) {
                    (None, true) => None,
                    (Some(share_data), false) => Some(open(&share_data)?),
                    (Some(_), true) => {
                        return Err(ApiError::invalid_argument(format!(
                            "party {} is this recovery's target: it brings no share_data",
                            claims.pid
                        )));
                    }
                    (None, false) => {
                        return Err(ApiError::invalid_argument(format!(
                            "party {} is not this recovery's target ({target}): send its share_data to take part as a holder",
                            claims.pid
                        )));
                    }
                };
                (PartyWork::Recovery { share }, device)
            }
        };
        Ok(Prepared {
            token: target.join_token,
            key_id: info.key_id,
            claims,
            work,
            device,
        })
    }

    /// The session as the coordinator has it now; it must still be waiting for this party.
    async fn current_session(
        &self,
        claims: &JoinClaims,
        token: &str,
    ) -> Result<pb::SessionInfo, ApiError> {
        let lookup = async {
            let mut stream = self
                .ctx
                .coordinator
                .watch_session(claims.sid, Some(token))
                .await?;
            match stream.message().await {
                Ok(Some(info)) => Ok(info),
                Ok(None) => Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "the session coordinator sent no session state",
                )),
                Err(status) => Err(ApiError::from_status(&status)),
            }
        };
        let info = tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
            .await
            .map_err(|_| {
                ApiError::new(ErrorCode::Timeout, "the session coordinator did not answer")
            })??;
        match pb::SessionStatus::try_from(info.status).unwrap_or(pb::SessionStatus::Unspecified) {
            pb::SessionStatus::Created | pb::SessionStatus::Waiting => {}
            pb::SessionStatus::InProgress => {
                return Err(failed_precondition("the session is already in progress"));
            }
            pb::SessionStatus::Completed => {
                return Err(failed_precondition("the session is already completed"));
            }
            pb::SessionStatus::Failed => {
                return Err(failed_precondition(format!(
                    "the session failed: {}",
                    info.failure_reason
                )));
            }
            pb::SessionStatus::Expired => {
                return Err(ApiError::from_code(ErrorCode::SessionExpired));
            }
            pb::SessionStatus::Unspecified => {
                return Err(ApiError::internal(
                    &"the coordinator sent no session status",
                ));
            }
        }
        let me = info
            .participants
            .iter()
            .find(|p| p.party_id == claims.pid.as_str())
            .ok_or_else(ApiError::invalid_join_token)?;
        // The API stands in for devices only. A participant declared a server party, or one
        // whose id is a server party this API knows, is not a device: joining for it would hand
        // the caller a server's share (and with it a whole threshold).
        if mpc_proto::is_server_device_type(&me.device_type)
            || self.ctx.trust.pinned().contains_key(&claims.pid)
        {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "party {} is a server party in this session: the Server Party API acts only for device participants",
                    claims.pid
                ),
            ));
        }
        if me.status != i32::from(pb::ParticipantStatus::Invited) {
            return Err(failed_precondition(format!(
                "party {} already joined this session (is another request for it running?)",
                claims.pid
            )));
        }
        Ok(info)
    }

    /// Runs the party in its own task, bounded by `deadline`.
    async fn run(
        self: &Arc<Self>,
        p: Prepared,
        deadline: Instant,
        admitted: mpc_service::Admitted,
    ) -> Result<Answer, ApiError> {
        let ty = p.claims.typ;
        let _claimed = Claim::take(self, p.claims.sid, p.claims.pid.clone())?;
        let gauge = self.metrics.running();
        let cancel = self.ctx.cancel.child_token();
        // Dropped with the request (the caller went away): the party reports a failure.
        let abandon = cancel.clone().drop_guard();
        let mut ctx = self.ctx.clone();
        ctx.cancel = cancel.clone();
        let span = tracing::info_span!(
            "user_share",
            session_id = %p.claims.sid,
            party_id = %p.claims.pid,
            session_type = %ty,
        );
        let keys = self.share_keys.clone();
        let mut task = tokio::spawn(
            async move {
                // Held until the party is done, even when the request is gone.
                let _admitted = admitted;
                let _gauge = gauge;
                take_part(ctx, keys, p).await
            }
            .instrument(span),
        );
        let result = match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(joined) => joined.unwrap_or_else(|e| {
                Err(ApiError::internal(&format_args!(
                    "the session task failed: {e}"
                )))
            }),
            Err(_) => {
                cancel.cancel();
                let _ = tokio::time::timeout(REPORT_GRACE, &mut task).await;
                Err(ApiError::new(
                    ErrorCode::Timeout,
                    format!(
                        "{ty} failed: timeout: no result within {} s",
                        self.max_request_time.as_secs()
                    ),
                ))
            }
        };
        abandon.disarm();
        result
    }
}

fn operation_name(ty: SessionType) -> &'static str {
    match ty {
        SessionType::Keygen => "keygen",
        SessionType::Sign => "sign",
        SessionType::Refresh => "refresh",
        SessionType::Recovery => "recovery",
    }
}

/// Marks (session, party) as running here until dropped.
struct Claim<'a> {
    api: &'a Api,
    key: (SessionId, PartyId),
}

impl<'a> Claim<'a> {
    fn take(api: &'a Api, session: SessionId, party: PartyId) -> Result<Self, ApiError> {
        let key = (session, party);
        let fresh = api
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone());
        if fresh {
            Ok(Self { api, key })
        } else {
            Err(failed_precondition(format!(
                "a request for party {} in this session is already running",
                key.1
            )))
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.api
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// The session from the device's side: join, run, report, wait for the end, answer.
async fn take_part(ctx: PartyContext, keys: ShareKeys, p: Prepared) -> Result<Answer, ApiError> {
    let ty = p.claims.typ;
    let me = p.claims.pid.clone();
    let mut hooks = Hooks {
        work: Some(p.work),
        key_id: p.key_id,
        cancel: ctx.cancel.clone(),
    };
    let outcome = run_session_with(&ctx, &p.token, &mut hooks)
        .await
        .map_err(|e| e.to_api_error(ty, &me))?;
    let status = |info: &pb::SessionInfo| {
        pb::SessionStatus::try_from(info.status).unwrap_or(pb::SessionStatus::Unspecified)
    };
    let ended = if status(&outcome.session) == pb::SessionStatus::Completed {
        outcome.session.clone()
    } else {
        wait_until_ended(&ctx, p.claims.sid, &p.token)
            .await
            .map_err(|e| e.to_api_error(ty, &me))?
    };
    match status(&ended) {
        pb::SessionStatus::Completed => {}
        pb::SessionStatus::Expired => return Err(ApiError::from_code(ErrorCode::SessionExpired)),
        _ if mpc_proto::status::is_overloaded_failure(&ended.failure_reason) => {
            return Err(
                ApiError::new(ErrorCode::Overloaded, ended.failure_reason).with_retry_after(1)
            );
        }
        _ => {
            let reason = if ended.failure_reason.is_empty() {
                format!("{ty} failed")
            } else {
                ended.failure_reason
            };
            return Err(ApiError::new(ErrorCode::ProtocolFailed, reason));
        }
    }
    match outcome.output {
        PartyOutput::Share(share) => {
            let roster = &outcome.roster;
            let owner = ShareOwner {
                key_id: &roster.key_id,
                party_id: &roster.me,
                party_index: roster.my_index.get(),
            };
            let share_data = share::to_share_data(&keys, &owner, &share, p.device.as_ref())
                .map_err(|e| e.to_api_error())?;
            tracing::info!(
                party_index = owner.party_index,
                sealed_to_device = p.device.is_some(),
                "user share handed out"
            );
            Ok(Answer::Share {
                party_index: owner.party_index,
                share_data,
                public_key: share.public_key().to_hex(),
            })
        }
        PartyOutput::Signature(signature) => Ok(Answer::Signature(signature)),
    }
}

/// The driver's hooks for a device party.
struct Hooks {
    work: Option<PartyWork>,
    /// The key checked before joining: the roster must name the same.
    key_id: String,
    cancel: CancellationToken,
}

#[async_trait]
impl SessionHooks for Hooks {
    async fn work(&mut self, roster: &Roster) -> Result<PartyWork, PartyError> {
        if roster.key_id != self.key_id {
            return Err(PartyError::Mismatch(format!(
                "the session's key is {}, the request was checked for {}",
                roster.key_id, self.key_id
            )));
        }
        self.work
            .take()
            .ok_or_else(|| PartyError::Internal("work taken twice".into()))
    }

    async fn keep(&mut self, _roster: &Roster, output: &PartyOutput) -> Result<(), PartyError> {
        // A new share nobody will receive must not become the device's share of record.
        if matches!(output, PartyOutput::Share(_)) && self.cancel.is_cancelled() {
            return Err(PartyError::Local(
                "lost its caller before the new share could be handed over".into(),
            ));
        }
        Ok(())
    }
}
