//! The party driver: what every party of a session runs, whoever it is (a server party, the
//! Server Party API joining for a device, a Rust client holding a join token).
//!
//! [`run_session`] takes a join token through the whole session:
//! 1. verify the token (session, party, index, type, deadline);
//! 2. make session keys signed by the party's identity key and `JoinSession` with them;
//! 3. wait on `WatchSession` until everyone joined, then `GetRoster`;
//! 4. check every participant's identity key against the [`TrustPolicy`] — a violation fails the
//!    session before any message is sent, naming the party;
//! 5. establish the end-to-end channel and run the engine for the session type, relaying its
//!    sealed messages through the router (stream with resume, falling back to polling);
//! 6. hand the output to the caller ([`SessionHooks::keep`]: store the share as pending) and only
//!    then `ReportCompletion`; or `ReportFailure` with a reason in the guide's style and the
//!    blamed party.
//!
//! The steps are also available one by one ([`join`] → [`JoinedSession::wait_for_start`] →
//! [`StartedSession::run`] → [`FinishedSession::report`]); every step reports a failure itself.
//! The session's deadline is the token's expiry less [`DriverOptions::report_margin`], so that a
//! timeout is reported (naming whom the party waited for) before the coordinator expires the
//! session. Heavy engine rounds run on `spawn_blocking`, never on the async runtime.

mod engine;
mod error;
mod roster;
mod session;
mod transport;
mod trust;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{PartyId, TokenVerifier};
use mpc_protocol::{IdentityKey, KeyShare, MessageHash, Signature};
use tokio_util::sync::CancellationToken;

pub use error::{PartyError, Service};
pub use roster::{RecoveryRoles, Roster, RosterParty};
pub use session::{FinishedSession, JoinedSession, StartedSession, join, wait_until_ended};
pub use trust::{TrustPolicy, TrustViolation};

use crate::clients::{CoordinatorClient, RouterClient};

/// How the party reads its mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MailboxTransport {
    /// `SubscribeMessages`, resumed when it breaks, polling after repeated breaks.
    #[default]
    Stream,
    /// `FetchMessages` long-polling only (clients behind proxies that break streams).
    Polling,
}

/// Tuning of the driver. The defaults suit production.
#[derive(Clone, Copy, Debug)]
pub struct DriverOptions {
    pub transport: MailboxTransport,
    /// How long one `FetchMessages` waits for an envelope.
    pub poll_wait: Duration,
    /// Stream breaks in a row (without an envelope between them) before switching to polling.
    pub stream_breaks_before_polling: u32,
    /// First and largest pause between retries of a failed call.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// The party gives up this long before the token expires, so that its failure report (with
    /// whom it waited for) reaches the coordinator before the coordinator expires the session.
    pub report_margin: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            transport: MailboxTransport::Stream,
            poll_wait: Duration::from_secs(10),
            stream_breaks_before_polling: 3,
            retry_first: Duration::from_millis(100),
            retry_max: Duration::from_secs(2),
            report_margin: Duration::from_secs(2),
        }
    }
}

/// What the driver tells a progress hook (for progress output and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Joined {
        session_id: mpc_proto::SessionId,
        party_index: u16,
    },
    Started {
        session_id: mpc_proto::SessionId,
        parties: usize,
    },
    Sent {
        session_id: mpc_proto::SessionId,
        to: PartyId,
        round: u32,
    },
    Received {
        session_id: mpc_proto::SessionId,
        from: PartyId,
        round: u32,
        seq: u64,
    },
    /// The stream broke and is re-opened after `after_seq`.
    StreamResumed {
        session_id: mpc_proto::SessionId,
        after_seq: u64,
    },
    /// The stream broke too often: polling from `after_seq` on.
    FellBackToPolling {
        session_id: mpc_proto::SessionId,
        after_seq: u64,
    },
    /// The engine produced its output.
    Computed {
        session_id: mpc_proto::SessionId,
    },
    Reported {
        session_id: mpc_proto::SessionId,
    },
}

/// A callback for [`Progress`]; it runs on the driver's task, so it must be quick.
pub type ProgressHook = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Everything a party needs to take part in sessions. Shared by all its sessions.
#[derive(Clone)]
pub struct PartyContext {
    /// The party's long-term Ed25519 identity key (pinned by the others).
    pub identity: Arc<IdentityKey>,
    pub coordinator: CoordinatorClient,
    pub router: RouterClient,
    /// Verifies join tokens (the coordinator's public key).
    pub token_verifier: TokenVerifier,
    pub trust: TrustPolicy,
    pub options: DriverOptions,
    /// Cancelled when the party shuts down: running sessions report a failure and end.
    pub cancel: CancellationToken,
    pub progress: Option<ProgressHook>,
    /// CPU for the engine's steps, oldest session first ([`ComputePool::shared`] unless a
    /// test wants its own).
    pub compute: crate::compute::ComputePool,
    /// The registered process running this party's protocol (named in every join), or `None`
    /// for a party outside the registry.
    pub host: Option<crate::HostInstance>,
}

