//! The coordinator's requests: create, read, join, roster, report. Transports (gRPC, HTTP) only
//! decode and encode; every rule lives here and in `lifecycle`.
//!
//! Concurrency: each participant change is its own committed compare-and-set, and the session
//! is re-read *after* it. Of two parties that join (or report) at the same time, the later read
//! sees both changes, so the session always starts (or completes) — exactly once, because that
//! step is a compare-and-set on the session too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use mpc_bus::{EventBus, EventKind};
use mpc_proto::{
    ApiError, ErrorCode, JoinClaims, ParticipantStatus, PartyId, SessionId, SessionStatus,
    SessionType, TokenSigner, TokenVerifier,
};
use mpc_store::coordinator::{
    CoordinatorStore, Host, ParticipantRecord, ParticipantUpdate, PartyReport, SessionRecord,
};
use secrecy::{ExposeSecret, SecretString};

use crate::events::{Publisher, outbox_row, session_event};
use crate::metrics::CoordinatorMetrics;
use crate::registry::{Named, Registry};
use crate::validate::{CreateRequest, Lifetimes, MESSAGE_HASH_LEN, validate};
use crate::verify::{parse_public_key, verify_signature};

/// Ed25519 public keys are 32 bytes.
const IDENTITY_KEY_LEN: usize = 32;
/// A signed X25519 session-key announcement is far smaller; this bounds what we store and relay.
pub const MAX_SESSION_KEY_LEN: usize = 4096;
const MAX_REASON_LEN: usize = 1000;

/// A new session and its join tokens (secret: one per party).
pub struct Created {
    pub session: SessionRecord,
    pub join_tokens: BTreeMap<PartyId, String>,
}

/// What a party reports when it finishes, as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportInput {
    PublicKey(Vec<u8>),
    Signature { r: Vec<u8>, s: Vec<u8>, v: u32 },
}

pub struct Coordinator {
    pub(crate) store: Arc<dyn CoordinatorStore>,
    pub(crate) publisher: Publisher,
    signer: TokenSigner,
    verifier: TokenVerifier,
    pub(crate) lifetimes: Lifetimes,
    pub(crate) metrics: CoordinatorMetrics,
    service_token: Option<SecretString>,
    /// Reads of watched sessions, shared between their watchers.
    pub(crate) watch_reads: crate::watch::SharedReads,
    pub(crate) registry: Registry,
}

/// Millisecond precision, as both database backends store it.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// The first 8 characters of a session id, as the guide's log lines show it.
pub(crate) fn short(id: SessionId) -> String {
    id.to_string().chars().take(8).collect()
}

pub(crate) fn failed_precondition(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::FailedPrecondition, message)
}

impl Coordinator {
    pub(crate) fn new(
        store: Arc<dyn CoordinatorStore>,
        bus: Arc<dyn EventBus>,
        signer: TokenSigner,
        lifetimes: Lifetimes,
        metrics: CoordinatorMetrics,
        service_token: Option<SecretString>,
        registry: Registry,
    ) -> Self {
        Self {
            publisher: Publisher::new(store.clone(), bus),
            store,
            verifier: signer.verifier(),
            signer,
            lifetimes,
            metrics,
            service_token,
            watch_reads: crate::watch::SharedReads::default(),
            registry,
        }
    }

    pub fn join_token_public_key(&self) -> [u8; 32] {
        self.signer.public_key()
    }

    /// Service-to-service calls: when a service token is configured, `presented` must equal it.
    pub fn check_service_token(&self, presented: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = &self.service_token else {
            return Ok(());
        };
        match presented {
            Some(p) if mpc_service::hash_eq(p.as_bytes(), expected.expose_secret().as_bytes()) => {
                Ok(())
            }
            _ => Err(ApiError::new(
                ErrorCode::InvalidApiKey,
                "missing or invalid service token",
            )),
        }
    }

