//! The gRPC API (`mpc.coordinator.v1.Coordinator`): decoding, authentication metadata, encoding.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ParticipantStatus, PartyId, SessionId, SessionStatus, SessionType};
use mpc_service::Shutdown;
use mpc_store::coordinator::SessionRecord;
use tonic::{Request, Response, Status};

use crate::service::{Coordinator, ReportInput};
use crate::validate::{CreateRequest, ParticipantInput, RecoveryInput};
use crate::watch::watch;

pub struct GrpcApi {
    coordinator: Arc<Coordinator>,
    watch_poll: Duration,
    shutdown: Shutdown,
}

impl GrpcApi {
    pub fn new(coordinator: Arc<Coordinator>, watch_poll: Duration, shutdown: Shutdown) -> Self {
        Self {
            coordinator,
            watch_poll,
            shutdown,
        }
    }

    fn service_token<T>(&self, request: &Request<T>) -> Result<(), ApiError> {
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        self.coordinator.check_service_token(presented)
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn session_type_to_pb(ty: SessionType) -> pb::SessionType {
    match ty {
        SessionType::Keygen => pb::SessionType::Keygen,
        SessionType::Sign => pb::SessionType::Sign,
        SessionType::Refresh => pb::SessionType::Refresh,
        SessionType::Recovery => pb::SessionType::Recovery,
    }
}

fn session_type_from_pb(value: i32) -> Result<SessionType, ApiError> {
    match pb::SessionType::try_from(value) {
        Ok(pb::SessionType::Keygen) => Ok(SessionType::Keygen),
        Ok(pb::SessionType::Sign) => Ok(SessionType::Sign),
        Ok(pb::SessionType::Refresh) => Ok(SessionType::Refresh),
        Ok(pb::SessionType::Recovery) => Ok(SessionType::Recovery),
        _ => Err(ApiError::invalid_argument(
            "session_type must be keygen, sign, refresh or recovery",
        )),
    }
}

fn session_status_to_pb(status: SessionStatus) -> pb::SessionStatus {
    match status {
        SessionStatus::Created => pb::SessionStatus::Created,
        SessionStatus::Waiting => pb::SessionStatus::Waiting,
        SessionStatus::InProgress => pb::SessionStatus::InProgress,
        SessionStatus::Completed => pb::SessionStatus::Completed,
        SessionStatus::Failed => pb::SessionStatus::Failed,
        SessionStatus::Expired => pb::SessionStatus::Expired,
    }
}

fn participant_status_to_pb(status: ParticipantStatus) -> pb::ParticipantStatus {
    match status {
        ParticipantStatus::Invited => pb::ParticipantStatus::Invited,
        ParticipantStatus::Joined => pb::ParticipantStatus::Joined,
        ParticipantStatus::Ready => pb::ParticipantStatus::Ready,
        ParticipantStatus::Computing => pb::ParticipantStatus::Computing,
        ParticipantStatus::Completed => pb::ParticipantStatus::Completed,
        ParticipantStatus::Failed => pb::ParticipantStatus::Failed,
    }
}

/// The public view of a session (no join tokens, no session keys).
pub fn session_info(s: &SessionRecord) -> pb::SessionInfo {
    pb::SessionInfo {
        session_id: s.id.to_string(),
        session_type: session_type_to_pb(s.session_type).into(),
        status: session_status_to_pb(s.status).into(),
        threshold_t: u32::from(s.threshold.t),
        threshold_n: u32::from(s.threshold.n),
        participants: s
            .participants
            .iter()
            .map(|p| pb::ParticipantInfo {
                party_id: p.party_id.to_string(),
                party_index: u32::from(p.party_index),
                device_type: p.device_type.clone().unwrap_or_default(),
                status: participant_status_to_pb(p.status).into(),
                joined_at_ms: p.joined_at.map(ms),
            })
            .collect(),
        key_id: s.key_id.clone(),
        message_hash: s.message_hash.clone().unwrap_or_default(),
        public_key: s.public_key.clone().unwrap_or_default(),
        signature: s.signature.as_ref().map(|sig| pb::Signature {
            r: sig.r.to_vec(),
            s: sig.s.to_vec(),
            v: u32::from(sig.v),
            der: sig.der.clone(),
        }),
        failure_reason: s.failure_reason.clone().unwrap_or_default(),
        blamed_party_id: s
            .blamed_party
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        recovery: s.recovery.as_ref().map(|r| pb::RecoverySpec {
            target_party_id: r.target.to_string(),
            helper_party_ids: r.helpers.iter().map(|h| h.to_string()).collect(),
        }),
        created_at_ms: ms(s.created_at),
        expires_at_ms: ms(s.expires_at),
        updated_at_ms: ms(s.updated_at),
        completed_at_ms: s.completed_at.map(ms),
    }
}

fn create_request(req: pb::CreateSessionRequest) -> Result<CreateRequest, ApiError> {
    Ok(CreateRequest {
        session_type: session_type_from_pb(req.session_type)?,
        threshold_t: req.threshold_t,
        threshold_n: req.threshold_n,
        participants: req
            .participants
            .into_iter()
            .map(|p| ParticipantInput {
                party_id: p.party_id,
                device_type: p.device_type,
                party_index: p.party_index,
            })
            .collect(),
        key_id: req.key_id,
        message_hash: req.message_hash,
        public_key: req.public_key,
        recovery: req.recovery.map(|r| RecoveryInput {
            target_party_id: r.target_party_id,
            helper_party_ids: r.helper_party_ids,
        }),
        lifetime_seconds: req.lifetime_seconds,
    })
}

type WatchResponseStream = Pin<Box<dyn Stream<Item = Result<pb::SessionInfo, Status>> + Send>>;

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for GrpcApi {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::CreateSessionResponse>, Status> {
        self.service_token(&request)?;
        let req = create_request(request.into_inner())?;
        let created = self.coordinator.create(&req).await?;
        Ok(Response::new(pb::CreateSessionResponse {
            session_id: created.session.id.to_string(),
            status: session_status_to_pb(created.session.status).into(),
            expires_at_ms: ms(created.session.expires_at),
            join_tokens: created
                .join_tokens
                .into_iter()
                .map(|(party, token)| (party.to_string(), token))
                .collect(),
            session: Some(session_info(&created.session)),
        }))
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::SessionInfo>, Status> {
        self.service_token(&request)?;
        let id = SessionId::parse(&request.get_ref().session_id)?;
        let session = self.coordinator.get(id).await?;
        Ok(Response::new(session_info(&session)))
    }

    async fn join_session(
        &self,
        request: Request<pb::JoinSessionRequest>,
    ) -> Result<Response<pb::JoinSessionResponse>, Status> {
        // Mutual TLS: a server party's certificate may only act as that party.
        mpc_service::tls::authorize_join_token(&request, &request.get_ref().join_token)?;
        let req = request.into_inner();
        let host = req.host.as_ref().map(host_from_pb).transpose()?;
        let (index, session) = self
            .coordinator
            .join(
                &req.join_token,
                &req.identity_public_key,
                &req.session_key,
                host,
            )
            .await?;
        Ok(Response::new(pb::JoinSessionResponse {
            party_index: u32::from(index),
            session: Some(session_info(&session)),
        }))
    }

    async fn get_roster(
        &self,
        request: Request<pb::GetRosterRequest>,
    ) -> Result<Response<pb::GetRosterResponse>, Status> {
        mpc_service::tls::authorize_join_token(&request, &request.get_ref().join_token)?;
        let session = self
            .coordinator
            .roster(&request.get_ref().join_token)
            .await?;
        Ok(Response::new(pb::GetRosterResponse {
            session: Some(session_info(&session)),
            parties: session
                .participants
                .iter()
                .map(|p| pb::RosterEntry {
                    party_id: p.party_id.to_string(),
                    party_index: u32::from(p.party_index),
                    device_type: p.device_type.clone().unwrap_or_default(),
                    identity_public_key: p.identity_public_key.clone().unwrap_or_default(),
                    session_key: p.session_key.clone().unwrap_or_default(),
                })
                .collect(),
        }))
    }

    type WatchSessionStream = WatchResponseStream;

    async fn watch_session(
        &self,
        request: Request<pb::WatchSessionRequest>,
    ) -> Result<Response<Self::WatchSessionStream>, Status> {
        let id = SessionId::parse(&request.get_ref().session_id)?;
        if request.get_ref().join_token.is_empty() {
            self.service_token(&request)?;
        } else {
            self.coordinator
                .verify_token_for(&request.get_ref().join_token, id)?;
        }
        let stream = watch(
            self.coordinator.clone(),
            id,
            self.watch_poll,
            self.shutdown.clone(),
        )
        .await?;
        let stream = stream.map(|item| item.map(|s| session_info(&s)).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn report_completion(
        &self,
        request: Request<pb::ReportCompletionRequest>,
    ) -> Result<Response<pb::ReportCompletionResponse>, Status> {
        // Mutual TLS: a server party's certificate may only act as that party.
        mpc_service::tls::authorize_join_token(&request, &request.get_ref().join_token)?;
        let req = request.into_inner();
        let input = match req.result {
            Some(pb::report_completion_request::Result::Key(key)) => {
                ReportInput::PublicKey(key.public_key)
            }
            Some(pb::report_completion_request::Result::Signature(sig)) => ReportInput::Signature {
                r: sig.r,
                s: sig.s,
                v: sig.v,
            },
            None => {
                return Err(ApiError::invalid_argument(
                    "result is required: the public key or the signature",
                )
                .into());
            }
        };
        let session = self
            .coordinator
            .report_completion(&req.join_token, input)
            .await?;
        Ok(Response::new(pb::ReportCompletionResponse {
            session: Some(session_info(&session)),
        }))
    }

    async fn report_failure(
        &self,
        request: Request<pb::ReportFailureRequest>,
    ) -> Result<Response<pb::ReportFailureResponse>, Status> {
        // Mutual TLS: a server party's certificate may only act as that party.
        mpc_service::tls::authorize_join_token(&request, &request.get_ref().join_token)?;
        let req = request.into_inner();
        let session = self
            .coordinator
            .report_failure(
                &req.join_token,
                &req.reason,
                Some(&req.blamed_party_id),
                req.overloaded,
            )
            .await?;
        Ok(Response::new(pb::ReportFailureResponse {
            session: Some(session_info(&session)),
        }))
    }

    async fn get_join_token_key(
        &self,
        _request: Request<pb::GetJoinTokenKeyRequest>,
    ) -> Result<Response<pb::GetJoinTokenKeyResponse>, Status> {
        Ok(Response::new(pb::GetJoinTokenKeyResponse {
            public_key: self.coordinator.join_token_public_key().to_vec(),
        }))
    }

    async fn cancel_session(
        &self,
        request: Request<pb::CancelSessionRequest>,
    ) -> Result<Response<pb::SessionInfo>, Status> {
        self.service_token(&request)?;
        let req = request.into_inner();
        let id = SessionId::parse(&req.session_id)?;
        let session = self.coordinator.cancel(id, &req.reason).await?;
        Ok(Response::new(session_info(&session)))
    }

    async fn announce_party(
        &self,
        request: Request<pb::AnnouncePartyRequest>,
    ) -> Result<Response<pb::AnnouncePartyResponse>, Status> {
        self.service_token(&request)?;
        // A server party announces only itself.
        mpc_service::PeerIdentity::of_request(&request)
            .authorize_party(&request.get_ref().party_id)?;
        let response = self.coordinator.announce(request.get_ref()).await?;
        Ok(Response::new(response))
    }

    async fn list_parties(
        &self,
        request: Request<pb::ListPartiesRequest>,
    ) -> Result<Response<pb::ListPartiesResponse>, Status> {
        self.service_token(&request)?;
        let parties = self
            .coordinator
            .registry
            .statuses(crate::service::now())
            .await?
            .into_iter()
            .map(|s| pb::RegisteredParty {
                party_id: s.party.party_id.to_string(),
                kind: crate::registry::kind_to_pb(s.party.kind).into(),
                identity_public_key: s.party.identity_public_key,
                version: s.party.version,
                active_sessions: s.party.active_sessions,
                registered_at_ms: ms(s.party.registered_at),
                last_seen_ms: ms(s.party.last_seen),
                live: s.live,
            })
            .collect();
        Ok(Response::new(pb::ListPartiesResponse { parties }))
    }
}

/// The process a joining party names as running its protocol.
fn host_from_pb(host: &pb::HostInstance) -> Result<mpc_store::coordinator::Host, ApiError> {
    let party_id = PartyId::parse(&host.party_id)
        .map_err(|e| ApiError::invalid_argument(format!("host.party_id: {}", e.message)))?;
    if host.instance_id.is_empty() || host.instance_id.len() > crate::registry::MAX_INSTANCE_LEN {
        return Err(ApiError::invalid_argument(format!(
            "host.instance_id: 1 to {} bytes",
            crate::registry::MAX_INSTANCE_LEN
        )));
    }
    Ok(mpc_store::coordinator::Host {
        party_id,
        instance_id: host.instance_id.clone(),
    })
}
