//! Orchestration (integration guide §2.1): keygen, sign, refresh and recovery sessions for
//! accounts, created at the coordinator with the account's parties and indices. The service
//! never touches key material: it knows where shares live, not what they are.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{AccountId, ApiError, ErrorCode, PartyId, SessionId, SessionType, Threshold};
use mpc_store::StoreError;
use mpc_store::account::{
    AccountRecord, AccountStatus, AccountStore, NewAccount, NewAccountSession, RecoveryPlan,
    ShareRecord,
};

use crate::api::{
    KeygenRequest, KeygenResponse, RecoverRequest, SessionCreatedResponse, SignRequest,
    SignResponse,
};
use crate::audit::AuditTarget;
use crate::coordinator::CoordinatorClient;
use crate::metrics::AccountMetrics;
use crate::outcomes::RecentEvents;
use crate::validate;

pub struct AccountService {
    pub(crate) store: Arc<dyn AccountStore>,
    pub(crate) coordinator: CoordinatorClient,
    pub(crate) session_lifetime_seconds: u32,
    pub(crate) metrics: AccountMetrics,
    pub(crate) recent_events: std::sync::Mutex<RecentEvents>,
    /// Sessions in flight against the entrance's budget.
    pub(crate) in_flight: crate::in_flight::InFlight,
    /// Webhook registration and the delivery outbox.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

/// A session the coordinator created, in the shape every "created" response shares.
pub(crate) struct Created {
    pub session_id: SessionId,
    pub join_tokens: BTreeMap<String, String>,
    pub status: String,
    pub expires_at: DateTime<Utc>,
}

pub(crate) fn account_not_found(id: AccountId) -> ApiError {
    ApiError::new(
        ErrorCode::AccountNotFound,
        format!("account not found: {id}"),
    )
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(message) => ApiError::new(ErrorCode::AlreadyExists, message),
        other => other.into(),
    }
}

fn session_status_name(status: i32) -> String {
    match pb::SessionStatus::try_from(status) {
        Ok(pb::SessionStatus::Created) => "created",
        Ok(pb::SessionStatus::Waiting) => "waiting",
        Ok(pb::SessionStatus::InProgress) => "in_progress",
        Ok(pb::SessionStatus::Completed) => "completed",
        Ok(pb::SessionStatus::Failed) => "failed",
        Ok(pb::SessionStatus::Expired) => "expired",
        _ => "unknown",
    }
    .to_owned()
}

fn spec(party: &PartyId, device_type: Option<&str>, index: Option<u16>) -> pb::ParticipantSpec {
    pb::ParticipantSpec {
        party_id: party.to_string(),
        device_type: device_type.unwrap_or_default().to_owned(),
        party_index: index.map(u32::from),
    }
}

fn pb_type(ty: SessionType) -> i32 {
    match ty {
        SessionType::Keygen => pb::SessionType::Keygen,
        SessionType::Sign => pb::SessionType::Sign,
        SessionType::Refresh => pb::SessionType::Refresh,
        SessionType::Recovery => pb::SessionType::Recovery,
    }
    .into()
}

impl AccountService {
    async fn create_session(&self, req: pb::CreateSessionRequest) -> Result<Created, ApiError> {
        let created = self.coordinator.create_session(req).await?;
        let session_id = SessionId::parse(&created.session_id)
            .map_err(|_| ApiError::internal(&"the coordinator returned an invalid session id"))?;
        Ok(Created {
            session_id,
            join_tokens: created.join_tokens.into_iter().collect(),
            status: session_status_name(created.status),
            expires_at: DateTime::from_timestamp_millis(created.expires_at_ms)
                .unwrap_or_else(Utc::now),
        })
    }

    async fn record(
        &self,
        session_id: SessionId,
        account_id: AccountId,
        session_type: SessionType,
        recovery: Option<RecoveryPlan>,
    ) -> Result<(), ApiError> {
        // Before the session row: whoever observes its outcome finds the key that started it.
        self.webhooks.record_owner(session_id).await?;
        self.store
            .record_session(&NewAccountSession {
                session_id,
                account_id,
                session_type,
                recovery,
                created_at: Utc::now(),
            })
            .await
            .map_err(ApiError::from)
    }

