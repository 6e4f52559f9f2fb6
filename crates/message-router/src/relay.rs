//! The routing logic, independent of the transport: checks the caller's join token and the
//! envelope, stores it, wakes recipients, and serves mailboxes. gRPC and HTTP are thin layers
//! over [`Relay`]; every error is an [`ApiError`] with the guide's wording.
//!
//! Payloads are opaque: never parsed, never logged (only ids, sizes, rounds and party ids).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use mpc_proto::{ApiError, ErrorCode, JoinClaims, MessageId, PartyId, SessionId, TokenVerifier};
use mpc_store::router::{
    FetchOutcome, Mailbox, NewEnvelope, RouteOutcome, RouterStore, StoredEnvelope,
};
use tokio::sync::mpsc;

use crate::Shutdown;
use crate::hub::Hub;
use crate::metrics::RouterMetrics;

/// `FetchMessages` without a limit returns this many envelopes at most.
pub const DEFAULT_FETCH_LIMIT: u32 = 100;
/// `FetchMessages` never returns more than this many envelopes.
pub const MAX_FETCH_LIMIT: u32 = 1000;
/// Payload bytes per fetch response or subscription page (the first envelope always goes out
/// whole). Keeps a response of many envelopes under gRPC's default 4 MiB message limit.
pub const PAGE_MAX_BYTES: u64 = 3 * 1024 * 1024;
/// Envelopes a subscription reads from the database at a time.
const SUBSCRIPTION_PAGE: u32 = 100;
/// Envelopes buffered per subscription between the database reader and a slow client.
const SUBSCRIPTION_BUFFER: usize = 8;
/// Tokens stay valid this long past `exp` (clock skew), as in `TokenVerifier`.
const TOKEN_LEEWAY: Duration = Duration::from_secs(5);

/// An envelope as a client sent it, before any check.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DirtyEnvelope {
    pub message_id: String,
    pub session_id: String,
    pub from_party: String,
    /// Empty for a broadcast.
    pub to_party: String,
    pub round: u32,
    pub payload: Vec<u8>,
}

impl fmt::Debug for DirtyEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirtyEnvelope")
            .field("message_id", &self.message_id)
            .field("session_id", &self.session_id)
            .field("from_party", &self.from_party)
            .field("to_party", &self.to_party)
            .field("round", &self.round)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// The answer to a routed envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    pub message_id: MessageId,
    pub duplicate: bool,
    pub recipients: u32,
}

/// Which mailbox a fetch or subscription reads, as the client named it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxRequest {
    pub session_id: String,
    pub party_id: String,
    pub after_seq: u64,
}

/// A page of a mailbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub envelopes: Vec<StoredEnvelope>,
    /// The last seq returned, or the request's `after_seq` when nothing was.
    pub last_seq: u64,
    pub has_more: bool,
}

/// Limits the relay enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_payload_bytes: usize,
    pub max_fetch_wait: Duration,
    pub poll_interval: Duration,
}

/// The router's core, shared by the gRPC and HTTP front ends.
#[derive(Clone)]
pub struct Relay {
    store: Arc<dyn RouterStore>,
    verifier: TokenVerifier,
    hub: Hub,
    metrics: RouterMetrics,
    limits: Limits,
    shutdown: Shutdown,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Relay {
    pub fn new(
        store: Arc<dyn RouterStore>,
        verifier: TokenVerifier,
        hub: Hub,
        metrics: RouterMetrics,
        limits: Limits,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            store,
            verifier,
            hub,
            metrics,
            limits,
            shutdown,
        }
    }

