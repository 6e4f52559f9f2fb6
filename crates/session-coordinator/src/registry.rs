//! The party registry (DESIGN.md "Capacity and fairness"): server parties and the Server Party
//! API announce themselves at start and then every heartbeat interval; a session that names a
//! server party is refused at once when that party is unknown (400 `unknown_party`) or not live
//! (503 `party_unavailable` with `Retry-After`), instead of waiting out its lifetime.
//!
//! A participant is a server party when it is declared one (`device_type: server`) or when its
//! id is a registered server party's. A registered server party's id can therefore not be used
//! for a device participant either: the session would fail only at run time ("not trusted").
//!
//! Reads are served from a snapshot at most [`CACHE_TTL`] old, so checking a session costs no
//! database statement on the hot path; a replica sees another replica's announcements within
//! that time.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ErrorCode, PartyId};
use mpc_store::registry::{Announcement, PartyKind, RegisteredParty, RegistryStore};
use tokio::time::Instant;

/// How stale the in-memory snapshot of the registry may be.
const CACHE_TTL: Duration = Duration::from_secs(1);
const MAX_VERSION_LEN: usize = 64;
/// The longest instance id a party may announce (ours are 36-character UUIDs).
pub const MAX_INSTANCE_LEN: usize = 64;

/// What an accepted announcement tells the coordinator.
pub struct Announced {
    pub response: pb::AnnouncePartyResponse,
    pub party_id: PartyId,
    pub kind: PartyKind,
    /// The instance announced, when it is not the one this coordinator saw last: the party
    /// (re)started, and sessions of its earlier instances died with them.
    pub new_instance: Option<String>,
}

/// How the registry behaves.
#[derive(Clone, Copy, Debug)]
pub struct RegistryConfig {
    /// Refuse sessions naming unknown or dead server parties. Off only for deployments (and
    /// tests) whose parties do not announce themselves.
    pub enforce: bool,
    /// How often parties are asked to announce themselves.
    pub heartbeat_interval: Duration,
    /// A party not heard from for this long is not live (a few heartbeats).
    pub liveness_timeout: Duration,
    /// An announcement dated further than this from the coordinator's clock is refused, so an
    /// old one cannot be replayed to make a dead party look alive.
    pub max_clock_skew: Duration,
    /// Fail the sessions of a registered host silent for the liveness timeout
    /// (`MPC_REGISTRY_FAIL_SILENT_HOSTS`). Off by default: a host starved of CPU under a burst
    /// can miss heartbeats while it is still computing, and failing its sessions then would be
    /// wrong. A restarted host (a new instance) always has its old sessions failed.
    pub fail_silent_hosts: bool,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            enforce: true,
            heartbeat_interval: Duration::from_secs(5),
            liveness_timeout: Duration::from_secs(15),
            max_clock_skew: Duration::from_secs(60),
            fail_silent_hosts: false,
        }
    }
}

/// A participant as the registry sees it.
pub struct Named<'a> {
    pub party_id: &'a PartyId,
    pub device_type: Option<&'a str>,
}

/// A registered party and whether it is live now.
#[derive(Clone, Debug)]
pub struct PartyStatus {
    pub party: RegisteredParty,
    pub live: bool,
}

struct Snapshot {
    read_at: Instant,
    parties: Arc<Vec<RegisteredParty>>,
}

pub struct Registry {
    store: Arc<dyn RegistryStore>,
    config: RegistryConfig,
    snapshot: Mutex<Option<Snapshot>>,
}

fn kind_from_pb(kind: i32) -> Result<PartyKind, ApiError> {
    match pb::PartyKind::try_from(kind) {
        Ok(pb::PartyKind::Server) => Ok(PartyKind::Server),
        Ok(pb::PartyKind::PartyApi) => Ok(PartyKind::PartyApi),
        _ => Err(ApiError::invalid_argument(
            "kind must be PARTY_KIND_SERVER or PARTY_KIND_PARTY_API",
        )),
    }
}