    /// Guide §5.1 step 1: a `pending` account and its keygen session.
    pub async fn keygen(
        &self,
        req: &KeygenRequest,
    ) -> Result<(KeygenResponse, AuditTarget), ApiError> {
        let threshold = Threshold::checked(req.threshold_t, req.threshold_n)?;
        let parties = validate::party_ids(req.participants.iter().map(|p| p.party_id.as_str()))?;
        let mut device_types = Vec::with_capacity(parties.len());
        for p in &req.participants {
            device_types.push(validate::device_type(p.device_type.as_deref())?);
        }
        let n = usize::from(threshold.n);
        if parties.len() < n {
            return Err(ApiError::new(
                ErrorCode::InsufficientParticipants,
                format!(
                    "insufficient participants: a {}-of-{} keygen needs all {n} parties \
                     (threshold_n), got {}",
                    threshold.t,
                    threshold.n,
                    parties.len()
                ),
            ));
        }
        if parties.len() > n {
            return Err(ApiError::invalid_argument(format!(
                "too many participants: threshold_n is {n}, got {}",
                parties.len()
            )));
        }
        // Last of the checks, before anything is created: a refusal leaves nothing behind.
        let ticket = self.in_flight.admit("keygen").await?;
        let account = NewAccount {
            id: AccountId::new_random(),
            username: validate::username(req.username.as_deref())?,
            email: validate::email(req.email.as_deref())?,
            threshold,
            created_at: Utc::now(),
        };
        self.store
            .create_account(&account)
            .await
            .map_err(store_error)?;
        let request = pb::CreateSessionRequest {
            session_type: pb_type(SessionType::Keygen),
            threshold_t: u32::from(threshold.t),
            threshold_n: u32::from(threshold.n),
            participants: parties
                .iter()
                .zip(&device_types)
                .map(|(p, d)| spec(p, d.as_deref(), None))
                .collect(),
            key_id: account.id.to_string(),
            lifetime_seconds: self.session_lifetime_seconds,
            ..Default::default()
        };
        let created = match self.create_session(request).await {
            Ok(created) => created,
            Err(e) => {
                // Nothing was started: the account must not linger as a pending one.
                if let Err(cleanup) = self.store.delete_unstarted_account(account.id).await {
                    tracing::warn!(error = %cleanup, account_id = %account.id, "could not remove an unstarted account");
                }
                return Err(e);
            }
        };
        self.in_flight.hold(ticket, created.session_id);
        self.record(created.session_id, account.id, SessionType::Keygen, None)
            .await?;
        self.metrics.refresh(&*self.store).await;
        tracing::info!(session_id = %created.session_id, account_id = %account.id, "keygen session created");
        let target = AuditTarget {
            session_id: Some(created.session_id),
            account_id: Some(account.id),
        };
        Ok((
            KeygenResponse {
                session_id: created.session_id.0,
                session_type: "keygen".into(),
                threshold_n: threshold.n,
                threshold_t: threshold.t,
                join_tokens: created.join_tokens,
                status: created.status,
                account_id: account.id.0,
                expires_at: created.expires_at,
            },
            target,
        ))
    }

    /// The account and its active shares, or 404.
    pub(crate) async fn account_with_shares(
        &self,
        id: AccountId,
    ) -> Result<(AccountRecord, Vec<ShareRecord>), ApiError> {
        let account = self
            .store
            .get_account(id)
            .await?
            .ok_or_else(|| account_not_found(id))?;
        let shares = self.store.shares(id, false).await?;
        Ok((account, shares))
    }