    pub async fn create(&self, req: &CreateRequest) -> Result<Created, ApiError> {
        let new = validate(req, self.lifetimes, now())?;
        let named: Vec<Named<'_>> = new
            .participants
            .iter()
            .map(|p| Named {
                party_id: &p.party_id,
                device_type: p.device_type.as_deref(),
            })
            .collect();
        let is_server = self.registry.check_participants(&named, now()).await?;
        let parties: Vec<PartyId> = new
            .participants
            .iter()
            .map(|p| p.party_id.clone())
            .collect();
        let mut join_tokens = BTreeMap::new();
        for p in &new.participants {
            let token = self.signer.issue(
                new.id,
                p.party_id.clone(),
                p.party_index,
                new.session_type,
                parties.clone(),
                SystemTime::from(new.expires_at),
            )?;
            join_tokens.insert(p.party_id.clone(), token);
        }
        let session = SessionRecord {
            id: new.id,
            session_type: new.session_type,
            threshold: new.threshold,
            status: SessionStatus::Created,
            key_id: new.key_id.clone(),
            message_hash: new.message_hash.clone(),
            public_key: new.public_key.clone(),
            signature: None,
            recovery: new.recovery.clone(),
            failure_reason: None,
            blamed_party: None,
            created_at: new.created_at,
            expires_at: new.expires_at,
            updated_at: new.created_at,
            completed_at: None,
            participants: new
                .participants
                .iter()
                .map(|p| ParticipantRecord {
                    party_id: p.party_id.clone(),
                    party_index: p.party_index,
                    device_type: p.device_type.clone(),
                    status: ParticipantStatus::Invited,
                    joined_at: None,
                    identity_public_key: None,
                    session_key: None,
                    host: None,
                    report: None,
                    updated_at: new.created_at,
                })
                .collect(),
        };
        // Server parties join by themselves when they see the event; the bus is internal.
        let server_tokens = session
            .participants
            .iter()
            .zip(&is_server)
            .filter(|(_, server)| **server)
            .filter_map(|(p, _)| {
                join_tokens
                    .get(&p.party_id)
                    .map(|t| (p.party_id.clone(), t.clone()))
            })
            .collect();
        let event = session_event(EventKind::Created, &session, server_tokens);
        let outbox_id = self
            .store
            .create_session(&new, &outbox_row(&event)?)
            .await?;
        tracing::info!(
            session_id = %session.id,
            session_type = %session.session_type,
            participants = session.participants.len(),
            "Session {} created: type={}, participants={}",
            short(session.id),
            session.session_type,
            session.participants.len()
        );
        self.publisher.publish_committed(outbox_id, &event).await;
        Ok(Created {
            session,
            join_tokens,
        })
    }

    pub async fn get(&self, id: SessionId) -> Result<SessionRecord, ApiError> {
        self.store
            .session(id)
            .await?
            .ok_or_else(ApiError::session_not_found)
    }

    /// Checks a join token and finds its session and party.
    pub async fn authenticate(&self, token: &str) -> Result<(JoinClaims, SessionRecord), ApiError> {
        let claims = self.verifier.verify(token)?;
        let session = self.get(claims.sid).await?;
        match session.participant(&claims.pid) {
            Some(p) if p.party_index == claims.idx => Ok((claims, session)),
            _ => {
                tracing::debug!(session_id = %claims.sid, "join token names no participant of its session");
                Err(ApiError::invalid_join_token())
            }
        }
    }

    /// Verifies a token for a known session (watchers).
    pub fn verify_token_for(&self, token: &str, id: SessionId) -> Result<JoinClaims, ApiError> {
        self.verifier.verify_for_session(token, id)
    }

