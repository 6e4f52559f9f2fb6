//! Getting envelopes in and out through the router, and following the session's state at the
//! coordinator, with retries where a network hiccup is the likely cause.
//!
//! - [`Inbox`]: the party's mailbox. A `SubscribeMessages` stream, resumed from the last seq
//!   seen whenever it breaks; after several breaks in a row without progress, `FetchMessages`
//!   long-polling for the rest of the session. Nothing is lost or seen twice: the seq is the
//!   cursor, and an envelope at or below it is dropped (the engine treats a repeat as misconduct).
//! - [`send`]: `RouteMessage` with retries of the *same* envelope, which the router
//!   de-duplicates on `message_id`, so a send whose answer was lost is not stored twice.
//! - [`Watcher`]: `WatchSession` in the background, re-opened when it breaks.

use std::collections::VecDeque;
use std::time::Duration;

use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::pb::mpc::router::v1::MpcMessage;
use mpc_proto::{ApiError, ErrorCode, PartyId, SessionId, SessionStatus};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::Streaming;

use super::error::PartyError;
use super::{DriverOptions, MailboxTransport, PartyContext, Progress};
use crate::clients::{CoordinatorClient, MailboxRef, RouterClient};

/// Whether a failed call may succeed when repeated (the service or the network was away).
pub(crate) fn is_transient(error: &ApiError) -> bool {
    matches!(
        error.code,
        ErrorCode::Unavailable
            | ErrorCode::Timeout
            | ErrorCode::Internal
            | ErrorCode::ResourceExhausted
    )
}

/// Exponential backoff between retries.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(options: &DriverOptions) -> Self {
        Self {
            next: options.retry_first,
            max: options.retry_max,
        }
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    pub(crate) fn reset(&mut self, options: &DriverOptions) {
        self.next = options.retry_first;
    }
}

/// The party's mailbox in one session, read by a background task so that it keeps draining
/// (and noticing breaks) while the party computes or retries a send.
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Result<MpcMessage, PartyError>>,
    task: JoinHandle<()>,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inbox {
    pub(crate) fn spawn(
        ctx: PartyContext,
        token: String,
        session_id: SessionId,
        me: PartyId,
    ) -> Self {
        let (tx, rx) = mpsc::channel(INBOX_BUFFER);
        let task = tokio::spawn(async move {
            let mut reader = Reader::new(&ctx, &token, session_id, &me);
            loop {
                let next = reader.next().await;
                let fatal = next.is_err();
                if tx.send(next).await.is_err() || fatal {
                    return;
                }
            }
        });
        Self { rx, task }
    }

    /// The next envelope, in seq order. Errors only when the router refuses for good.
    pub(crate) async fn next(&mut self) -> Result<MpcMessage, PartyError> {
        self.rx
            .recv()
            .await
            .unwrap_or_else(|| Err(PartyError::Internal("the mailbox reader stopped".into())))
    }
}

/// Envelopes read ahead of the engine (a session has a few per peer and round).
const INBOX_BUFFER: usize = 64;

struct Reader<'a> {
    ctx: &'a PartyContext,
    token: &'a str,
    session_id: SessionId,
    me: &'a PartyId,
    /// The last seq handed out: the resume point.
    after_seq: u64,
    mode: MailboxTransport,
    stream: Option<Streaming<MpcMessage>>,
    /// Consecutive stream breaks without an envelope in between.
    breaks: u32,
    buffer: VecDeque<MpcMessage>,
    backoff: Backoff,
}

impl<'a> Reader<'a> {
    fn new(ctx: &'a PartyContext, token: &'a str, session_id: SessionId, me: &'a PartyId) -> Self {
        Self {
            ctx,
            token,
            session_id,
            me,
            after_seq: 0,
            mode: ctx.options.transport,
            stream: None,
            breaks: 0,
            buffer: VecDeque::new(),
            backoff: Backoff::new(&ctx.options),
        }
    }