    /// Checks and stores an envelope from the holder of `token`, then wakes its recipients.
    pub async fn route(&self, token: &str, dirty: DirtyEnvelope) -> Result<Routed, ApiError> {
        let claims = self.verifier.verify(token)?;
        let envelope = check_envelope(&claims, dirty, self.limits.max_payload_bytes)?;
        let session_id = envelope.session_id;
        let message_id = envelope.message_id;
        let outcome = self.store.route(&envelope).await?;
        let payload_len = envelope.payload.len();
        match outcome {
            RouteOutcome::Stored { deliveries } => {
                self.metrics.stored(payload_len);
                for (recipient, _) in &deliveries {
                    self.hub.wake(&Mailbox::new(session_id, recipient.clone()));
                }
                tracing::debug!(
                    %session_id,
                    %message_id,
                    from_party = %envelope.from_party,
                    to_party = envelope.to_party.as_ref().map(|p| p.as_str()).unwrap_or("*"),
                    round = envelope.round,
                    payload_len,
                    recipients = deliveries.len(),
                    "envelope stored"
                );
                Ok(Routed {
                    message_id,
                    duplicate: false,
                    recipients: count(deliveries.len()),
                })
            }
            RouteOutcome::Duplicate { recipients } => {
                self.metrics.duplicate();
                tracing::debug!(%session_id, %message_id, "duplicate envelope ignored");
                Ok(Routed {
                    message_id,
                    duplicate: true,
                    recipients,
                })
            }
            RouteOutcome::Conflict => Err(ApiError::new(
                ErrorCode::AlreadyExists,
                "message_id is already used by a different envelope",
            )),
            RouteOutcome::SessionEnded => Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                "session has ended: no more messages are accepted",
            )),
        }
    }

    /// Up to `limit` envelopes after `after_seq`; waits up to `wait` (bounded) for the first.
    pub async fn fetch(
        &self,
        token: &str,
        request: &MailboxRequest,
        limit: u32,
        wait: Duration,
    ) -> Result<Fetched, ApiError> {
        let (mailbox, _claims) = self.authorize_mailbox(token, request)?;
        let limit = match limit {
            0 => DEFAULT_FETCH_LIMIT,
            n => n.min(MAX_FETCH_LIMIT),
        };
        let deadline = tokio::time::Instant::now() + wait.min(self.limits.max_fetch_wait);
        // Registered before the first read, so that a commit between read and wait wakes us.
        let mut watch = (!wait.is_zero()).then(|| self.hub.watch(&mailbox));
        loop {
            let (envelopes, has_more) = self.read_page(&mailbox, request.after_seq, limit).await?;
            let now = tokio::time::Instant::now();
            let Some(watch) = watch
                .as_mut()
                .filter(|_| envelopes.is_empty() && now < deadline)
            else {
                for envelope in &envelopes {
                    self.metrics.delivered(envelope.created_at);
                }
                let last_seq = envelopes.last().map_or(request.after_seq, |e| e.seq);
                return Ok(Fetched {
                    envelopes,
                    last_seq,
                    has_more,
                });
            };
            let nap = (deadline - now).min(self.limits.poll_interval);
            tokio::select! {
                () = watch.changed() => {}
                () = tokio::time::sleep(nap) => {}
                () = self.shutdown.cancelled() => return Err(shutting_down()),
            }
        }
    }

    /// Opens a subscription: every stored envelope after `after_seq`, then live ones. The
    /// receiver ends with an error when the session is purged, the token expires, or the router
    /// shuts down; dropping it ends the subscription.
    pub fn subscribe(
        &self,
        token: &str,
        request: &MailboxRequest,
    ) -> Result<mpsc::Receiver<Result<StoredEnvelope, ApiError>>, ApiError> {
        let (mailbox, claims) = self.authorize_mailbox(token, request)?;
        let (sender, receiver) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let relay = self.clone();
        let after_seq = request.after_seq;
        let expires_in = Duration::from_secs(claims.exp)
            .saturating_sub(unix_now())
            .saturating_add(TOKEN_LEEWAY);
        tokio::spawn(async move {
            let _gauge = relay.metrics.subscription();
            tracing::debug!(
                session_id = %mailbox.session_id,
                party_id = %mailbox.recipient,
                after_seq,
                "subscription opened"
            );
            let end = relay
                .run_subscription(&mailbox, after_seq, expires_in, &sender)
                .await;
            if let Err(e) = end {
                // The client learns why its stream ends if it is reading; a client that is not
                // must not keep this task alive past shutdown.
                tokio::select! {
                    biased;
                    _ = sender.send(Err(e)) => {}
                    () = relay.shutdown.cancelled() => {}
                }
            }
            tracing::debug!(
                session_id = %mailbox.session_id,
                party_id = %mailbox.recipient,
                "subscription closed"
            );
        });
        Ok(receiver)
    }

    /// Feeds `sender` until the client goes away (`Ok`) or the subscription must end (`Err`,
    /// sent to the client as the stream's last item).
    async fn run_subscription(
        &self,
        mailbox: &Mailbox,
        mut cursor: u64,
        expires_in: Duration,
        sender: &mpsc::Sender<Result<StoredEnvelope, ApiError>>,
    ) -> Result<(), ApiError> {
        let expiry = tokio::time::sleep(expires_in);
        tokio::pin!(expiry);
        let mut watch = self.hub.watch(mailbox);
        loop {
            let (envelopes, has_more) = self.read_page(mailbox, cursor, SUBSCRIPTION_PAGE).await?;
            for envelope in envelopes {
                let (seq, created_at) = (envelope.seq, envelope.created_at);
                // Waits while a slow client's buffer is full; only this subscription waits.
                tokio::select! {
                    sent = sender.send(Ok(envelope)) => if sent.is_err() {
                        return Ok(());
                    },
                    () = self.shutdown.cancelled() => return Err(shutting_down()),
                }
                self.metrics.delivered(created_at);
                cursor = seq;
            }
            if has_more {
                continue;
            }
            tokio::select! {
                () = watch.changed() => {}
                () = tokio::time::sleep(self.limits.poll_interval) => {}
                () = sender.closed() => return Ok(()),
                () = self.shutdown.cancelled() => return Err(shutting_down()),
                () = &mut expiry => return Err(ApiError::invalid_join_token()),
            }
        }
    }

    async fn read_page(
        &self,
        mailbox: &Mailbox,
        after_seq: u64,
        limit: u32,
    ) -> Result<(Vec<StoredEnvelope>, bool), ApiError> {
        match self
            .store
            .fetch(mailbox, after_seq, limit, PAGE_MAX_BYTES)
            .await?
        {
            FetchOutcome::Envelopes {
                envelopes,
                has_more,
            } => Ok((envelopes, has_more)),
            FetchOutcome::SessionPurged => Err(ApiError::session_not_found()),
        }
    }

    /// The mailbox `request` names, if `token` is its owner's.
    fn authorize_mailbox(
        &self,
        token: &str,
        request: &MailboxRequest,
    ) -> Result<(Mailbox, JoinClaims), ApiError> {
        let claims = self.verifier.verify(token)?;
        let session_id = parse_session(&request.session_id, &claims)?;
        let party = PartyId::parse(&request.party_id)?;
        if party != claims.pid {
            return Err(ApiError::new(
                ErrorCode::PermissionDenied,
                "party_id does not match the join token: a party reads only its own messages",
            ));
        }
        Ok((Mailbox::new(session_id, party), claims))
    }
}

