//! Announcing a party to the coordinator's registry: once at start, then at the heartbeat
//! interval the coordinator asks for, until shutdown. A party the coordinator has not heard
//! from within its liveness timeout is refused in new sessions (503 `party_unavailable`), so
//! the announcer keeps trying through coordinator outages, with a short pause between tries.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mpc_proto::PartyId;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_protocol::IdentityKey;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clients::CoordinatorClient;

/// Until the coordinator says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Between failed tries.
const RETRY: Duration = Duration::from_secs(1);

/// What a party announces about itself.
pub struct Announcer {
    pub coordinator: CoordinatorClient,
    pub identity: Arc<IdentityKey>,
    pub kind: pb::PartyKind,
    pub version: String,
    /// Sessions the party is in right now.
    pub active_sessions: Arc<dyn Fn() -> u32 + Send + Sync>,
    /// This process's instance ([`HostInstance::fresh`] at start): what the party's joins name
    /// as their host, so the coordinator can tell a restart from a heartbeat.
    pub instance: HostInstance,
}

/// The process that runs a participant's protocol, as the registry knows it: sent with every
/// join (`JoinSessionRequest.host`) and every announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInstance {
    pub party_id: PartyId,
    pub instance_id: String,
}

impl HostInstance {
    /// A new instance id for a process that just started (a random UUID).
    pub fn fresh(party_id: PartyId) -> Self {
        Self {
            party_id,
            instance_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    pub fn to_pb(&self) -> pb::HostInstance {
        pb::HostInstance {
            party_id: self.party_id.to_string(),
            instance_id: self.instance_id.clone(),
        }
    }
}

/// Whether the first announcement has been accepted.
#[derive(Clone)]
pub struct Registered(watch::Receiver<bool>);

impl Registered {
    pub fn is_registered(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the coordinator accepted an announcement (or the announcer stopped).
    pub async fn wait(&mut self) -> bool {
        self.0.wait_for(|r| *r).await.is_ok()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Announcer {
    /// The signed announcement for now.
    pub fn announcement(&self) -> pb::AnnouncePartyRequest {
        let key = *self.identity.public_key().as_bytes();
        let at = now_ms();
        let kind = i32::from(self.kind);
        let message = mpc_proto::registry::announcement_message(
            self.instance.party_id.as_str(),
            u8::try_from(kind).unwrap_or(0),
            &key,
            at,
            &self.instance.instance_id,
        );
        let signature = self
            .identity
            .sign_statement(mpc_proto::registry::ANNOUNCEMENT_CONTEXT, &message);
        pb::AnnouncePartyRequest {
            party_id: self.instance.party_id.to_string(),
            kind,
            identity_public_key: key.to_vec(),
            version: self.version.clone(),
            active_sessions: (self.active_sessions)(),
            announced_at_ms: at,
            signature: signature.to_vec(),
            instance_id: self.instance.instance_id.clone(),
        }
    }

    /// Announces until `stop`; the receiver turns true at the first accepted announcement.
    pub fn spawn(self, stop: CancellationToken) -> (Registered, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut interval = DEFAULT_INTERVAL;
            let mut failing = false;
            loop {
                let pause = match self.coordinator.announce_party(self.announcement()).await {
                    Ok(response) => {
                        if failing || !*tx.borrow() {
                            tracing::info!(party_id = %self.instance.party_id, "announced to the coordinator's party registry");
                        }
                        failing = false;
                        tx.send_replace(true);
                        if response.heartbeat_interval_ms > 0 {
                            interval =
                                Duration::from_millis(u64::from(response.heartbeat_interval_ms));
                        }
                        interval
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(party_id = %self.instance.party_id, error = %e, "cannot announce to the coordinator; retrying");
                        }
                        failing = true;
                        RETRY.min(interval)
                    }
                };
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        });
        (Registered(rx), task)
    }
}