    fn mailbox(&self) -> MailboxRef<'a> {
        MailboxRef {
            join_token: self.token,
            session_id: self.session_id,
            party_id: self.me,
        }
    }

    async fn next(&mut self) -> Result<MpcMessage, PartyError> {
        loop {
            if let Some(m) = self.buffer.pop_front() {
                if m.seq <= self.after_seq {
                    continue;
                }
                self.after_seq = m.seq;
                return Ok(m);
            }
            match self.mode {
                MailboxTransport::Stream => self.fill_from_stream().await?,
                MailboxTransport::Polling => self.fill_from_poll().await?,
            }
        }
    }

    async fn fill_from_stream(&mut self) -> Result<(), PartyError> {
        let router = &self.ctx.router;
        let stream = match self.stream.as_mut() {
            Some(stream) => stream,
            None => match router.subscribe(self.mailbox(), self.after_seq).await {
                Ok(stream) => self.stream.insert(stream),
                Err(e) if is_transient(&e) => return self.stream_broke(&e).await,
                Err(e) => return Err(PartyError::router(e)),
            },
        };
        match stream.message().await {
            Ok(Some(m)) => {
                self.breaks = 0;
                self.backoff.reset(&self.ctx.options);
                self.buffer.push_back(m);
                Ok(())
            }
            Ok(None) => {
                let e = ApiError::new(ErrorCode::Unavailable, "the stream ended");
                self.stream_broke(&e).await
            }
            Err(status) => {
                let e = ApiError::from_status(&status);
                if is_transient(&e) {
                    self.stream_broke(&e).await
                } else {
                    Err(PartyError::router(e))
                }
            }
        }
    }

    async fn stream_broke(&mut self, error: &ApiError) -> Result<(), PartyError> {
        self.stream = None;
        self.breaks += 1;
        tracing::debug!(
            session_id = %self.session_id,
            party_id = %self.me,
            after_seq = self.after_seq,
            breaks = self.breaks,
            error = %error,
            "message stream broke; resuming"
        );
        if self.breaks >= self.ctx.options.stream_breaks_before_polling {
            tracing::info!(
                session_id = %self.session_id,
                party_id = %self.me,
                "message stream keeps breaking; falling back to polling"
            );
            self.mode = MailboxTransport::Polling;
            self.ctx.progress(&Progress::FellBackToPolling {
                session_id: self.session_id,
                after_seq: self.after_seq,
            });
        } else {
            self.ctx.progress(&Progress::StreamResumed {
                session_id: self.session_id,
                after_seq: self.after_seq,
            });
        }
        self.backoff.wait().await;
        Ok(())
    }

    async fn fill_from_poll(&mut self) -> Result<(), PartyError> {
        let wait = self.ctx.options.poll_wait;
        match self
            .ctx
            .router
            .fetch(self.mailbox(), self.after_seq, 100, wait)
            .await
        {
            Ok(page) => {
                self.backoff.reset(&self.ctx.options);
                self.buffer.extend(page.messages);
                Ok(())
            }
            Err(e) if is_transient(&e) => {
                tracing::debug!(session_id = %self.session_id, party_id = %self.me, error = %e, "fetch failed; retrying");
                self.backoff.wait().await;
                Ok(())
            }
            Err(e) => Err(PartyError::router(e)),
        }
    }
}

/// Routes one envelope, retrying the same envelope while the failure looks transient.
pub(crate) async fn send(
    router: &RouterClient,
    token: &str,
    envelope: MpcMessage,
    options: &DriverOptions,
) -> Result<(), PartyError> {
    let mut backoff = Backoff::new(options);
    loop {
        match router.route_message(token, envelope.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if is_transient(&e) => {
                tracing::debug!(
                    message_id = %envelope.message_id,
                    round = envelope.round,
                    error = %e,
                    "route failed; retrying the same envelope"
                );
                backoff.wait().await;
            }
            Err(e) => return Err(PartyError::router(e)),
        }
    }
}

/// Follows the session at the coordinator in the background.
pub(crate) struct Watcher {
    latest: watch::Receiver<Option<pb::SessionInfo>>,
    task: JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn status_of(info: &pb::SessionInfo) -> Option<SessionStatus> {
    match pb::SessionStatus::try_from(info.status).ok()? {
        pb::SessionStatus::Created => Some(SessionStatus::Created),
        pb::SessionStatus::Waiting => Some(SessionStatus::Waiting),
        pb::SessionStatus::InProgress => Some(SessionStatus::InProgress),
        pb::SessionStatus::Completed => Some(SessionStatus::Completed),
        pb::SessionStatus::Failed => Some(SessionStatus::Failed),
        pb::SessionStatus::Expired => Some(SessionStatus::Expired),
        pb::SessionStatus::Unspecified => None,
    }
}

impl Watcher {
    pub(crate) fn spawn(
        coordinator: CoordinatorClient,
        session_id: SessionId,
        token: String,
        options: DriverOptions,
    ) -> Self {
        let (tx, latest) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut backoff = Backoff::new(&options);
            loop {
                match coordinator.watch_session(session_id, Some(&token)).await {
                    Ok(mut stream) => {
                        while let Ok(Some(info)) = stream.message().await {
                            backoff.reset(&options);
                            let terminal = status_of(&info).is_some_and(|s| s.is_terminal());
                            tx.send_replace(Some(info));
                            if terminal {
                                return;
                            }
                        }
                    }
                    Err(e) if is_transient(&e) => {}
                    // The token expired or the session is gone: the driver's own deadline and
                    // calls take it from here.
                    Err(e) => {
                        tracing::debug!(session_id = %session_id, error = %e, "cannot watch the session");
                        return;
                    }
                }
                backoff.wait().await;
            }
        });
        Self { latest, task }
    }

    /// The last state seen.
    pub(crate) fn latest(&self) -> Option<pb::SessionInfo> {
        self.latest.borrow().clone()
    }

    /// Waits until the session's state satisfies `pred`; `None` if the watcher stopped first.
    pub(crate) async fn until(
        &mut self,
        pred: impl Fn(&pb::SessionInfo) -> bool,
    ) -> Option<pb::SessionInfo> {
        self.latest
            .wait_for(|info| info.as_ref().is_some_and(&pred))
            .await
            .ok()
            .and_then(|info| info.clone())
    }

    /// Resolves when the session failed or expired (never, if that does not happen).
    pub(crate) async fn ended(&mut self) -> PartyError {
        let ended = self
            .until(|info| {
                matches!(
                    status_of(info),
                    Some(SessionStatus::Failed | SessionStatus::Expired)
                )
            })
            .await;
        match ended {
            Some(info) => PartyError::SessionEnded {
                status: status_of(&info).unwrap_or(SessionStatus::Failed),
                reason: info.failure_reason,
            },
            None => std::future::pending().await,
        }
    }
}