    pub async fn join(
        &self,
        token: &str,
        identity_public_key: &[u8],
        session_key: &[u8],
        host: Option<Host>,
    ) -> Result<(u16, SessionRecord), ApiError> {
        if identity_public_key.len() != IDENTITY_KEY_LEN {
            return Err(ApiError::invalid_argument(
                "identity_public_key must be a 32-byte Ed25519 public key",
            ));
        }
        if session_key.is_empty() {
            return Err(ApiError::invalid_argument("session_key is required"));
        }
        if session_key.len() > MAX_SESSION_KEY_LEN {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("session_key must be at most {MAX_SESSION_KEY_LEN} bytes"),
            ));
        }
        let (claims, mut session) = self.authenticate(token).await?;
        ensure_open(&session)?;
        let party = claims.pid.clone();
        // A lost compare-and-set means a concurrent join with this token; an undone join (its
        // host restarted) one more round.
        for _ in 0..3 {
            let p = participant(&session, &party)?;
            if p.status == ParticipantStatus::Invited {
                let next = p.status.transition(ParticipantStatus::Joined)?;
                let mut update =
                    ParticipantUpdate::new(session.id, party.clone(), p.status, next, now());
                update.join_keys = Some((identity_public_key.to_vec(), session_key.to_vec()));
                update.host = host.clone();
                if self.store.update_participant(&update).await? {
                    tracing::info!(session_id = %session.id, party_id = %party, "Party {party} joined session {}", short(session.id));
                    break;
                }
                session = self.get(session.id).await?;
                continue;
            }
            let same_keys = p
                .identity_public_key
                .as_deref()
                .is_some_and(|k| mpc_service::hash_eq(k, identity_public_key))
                && p.session_key
                    .as_deref()
                    .is_some_and(|k| mpc_service::hash_eq(k, session_key));
            if same_keys {
                break; // a retry of the same join
            }
            if let (Some(old), Some(new)) = (p.host.clone(), host.as_ref())
                && old.party_id == new.party_id
                && old.instance_id != new.instance_id
            {
                // The process that joined for this party has restarted since: its join is
                // undone (a device's, before the session started) or the session fails.
                self.joined_by_gone_instance(&session, &party, old).await;
                session = self.get(session.id).await?;
                ensure_open(&session)?;
                continue;
            }
            return Err(failed_precondition(format!(
                "party {party} already joined this session with different keys"
            )));
        }
        self.start_when_everyone_joined(session.id).await?;
        Ok((claims.idx, self.get(session.id).await?))
    }

    /// The roster, once the session runs; moves the caller `ready → computing`.
    pub async fn roster(&self, token: &str) -> Result<SessionRecord, ApiError> {
        let (claims, session) = self.authenticate(token).await?;
        match session.status {
            SessionStatus::Created | SessionStatus::Waiting => {
                return Err(failed_precondition("session has not started"));
            }
            SessionStatus::InProgress | SessionStatus::Completed => {}
            SessionStatus::Failed | SessionStatus::Expired => ensure_open(&session)?,
        }
        let p = participant(&session, &claims.pid)?;
        if p.status == ParticipantStatus::Ready {
            let next = p.status.transition(ParticipantStatus::Computing)?;
            let update =
                ParticipantUpdate::new(session.id, claims.pid.clone(), p.status, next, now());
            // Losing this race means a concurrent roster call moved the party already.
            self.store.update_participant(&update).await?;
            return self.get(session.id).await;
        }
        Ok(session)
    }

    pub async fn report_completion(
        &self,
        token: &str,
        input: ReportInput,
    ) -> Result<SessionRecord, ApiError> {
        let (claims, session) = self.authenticate(token).await?;
        let report = check_report_shape(session.session_type, input)?;
        let p = participant(&session, &claims.pid)?;
        if p.status == ParticipantStatus::Completed {
            // A retry of the same report succeeds; a different one is refused.
            return if p.report.as_ref() == Some(&report) {
                Ok(session)
            } else {
                Err(failed_precondition(format!(
                    "party {} already reported a different result",
                    claims.pid
                )))
            };
        }
        match session.status {
            SessionStatus::Created | SessionStatus::Waiting => {
                return Err(failed_precondition("session has not started"));
            }
            _ => ensure_open(&session)?,
        }
        // Results that are wrong on their own fail the session at once.
        if let Err(reason) = check_report_against_session(&session, &report) {
            self.end_session(session, SessionStatus::Failed, reason.clone(), None)
                .await?;
            return Err(ApiError::new(ErrorCode::ProtocolFailed, reason));
        }
        let mut status = p.status;
        if status == ParticipantStatus::Ready {
            let next = status.transition(ParticipantStatus::Computing)?;
            let update =
                ParticipantUpdate::new(session.id, claims.pid.clone(), status, next, now());
            self.store.update_participant(&update).await?;
            status = next;
        }
        let next = status.transition(ParticipantStatus::Completed)?;
        let mut update =
            ParticipantUpdate::new(session.id, claims.pid.clone(), status, next, now());
        update.report = Some(report.clone());
        if !self.store.update_participant(&update).await? {
            let fresh = self.get(session.id).await?;
            let p = participant(&fresh, &claims.pid)?;
            if !(p.status == ParticipantStatus::Completed && p.report.as_ref() == Some(&report)) {
                return Err(failed_precondition(format!(
                    "party {} cannot report in state {}",
                    claims.pid, p.status
                )));
            }
        }
        if let Some(reason) = self.complete_when_everyone_agrees(session.id).await? {
            return Err(ApiError::new(ErrorCode::ProtocolFailed, reason));
        }
        self.get(session.id).await
    }

    pub async fn report_failure(
        &self,
        token: &str,
        reason: &str,
        blamed_party: Option<&str>,
        overloaded: bool,
    ) -> Result<SessionRecord, ApiError> {
        let (claims, session) = self.authenticate(token).await?;
        let blamed_party = if overloaded { None } else { blamed_party };
        let blamed = match blamed_party.filter(|b| !b.is_empty()) {
            Some(raw) => {
                let blamed = PartyId::parse(raw)?;
                if session.participant(&blamed).is_none() {
                    return Err(ApiError::invalid_argument(format!(
                        "blamed party {blamed} is not a participant"
                    )));
                }
                Some(blamed)
            }
            None => None,
        };
        let reason = if overloaded {
            mpc_proto::status::overloaded_failure(session.session_type, &claims.pid)
        } else {
            failure_reason(session.session_type, &claims.pid, reason)?
        };
        match session.status {
            // Several parties usually notice the same failure: the first report wins.
            SessionStatus::Failed => return Ok(session),
            SessionStatus::Completed => {
                return Err(failed_precondition("session is already completed"));
            }
            _ => ensure_open(&session)?,
        }
        tracing::warn!(session_id = %session.id, party_id = %claims.pid, "party reported failure");
        let id = session.id;
        self.end_session(session, SessionStatus::Failed, reason, blamed)
            .await?;
        self.get(id).await
    }
}

