//! The values the account store reads and writes.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use mpc_proto::{AccountId, PartyId, SessionId, SessionType, Threshold};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = StoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!(
                        concat!("unknown ", stringify!($name), " {:?}"), other
                    ))),
                }
            }
        }
    };
}

str_enum!(
    /// `pending` (keygen running) → `active` | `failed`; `active` ⇄ `suspended`.
    AccountStatus {
        Pending => "pending",
        Active => "active",
        Suspended => "suspended",
        Failed => "failed",
    }
);

str_enum!(
    /// Who holds a share (integration guide §2.1).
    ShareType {
        UserDevice => "user_device",
        Server => "server",
        Recovery => "recovery",
    }
);

str_enum!(
    /// A session the Account Service started, as far as the account is concerned.
    AccountSessionStatus {
        Pending => "pending",
        Completed => "completed",
        Failed => "failed",
        Expired => "expired",
    }
);

str_enum!(
    /// What an API key may do: `admin` also manages keys and reads the audit log.
    ApiKeyScope {
        Admin => "admin",
        Operator => "operator",
    }
);

/// A new account, stored as `pending` until its keygen completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    pub id: AccountId,
    pub username: Option<String>,
    pub email: Option<String>,
    pub threshold: Threshold,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    pub id: AccountId,
    pub username: Option<String>,
    pub email: Option<String>,
    /// 65-byte uncompressed SEC1, once the keygen completed.
    pub public_key: Option<Vec<u8>>,
    pub threshold: Threshold,
    pub status: AccountStatus,
    pub keygen_session_id: Option<SessionId>,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where a share lives (never the share itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewShare {
    pub party_id: PartyId,
    pub party_index: u16,
    pub share_type: ShareType,
    pub device_type: Option<String>,
    pub storage_location: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareRecord {
    pub id: uuid::Uuid,
    pub account_id: AccountId,
    pub share_type: ShareType,
    pub party_id: PartyId,
    pub party_index: u16,
    pub device_type: Option<String>,
    pub storage_location: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    /// The keygen or recovery session that created the share.
    pub session_id: Option<SessionId>,
}

/// Recovery: who lost their share and who gets it rebuilt at the same index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryPlan {
    pub lost_party_id: PartyId,
    pub new_party_id: PartyId,
    pub new_device_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccountSession {
    pub session_id: SessionId,
    pub account_id: AccountId,
    pub session_type: SessionType,
    pub recovery: Option<RecoveryPlan>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSessionRecord {
    pub session_id: SessionId,
    pub account_id: AccountId,
    pub session_type: SessionType,
    pub status: AccountSessionStatus,
    pub recovery: Option<RecoveryPlan>,
    pub failure_reason: Option<String>,
    pub blamed_party: Option<PartyId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How a session ended, with what the account needs from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOutcome {
    /// Keygen: the group key and one share row per party.
    KeygenCompleted {
        public_key: Vec<u8>,
        shares: Vec<NewShare>,
    },
    /// Recovery: the rebuilt share (at the lost party's index).
    RecoveryCompleted {
        new_share: NewShare,
    },
    /// Sign and refresh: nothing changes on the account.
    Completed,
    Failed {
        reason: String,
        blamed_party: Option<PartyId>,
    },
    Expired {
        reason: String,
    },
}

impl SessionOutcome {
    pub fn status(&self) -> AccountSessionStatus {
        match self {
            Self::KeygenCompleted { .. } | Self::RecoveryCompleted { .. } | Self::Completed => {
                AccountSessionStatus::Completed
            }
            Self::Failed { .. } => AccountSessionStatus::Failed,
            Self::Expired { .. } => AccountSessionStatus::Expired,
        }
    }
}

/// An API key to store: only its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub id: uuid::Uuid,
    pub name: String,
    pub key_hash: [u8; 32],
    pub prefix: String,
    pub scope: ApiKeyScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: uuid::Uuid,
    pub name: String,
    pub key_hash: [u8; 32],
    pub prefix: String,
    pub scope: ApiKeyScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// One Idempotency-Key of one caller on one route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The caller's API key id (or `bootstrap`).
    pub api_key_id: String,
    pub route: String,
    pub key: String,
}

/// What [`super::AccountStore::claim_idempotency_key`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is ours: run the request, then complete or release the key.
    Claimed,
    /// A request with this key finished before.
    Completed {
        request_hash: [u8; 32],
        status: u16,
        body: String,
    },
    /// A request with this key is still running.
    InProgress { request_hash: [u8; 32] },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub session_id: Option<SessionId>,
    pub account_id: Option<AccountId>,
    pub operation: String,
    /// The caller: its API key id (or `bootstrap`).
    pub user_id: Option<String>,
    pub ip_address: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    /// Already redacted.
    pub request_body: Option<serde_json::Value>,
    pub response_status: Option<u16>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub session_id: Option<SessionId>,
    pub account_id: Option<AccountId>,
    pub operation: String,
    pub user_id: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_body: Option<serde_json::Value>,
    pub response_status: Option<u16>,
    pub created_at: DateTime<Utc>,
}

/// Which audit entries to return; every field narrows the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub status_min: Option<u16>,
    pub status_max: Option<u16>,
    pub operation: Option<String>,
    pub session_id: Option<SessionId>,
    pub account_id: Option<AccountId>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only entries with a smaller id (the next page of a newest-first listing).
    pub before_id: Option<i64>,
    pub limit: u32,
}