pub fn kind_to_pb(kind: PartyKind) -> pb::PartyKind {
    match kind {
        PartyKind::Server => pb::PartyKind::Server,
        PartyKind::PartyApi => pb::PartyKind::PartyApi,
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Registry {
    pub fn new(store: Arc<dyn RegistryStore>, config: RegistryConfig) -> Self {
        Self {
            store,
            config,
            snapshot: Mutex::new(None),
        }
    }

    pub fn config(&self) -> RegistryConfig {
        self.config
    }

    /// Records a signed announcement.
    pub async fn announce(
        &self,
        req: &pb::AnnouncePartyRequest,
        now: DateTime<Utc>,
    ) -> Result<Announced, ApiError> {
        let party_id = PartyId::parse(&req.party_id)?;
        if req.instance_id.len() > MAX_INSTANCE_LEN {
            return Err(ApiError::invalid_argument(format!(
                "instance_id: at most {MAX_INSTANCE_LEN} bytes"
            )));
        }
        let kind = kind_from_pb(req.kind)?;
        let key: [u8; 32] = req.identity_public_key.as_slice().try_into().map_err(|_| {
            ApiError::invalid_argument("identity_public_key must be 32 bytes (Ed25519)")
        })?;
        if req.version.len() > MAX_VERSION_LEN {
            return Err(ApiError::invalid_argument(format!(
                "version: at most {MAX_VERSION_LEN} bytes"
            )));
        }
        let at = DateTime::from_timestamp_millis(req.announced_at_ms)
            .ok_or_else(|| ApiError::invalid_argument("announced_at_ms is out of range"))?;
        let skew = TimeDelta::from_std(self.config.max_clock_skew).unwrap_or(TimeDelta::MAX);
        if (at - now).abs() > skew {
            return Err(ApiError::invalid_argument(format!(
                "the announcement is dated {at}, more than {} s from the coordinator's clock ({now}): check the clocks",
                self.config.max_clock_skew.as_secs()
            )));
        }
        let kind_byte = u8::try_from(req.kind).unwrap_or(0);
        let message = mpc_proto::registry::announcement_message(
            &req.party_id,
            kind_byte,
            &key,
            req.announced_at_ms,
            &req.instance_id,
        );
        mpc_proto::registry::verify_announcement(&key, &message, &req.signature)?;
        let previous = self
            .parties()
            .await
            .ok()
            .and_then(|all| all.iter().find(|p| p.party_id == party_id).cloned());
        self.store
            .announce(&Announcement {
                party_id: party_id.clone(),
                kind,
                identity_public_key: key,
                version: req.version.clone(),
                active_sessions: req.active_sessions,
                // The coordinator's clock decides liveness, not the party's.
                at: now,
                instance_id: req.instance_id.clone(),
            })
            .await?;
        let new_instance = (!req.instance_id.is_empty()
            && previous
                .as_ref()
                .is_none_or(|p| p.instance_id != req.instance_id))
        .then(|| req.instance_id.clone());
        match previous {
            None => {
                tracing::info!(party_id = %party_id, %kind, version = %req.version, "party registered")
            }
            Some(p) if p.identity_public_key != key => tracing::warn!(
                party_id = %party_id,
                "party announced a new identity key"
            ),
            Some(_) => tracing::debug!(party_id = %party_id, "heartbeat"),
        }
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(Announced {
            response: pb::AnnouncePartyResponse {
                heartbeat_interval_ms: millis(self.config.heartbeat_interval),
                liveness_timeout_ms: millis(self.config.liveness_timeout),
            },
            party_id,
            kind,
            new_instance,
        })
    }

    /// Every registered party (a snapshot at most [`CACHE_TTL`] old).
    pub async fn parties(&self) -> Result<Arc<Vec<RegisteredParty>>, ApiError> {
        {
            let snapshot = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = snapshot.as_ref()
                && s.read_at.elapsed() < CACHE_TTL
            {
                return Ok(s.parties.clone());
            }
        }
        let parties = Arc::new(self.store.list().await?);
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Snapshot {
            read_at: Instant::now(),
            parties: parties.clone(),
        });
        Ok(parties)
    }

    pub fn is_live(&self, party: &RegisteredParty, now: DateTime<Utc>) -> bool {
        let timeout = TimeDelta::from_std(self.config.liveness_timeout).unwrap_or(TimeDelta::MAX);
        now - party.last_seen <= timeout
    }

    /// Every registered party with its liveness now.
    pub async fn statuses(&self, now: DateTime<Utc>) -> Result<Vec<PartyStatus>, ApiError> {
        Ok(self
            .parties()
            .await?
            .iter()
            .map(|p| PartyStatus {
                live: self.is_live(p, now),
                party: p.clone(),
            })
            .collect())
    }

    /// Which participants are server parties (declared, or registered under their id), in
    /// order; refuses a session that names a server party which is unknown or not live, or a
    /// device participant under a server party's id. With `enforce` off, only the declaration
    /// counts and nothing is refused.
    pub async fn check_participants(
        &self,
        participants: &[Named<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, ApiError> {
        let declared = |n: &Named<'_>| n.device_type.is_some_and(mpc_proto::is_server_device_type);
        if !self.config.enforce {
            return Ok(participants.iter().map(declared).collect());
        }
        let parties = self.parties().await?;
        let servers = || parties.iter().filter(|p| p.kind == PartyKind::Server);
        let mut out = Vec::with_capacity(participants.len());
        for named in participants {
            let declared_server = declared(named);
            let registered = servers().find(|p| &p.party_id == named.party_id);
            out.push(declared_server || registered.is_some());
            match (declared_server, registered) {
                (true, None) => {
                    return Err(ApiError::new(
                        ErrorCode::UnknownParty,
                        format!(
                            "unknown party: {} is declared a server party (device_type server), but no server party with that id is registered with the coordinator",
                            named.party_id
                        ),
                    ));
                }
                (false, Some(_)) if named.device_type.is_some() => {
                    return Err(ApiError::invalid_argument(format!(
                        "party {} is a registered server party: it cannot take part as a device (device_type {})",
                        named.party_id,
                        named.device_type.unwrap_or_default()
                    )));
                }
                (_, Some(p)) if !self.is_live(p, now) => {
                    let retry = self.config.heartbeat_interval.as_secs().max(1);
                    return Err(ApiError::new(
                        ErrorCode::PartyUnavailable,
                        format!(
                            "party unavailable: server party {} has not been heard from since {} (it is not running, or cannot reach the coordinator)",
                            named.party_id,
                            p.last_seen.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    )
                    .with_retry_after(u32::try_from(retry).unwrap_or(u32::MAX)));
                }
                _ => {}
            }
        }
        Ok(out)
    }
}