/// Checks an envelope as its sender (`claims`, from a verified join token) sent it: the session
/// and sender are the token's, the ids parse, the recipient is another party of the session, and
/// the payload is neither empty nor over `max_payload_bytes`. Pure, so that it can be fuzzed.
pub fn check_envelope(
    claims: &JoinClaims,
    dirty: DirtyEnvelope,
    max_payload_bytes: usize,
) -> Result<NewEnvelope, ApiError> {
    let session_id = parse_session(&dirty.session_id, claims)?;
    if dirty.from_party != claims.pid.as_str() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "from_party does not match the join token",
        ));
    }
    let message_id = MessageId::parse(&dirty.message_id)?;
    let (to_party, recipients) = resolve_recipients(&dirty.to_party, claims)?;
    if dirty.payload.is_empty() {
        return Err(ApiError::invalid_argument("payload must not be empty"));
    }
    if dirty.payload.len() > max_payload_bytes {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "payload of {} bytes exceeds the limit of {} bytes",
                dirty.payload.len(),
                max_payload_bytes
            ),
        ));
    }
    Ok(NewEnvelope {
        message_id,
        session_id,
        from_party: claims.pid.clone(),
        to_party,
        recipients,
        round: dirty.round,
        payload: dirty.payload,
        session_deadline: deadline_of(claims),
        created_at: Utc::now(),
    })
}

/// The session the client named, which must be its token's.
fn parse_session(raw: &str, claims: &JoinClaims) -> Result<SessionId, ApiError> {
    let session_id = SessionId::parse(raw)?;
    if session_id != claims.sid {
        tracing::debug!(%session_id, token_session = %claims.sid, "join token is for another session");
        return Err(ApiError::invalid_join_token());
    }
    Ok(session_id)
}

/// `(to_party as addressed, recipients)`: one other party, or all others for a broadcast.
fn resolve_recipients(
    to_party: &str,
    claims: &JoinClaims,
) -> Result<(Option<PartyId>, Vec<PartyId>), ApiError> {
    if to_party.is_empty() {
        let mut others: Vec<PartyId> = claims
            .parties
            .iter()
            .filter(|p| **p != claims.pid)
            .cloned()
            .collect();
        others.sort();
        others.dedup();
        if others.is_empty() {
            return Err(ApiError::invalid_argument(
                "broadcast needs at least one other party in the session",
            ));
        }
        return Ok((None, others));
    }
    let to = PartyId::parse(to_party)?;
    if to == claims.pid {
        return Err(ApiError::invalid_argument(
            "to_party must be another party: a party does not send to itself",
        ));
    }
    if !claims.parties.contains(&to) {
        return Err(ApiError::invalid_argument(format!(
            "to_party {to} is not a party of this session"
        )));
    }
    Ok((Some(to.clone()), vec![to]))
}

fn deadline_of(claims: &JoinClaims) -> DateTime<Utc> {
    i64::try_from(claims.exp)
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn shutting_down() -> ApiError {
    ApiError::new(ErrorCode::Unavailable, "router is shutting down")
}