impl Coordinator {
    /// Fails a session that has not ended, blaming nobody (e.g. its account was suspended).
    /// A session that already ended is returned as it is: the caller sees whether the cancel
    /// came too late (completed) or was not needed.
    pub async fn cancel(&self, id: SessionId, reason: &str) -> Result<SessionRecord, ApiError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_LEN {
            return Err(ApiError::invalid_argument(format!(
                "reason: 1 to {MAX_REASON_LEN} bytes"
            )));
        }
        let session = self.get(id).await?;
        if session.status.is_terminal() {
            return Ok(session);
        }
        let reason = format!("{} failed: cancelled: {reason}", session.session_type);
        tracing::warn!(session_id = %id, %reason, "session cancelled");
        self.end_session(session, SessionStatus::Failed, reason, None)
            .await?;
        self.get(id).await
    }
}

fn participant<'a>(
    session: &'a SessionRecord,
    party: &PartyId,
) -> Result<&'a ParticipantRecord, ApiError> {
    session
        .participant(party)
        .ok_or_else(ApiError::invalid_join_token)
}

/// A session that can still be joined, reported to, or failed.
pub(crate) fn ensure_open(session: &SessionRecord) -> Result<(), ApiError> {
    match session.status {
        SessionStatus::Expired => Err(session_expired(session)),
        SessionStatus::Failed => Err(failed_precondition(format!(
            "session has failed: {}",
            session
                .failure_reason
                .as_deref()
                .unwrap_or("unknown reason")
        ))),
        SessionStatus::Completed => Err(failed_precondition("session is already completed")),
        // Past the deadline but not swept yet: expired all the same.
        _ if now() >= session.expires_at => Err(session_expired(session)),
        _ => Ok(()),
    }
}