    /// The account's key and its n active shares; refuses accounts without a usable key.
    async fn keyed_account(
        &self,
        id: AccountId,
        what: &str,
        allow_suspended: bool,
    ) -> Result<(AccountRecord, Vec<u8>, Vec<ShareRecord>), ApiError> {
        let (account, shares) = self.account_with_shares(id).await?;
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::Suspended if allow_suspended => {}
            AccountStatus::Suspended => {
                return Err(ApiError::new(
                    ErrorCode::AccountSuspended,
                    format!("account is suspended: {what} is not allowed until it is activated"),
                ));
            }
            AccountStatus::Pending => {
                return Err(ApiError::new(
                    ErrorCode::FailedPrecondition,
                    format!(
                        "account has no key yet: its keygen has not completed ({what} needs one)"
                    ),
                ));
            }
            AccountStatus::Failed => {
                return Err(ApiError::new(
                    ErrorCode::FailedPrecondition,
                    format!("account has no key: its keygen failed ({what} needs one)"),
                ));
            }
        }
        let public_key = account.public_key.clone().ok_or_else(|| {
            ApiError::internal(&format_args!("active account {id} has no public key"))
        })?;
        if shares.len() != usize::from(account.threshold.n) {
            return Err(ApiError::internal(&format_args!(
                "account {id} has {} active shares for n = {}",
                shares.len(),
                account.threshold.n
            )));
        }
        Ok((account, public_key, shares))
    }

    /// Guide §5.2 step 2: a sign session with exactly t of the account's parties.
    pub async fn sign(&self, req: &SignRequest) -> Result<(SignResponse, AuditTarget), ApiError> {
        let account_id = AccountId::parse(&req.account_id)?;
        let hash = mpc_proto::parse_message_hash(&req.message_hash)?;
        let signers = validate::party_ids(req.participants.iter().map(|p| p.party_id.as_str()))?;
        let (account, public_key, shares) =
            self.keyed_account(account_id, "signing", false).await?;
        let t = usize::from(account.threshold.t);
        let mut participants = Vec::with_capacity(signers.len());
        for (party, requested) in signers.iter().zip(&req.participants) {
            let share = shares
                .iter()
                .find(|s| &s.party_id == party)
                .ok_or_else(|| {
                    ApiError::invalid_argument(format!(
                        "party {party} is not a party of account {account_id}"
                    ))
                })?;
            let device_type = validate::device_type(requested.device_type.as_deref())?
                .or_else(|| share.device_type.clone());
            participants.push(spec(party, device_type.as_deref(), Some(share.party_index)));
        }
        if signers.len() < t {
            return Err(ApiError::new(
                ErrorCode::InsufficientParticipants,
                format!(
                    "insufficient participants: signing with this {}-of-{} key needs {t} parties \
                     (threshold_t), got {}",
                    account.threshold.t,
                    account.threshold.n,
                    signers.len()
                ),
            ));
        }
        if signers.len() > t {
            return Err(ApiError::invalid_argument(format!(
                "too many participants: signing needs exactly {t} parties (threshold_t), got {}",
                signers.len()
            )));
        }
        let ticket = self.in_flight.admit("sign").await?;
        let created = self
            .create_session(pb::CreateSessionRequest {
                session_type: pb_type(SessionType::Sign),
                threshold_t: u32::from(account.threshold.t),
                threshold_n: u32::from(account.threshold.n),
                participants,
                key_id: account_id.to_string(),
                message_hash: hash.to_vec(),
                public_key,
                lifetime_seconds: self.session_lifetime_seconds,
                ..Default::default()
            })
            .await?;
        self.in_flight.hold(ticket, created.session_id);
        self.record(created.session_id, account_id, SessionType::Sign, None)
            .await?;
        // A suspension between the check above and the record would not have seen this
        // session: look again now that it is recorded (either this sees the suspension, or
        // the suspension's cancel sees the session).
        let now_status = self.store.get_account(account_id).await?.map(|a| a.status);
        if now_status != Some(AccountStatus::Active) {
            if let Err(e) = self
                .coordinator
                .cancel_session(created.session_id, "account suspended")
                .await
            {
                tracing::warn!(session_id = %created.session_id, error = %e, "cannot cancel the sign session of an account suspended meanwhile");
            }
            return Err(ApiError::new(
                ErrorCode::AccountSuspended,
                "account is suspended: signing is not allowed until it is activated",
            ));
        }
        tracing::info!(session_id = %created.session_id, %account_id, "sign session created");
        Ok((
            SignResponse {
                session_id: created.session_id.0,
                session_type: "sign".into(),
                account_id: account_id.0,
                message_hash: hex::encode(hash),
                threshold_t: account.threshold.t,
                join_tokens: created.join_tokens,
                status: created.status,
                expires_at: created.expires_at,
            },
            AuditTarget {
                session_id: Some(created.session_id),
                account_id: Some(account_id),
            },
        ))
    }

    /// New shares for every party, same public key.
    pub async fn refresh(
        &self,
        account_id: AccountId,
    ) -> Result<(SessionCreatedResponse, AuditTarget), ApiError> {
        let (account, public_key, shares) = self.keyed_account(account_id, "refresh", true).await?;
        let participants = shares
            .iter()
            .map(|s| spec(&s.party_id, s.device_type.as_deref(), Some(s.party_index)))
            .collect();
        let ticket = self.in_flight.admit("refresh").await?;
        let created = self
            .create_session(pb::CreateSessionRequest {
                session_type: pb_type(SessionType::Refresh),
                threshold_t: u32::from(account.threshold.t),
                threshold_n: u32::from(account.threshold.n),
                participants,
                key_id: account_id.to_string(),
                public_key,
                lifetime_seconds: self.session_lifetime_seconds,
                ..Default::default()
            })
            .await?;
        self.in_flight.hold(ticket, created.session_id);
        self.record(created.session_id, account_id, SessionType::Refresh, None)
            .await?;
        Ok(self.created_response(created, SessionType::Refresh, &account))
    }

    /// A lost share rebuilt at its index for `new_party_id` by at least t helpers; every other
    /// party takes part (the rebuilt key is refreshed), and the public key stays the same.
    pub async fn recover(
        &self,
        account_id: AccountId,
        req: &RecoverRequest,
    ) -> Result<(SessionCreatedResponse, AuditTarget), ApiError> {
        let lost = PartyId::parse(&req.lost_party_id)?;
        let new = PartyId::parse(&req.new_party_id)?;
        let (account, public_key, shares) =
            self.keyed_account(account_id, "recovery", true).await?;
        let lost_share = shares.iter().find(|s| s.party_id == lost).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "lost_party_id {lost} is not an active party of account {account_id}"
            ))
        })?;
        let others: Vec<&ShareRecord> = shares.iter().filter(|s| s.party_id != lost).collect();
        if others.iter().any(|s| s.party_id == new) {
            return Err(ApiError::new(
                ErrorCode::DuplicatePartyId,
                format!("new_party_id {new} already holds another share of this account"),
            ));
        }
        let t = usize::from(account.threshold.t);
        let helpers = match &req.helpers {
            None => others.iter().take(t).map(|s| s.party_id.clone()).collect(),
            Some(raw) => {
                let helpers = validate::party_ids(raw.iter().map(String::as_str))?;
                for h in &helpers {
                    if !others.iter().any(|s| &s.party_id == h) {
                        return Err(ApiError::invalid_argument(format!(
                            "helper {h} is not a party of account {account_id} other than the lost one"
                        )));
                    }
                }
                helpers
            }
        };
        if helpers.len() < t {
            return Err(ApiError::new(
                ErrorCode::InsufficientParticipants,
                format!(
                    "insufficient participants: recovery needs at least {t} helpers (threshold_t), got {}",
                    helpers.len()
                ),
            ));
        }
        let new_device_type = validate::device_type(req.device_type.as_deref())?
            .or_else(|| lost_share.device_type.clone());
        let mut participants: Vec<pb::ParticipantSpec> = others
            .iter()
            .map(|s| spec(&s.party_id, s.device_type.as_deref(), Some(s.party_index)))
            .collect();
        participants.push(spec(
            &new,
            new_device_type.as_deref(),
            Some(lost_share.party_index),
        ));
        let ticket = self.in_flight.admit("recovery").await?;
        let created = self
            .create_session(pb::CreateSessionRequest {
                session_type: pb_type(SessionType::Recovery),
                threshold_t: u32::from(account.threshold.t),
                threshold_n: u32::from(account.threshold.n),
                participants,
                key_id: account_id.to_string(),
                public_key,
                recovery: Some(pb::RecoverySpec {
                    target_party_id: new.to_string(),
                    helper_party_ids: helpers.iter().map(ToString::to_string).collect(),
                }),
                lifetime_seconds: self.session_lifetime_seconds,
                ..Default::default()
            })
            .await?;
        self.in_flight.hold(ticket, created.session_id);
        let plan = RecoveryPlan {
            lost_party_id: lost,
            new_party_id: new,
            new_device_type,
        };
        self.record(
            created.session_id,
            account_id,
            SessionType::Recovery,
            Some(plan),
        )
        .await?;
        Ok(self.created_response(created, SessionType::Recovery, &account))
    }

    fn created_response(
        &self,
        created: Created,
        ty: SessionType,
        account: &AccountRecord,
    ) -> (SessionCreatedResponse, AuditTarget) {
        tracing::info!(session_id = %created.session_id, account_id = %account.id, session_type = %ty, "session created");
        (
            SessionCreatedResponse {
                session_id: created.session_id.0,
                session_type: ty.to_string(),
                account_id: account.id.0,
                threshold_n: account.threshold.n,
                threshold_t: account.threshold.t,
                join_tokens: created.join_tokens,
                status: created.status,
                expires_at: created.expires_at,
            },
            AuditTarget {
                session_id: Some(created.session_id),
                account_id: Some(account.id),
            },
        )
    }

    /// Suspends (`suspend = true`) or re-activates an account.
    pub async fn set_suspended(
        &self,
        id: AccountId,
        suspend: bool,
    ) -> Result<AccountRecord, ApiError> {
        let (from, to) = if suspend {
            (AccountStatus::Active, AccountStatus::Suspended)
        } else {
            (AccountStatus::Suspended, AccountStatus::Active)
        };
        let changed = self
            .store
            .transition_account(id, &[from, to], to, Utc::now())
            .await?;
        let account = self
            .store
            .get_account(id)
            .await?
            .ok_or_else(|| account_not_found(id))?;
        if !changed && account.status != to {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                format!(
                    "account is {}: only {} accounts can be {}",
                    account.status,
                    from,
                    if suspend { "suspended" } else { "activated" }
                ),
            ));
        }
        if suspend {
            self.cancel_open_signs(id).await?;
        }
        self.metrics.refresh(&*self.store).await;
        Ok(account)
    }

    /// Fails every sign session of the account that has not ended: a suspended account signs
    /// nothing more, also not through a session created before the suspension. A session that
    /// completed before the cancel reached it was signed before the suspension took effect.
    async fn cancel_open_signs(&self, id: AccountId) -> Result<(), ApiError> {
        let open = self.store.pending_sessions_of_account(id).await?;
        let mut not_cancelled = 0usize;
        for session in open.iter().filter(|s| s.session_type == SessionType::Sign) {
            match self
                .coordinator
                .cancel_session(session.session_id, "account suspended")
                .await
            {
                Ok(info) => {
                    tracing::info!(session_id = %session.session_id, account_id = %id, status = %session_status_name(info.status), "open sign session of a suspended account cancelled");
                }
                Err(e) if e.code == ErrorCode::SessionNotFound => {}
                Err(e) => {
                    tracing::warn!(session_id = %session.session_id, account_id = %id, error = %e, "cannot cancel a sign session of a suspended account");
                    not_cancelled += 1;
                }
            }
        }
        if not_cancelled > 0 {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "the account is suspended, but {not_cancelled} of its open sign sessions could not be cancelled (the session coordinator did not answer): suspend it again to retry"
                ),
            ));
        }
        Ok(())
    }
}