impl fmt::Debug for PartyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartyContext")
            .field("identity", &self.identity.public_key())
            .field("trust", &self.trust)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl PartyContext {
    pub(crate) fn progress(&self, p: &Progress) {
        if let Some(hook) = &self.progress {
            hook(p);
        }
    }
}

/// What to check before signing, besides the share's own public key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignExpectation {
    /// The account whose key must sign.
    pub key_id: Option<String>,
    /// The hash this party was asked to sign.
    pub message_hash: Option<MessageHash>,
}

/// What this party brings to a session.
#[derive(Clone)]
pub enum PartyWork {
    Keygen,
    Sign {
        share: Arc<KeyShare>,
        expected: SignExpectation,
    },
    Refresh {
        share: Arc<KeyShare>,
    },
    /// `share: None` for the new holder of the recovered index (the recovery's target); every
    /// other participant brings its share.
    Recovery {
        share: Option<Arc<KeyShare>>,
    },
}

impl fmt::Debug for PartyWork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl PartyWork {
    fn describe(&self) -> &'static str {
        match self {
            PartyWork::Keygen => "keygen",
            PartyWork::Sign { .. } => "sign",
            PartyWork::Refresh { .. } => "refresh",
            PartyWork::Recovery { .. } => "recovery",
        }
    }
}

/// What a session produced for this party.
#[allow(clippy::large_enum_variant)] // one per session; boxing the share buys nothing
pub enum PartyOutput {
    /// Keygen, refresh, recovery: the party's new share (secret: store it sealed).
    Share(KeyShare),
    Signature(Signature),
}

impl fmt::Debug for PartyOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartyOutput::Share(share) => f.debug_tuple("Share").field(share).finish(),
            PartyOutput::Signature(sig) => f.debug_tuple("Signature").field(sig).finish(),
        }
    }
}

impl PartyOutput {
    fn report(&self) -> pb::report_completion_request::Result {
        match self {
            PartyOutput::Share(share) => {
                pb::report_completion_request::Result::Key(pb::KeyResult {
                    public_key: share.public_key().to_uncompressed().to_vec(),
                })
            }
            PartyOutput::Signature(sig) => {
                pb::report_completion_request::Result::Signature(pb::SignatureResult {
                    r: sig.r.to_vec(),
                    s: sig.s.to_vec(),
                    v: u32::from(sig.v),
                })
            }
        }
    }
}

/// A finished and reported session.
#[derive(Debug)]
pub struct PartyOutcome {
    pub roster: Roster,
    pub output: PartyOutput,
    /// The session as the coordinator answered the report.
    pub session: pb::SessionInfo,
}

/// The caller's part of a session: choosing the work once the roster is known, and keeping the
/// output before it is reported.
#[async_trait]
pub trait SessionHooks: Send {
    /// What to bring, given the roster (e.g. load the share for `roster.key_id`).
    async fn work(&mut self, roster: &Roster) -> Result<PartyWork, PartyError>;

    /// Called with the output before the party reports it: store a share as *pending* here. An
    /// error fails the session instead of reporting.
    async fn keep(&mut self, roster: &Roster, output: &PartyOutput) -> Result<(), PartyError> {
        let _ = (roster, output);
        Ok(())
    }
}

struct FixedWork(Option<PartyWork>);

#[async_trait]
impl SessionHooks for FixedWork {
    async fn work(&mut self, _roster: &Roster) -> Result<PartyWork, PartyError> {
        self.0
            .take()
            .ok_or_else(|| PartyError::Internal("work taken twice".into()))
    }
}

/// Runs a whole session with fixed `work` and reports the result.
pub async fn run_session(
    ctx: &PartyContext,
    join_token: &str,
    work: PartyWork,
) -> Result<PartyOutcome, PartyError> {
    run_session_with(ctx, join_token, &mut FixedWork(Some(work))).await
}

/// Runs a whole session, asking `hooks` for the work and to keep the output before reporting.
pub async fn run_session_with(
    ctx: &PartyContext,
    join_token: &str,
    hooks: &mut (dyn SessionHooks + '_),
) -> Result<PartyOutcome, PartyError> {
    let started = join(ctx, join_token).await?.wait_for_start().await?;
    let work = match hooks.work(started.roster()).await {
        Ok(work) => work,
        Err(e) => return Err(started.fail(e).await),
    };
    let finished = started.run(work).await?;
    if let Err(e) = hooks.keep(finished.roster(), finished.output()).await {
        return Err(finished.fail(e).await);
    }
    finished.report().await
}