fn session_expired(session: &SessionRecord) -> ApiError {
    ApiError::new(
        ErrorCode::SessionExpired,
        format!("session expired: {} failed: timeout", session.session_type),
    )
}

fn check_report_shape(ty: SessionType, input: ReportInput) -> Result<PartyReport, ApiError> {
    match (ty, input) {
        (SessionType::Sign, ReportInput::Signature { r, s, v }) => {
            let r: [u8; 32] = r
                .try_into()
                .map_err(|_| ApiError::invalid_argument("signature r must be 32 bytes"))?;
            let s: [u8; 32] = s
                .try_into()
                .map_err(|_| ApiError::invalid_argument("signature s must be 32 bytes"))?;
            let v = u8::try_from(v)
                .ok()
                .filter(|v| *v <= 1)
                .ok_or_else(|| ApiError::invalid_argument("signature v must be 0 or 1"))?;
            Ok(PartyReport::Signature { r, s, v })
        }
        (SessionType::Sign, ReportInput::PublicKey(_)) => Err(ApiError::invalid_argument(
            "a sign session reports a signature (r, s, v)",
        )),
        (_, ReportInput::PublicKey(key)) => {
            parse_public_key(&key).map_err(|_| {
                ApiError::invalid_argument(
                    "public_key must be a 65-byte uncompressed secp256k1 point (04…)",
                )
            })?;
            Ok(PartyReport::PublicKey(key))
        }
        (ty, ReportInput::Signature { .. }) => Err(ApiError::invalid_argument(format!(
            "a {ty} session reports the group public key"
        ))),
    }
}

/// Checks that need only the session: refresh/recovery keep the key; signatures verify.
/// `Err` is the failure reason for the session.
fn check_report_against_session(
    session: &SessionRecord,
    report: &PartyReport,
) -> Result<(), String> {
    let ty = session.session_type;
    match report {
        PartyReport::PublicKey(key) => match ty {
            SessionType::Refresh | SessionType::Recovery
                if session.public_key.as_ref() != Some(key) =>
            {
                Err(format!("{ty} failed: public key mismatch"))
            }
            _ => Ok(()),
        },
        PartyReport::Signature { r, s, v } => {
            let (Some(key), Some(hash)) = (&session.public_key, &session.message_hash) else {
                return Err("sign failed: session has no public key or message hash".into());
            };
            if hash.len() != MESSAGE_HASH_LEN {
                return Err("sign failed: session has no valid message hash".into());
            }
            verify_signature(key, hash, r, s, *v)
                .map(|_| ())
                .map_err(|e| format!("sign failed: invalid signature ({e})"))
        }
    }
}

/// The guide's form, `<type> failed: …`, bounded in length.
fn failure_reason(ty: SessionType, reporter: &PartyId, reason: &str) -> Result<String, ApiError> {
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::invalid_argument(format!(
            "reason must be at most {MAX_REASON_LEN} characters"
        )));
    }
    let prefix = format!("{ty} failed:");
    Ok(if reason.is_empty() {
        format!("{prefix} reported by party {reporter}")
    } else if reason.starts_with(&prefix) {
        reason.to_owned()
    } else {
        format!("{prefix} {reason}")
    })
}
