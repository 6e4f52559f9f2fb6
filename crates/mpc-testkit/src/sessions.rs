//! Creating sessions, following them to their end, checking signatures independently, and the
//! committed test key.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use k256::ecdsa::{RecoveryId, VerifyingKey};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{PartyId, SessionId, SessionType, Threshold};
use mpc_protocol::seal::{self, SealContext};
use mpc_protocol::{KeyShare, MessageHash};
use mpc_store::party::{NewShare, SessionOutcome};

use crate::cluster::{Cluster, DEADLINE};

/// A participant running as a server party (it joins from `session.created`).
pub fn server(party: &PartyId, index: Option<u16>) -> pb::ParticipantSpec {
    participant(party, "server", index)
}

pub fn participant(party: &PartyId, device_type: &str, index: Option<u16>) -> pb::ParticipantSpec {
    pb::ParticipantSpec {
        party_id: party.to_string(),
        device_type: device_type.into(),
        party_index: index.map(u32::from),
    }
}

/// A `t`-of-`participants.len()` keygen.
pub fn keygen_request(
    participants: Vec<pb::ParticipantSpec>,
    t: u16,
    key_id: &str,
) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        session_type: pb::SessionType::Keygen.into(),
        threshold_t: u32::from(t),
        threshold_n: participants.len() as u32,
        participants,
        key_id: key_id.into(),
        ..Default::default()
    }
}

/// A sign of `hash` by `participants` (with their indices) with a `threshold` key.
pub fn sign_request(
    participants: Vec<pb::ParticipantSpec>,
    threshold: Threshold,
    key_id: &str,
    public_key: &[u8],
    hash: &MessageHash,
) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        session_type: pb::SessionType::Sign.into(),
        threshold_t: u32::from(threshold.t),
        threshold_n: u32::from(threshold.n),
        participants,
        key_id: key_id.into(),
        message_hash: hash.as_bytes().to_vec(),
        public_key: public_key.to_vec(),
        ..Default::default()
    }
}

/// A refresh by all `participants` (with their indices).
pub fn refresh_request(
    participants: Vec<pb::ParticipantSpec>,
    threshold: Threshold,
    key_id: &str,
    public_key: &[u8],
) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        session_type: pb::SessionType::Refresh.into(),
        threshold_t: u32::from(threshold.t),
        threshold_n: u32::from(threshold.n),
        participants,
        key_id: key_id.into(),
        public_key: public_key.to_vec(),
        ..Default::default()
    }
}

/// A recovery of `target`'s share by `helpers`; `participants` are all `n` parties.
pub fn recovery_request(
    participants: Vec<pb::ParticipantSpec>,
    threshold: Threshold,
    key_id: &str,
    public_key: &[u8],
    target: &PartyId,
    helpers: &[PartyId],
) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        session_type: pb::SessionType::Recovery.into(),
        threshold_t: u32::from(threshold.t),
        threshold_n: u32::from(threshold.n),
        participants,
        key_id: key_id.into(),
        public_key: public_key.to_vec(),
        recovery: Some(pb::RecoverySpec {
            target_party_id: target.to_string(),
            helper_party_ids: helpers.iter().map(PartyId::to_string).collect(),
        }),
        ..Default::default()
    }
}

pub fn status(info: &pb::SessionInfo) -> pb::SessionStatus {
    pb::SessionStatus::try_from(info.status).unwrap_or(pb::SessionStatus::Unspecified)
}

fn terminal(info: &pb::SessionInfo) -> bool {
    matches!(
        status(info),
        pb::SessionStatus::Completed | pb::SessionStatus::Failed | pb::SessionStatus::Expired
    )
}

/// A random 32-byte hash to sign.
pub fn random_hash() -> MessageHash {
    let mut h = [0u8; 32];
    getrandom::fill(&mut h).unwrap_or_else(|e| panic!("random: {e}"));
    MessageHash::new(h)
}

impl Cluster {
    /// `CreateSession` with the service token.
    pub async fn create_session(
        &self,
        request: pb::CreateSessionRequest,
    ) -> pb::CreateSessionResponse {
        self.admin()
            .create_session(request)
            .await
            .unwrap_or_else(|e| panic!("CreateSession: {e}"))
    }

    /// Follows the session (WatchSession with the service token) until it completes, fails or
    /// expires.
    pub async fn wait_for_end(&self, session_id: &str) -> pb::SessionInfo {
        let id = SessionId::parse(session_id).unwrap_or_else(|e| panic!("{e}"));
        let admin = self.admin();
        tokio::time::timeout(DEADLINE, async {
            loop {
                // A watch ends after a terminal state; re-open it if it breaks before.
                if let Ok(mut stream) = admin.watch_session(id, None).await {
                    while let Ok(Some(info)) = stream.message().await {
                        if terminal(&info) {
                            return info;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("session {session_id} did not end"))
    }

    /// Waits until `pred` holds for the session's state.
    pub async fn wait_for_session(
        &self,
        session_id: &str,
        what: &str,
        pred: impl Fn(&pb::SessionInfo) -> bool,
    ) -> pb::SessionInfo {
        let id = SessionId::parse(session_id).unwrap_or_else(|e| panic!("{e}"));
        let admin = self.admin();
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Ok(mut stream) = admin.watch_session(id, None).await {
                    while let Ok(Some(info)) = stream.message().await {
                        if pred(&info) {
                            return info;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("session {session_id}: timed out waiting for {what}"))
    }

    /// Creates a session and waits for its end.
    pub async fn run_session(&self, request: pb::CreateSessionRequest) -> pb::SessionInfo {
        let created = self.create_session(request).await;
        self.wait_for_end(&created.session_id).await
    }

    /// Stores `share` as server party `i`'s active share of `key_id`, sealed with its master
    /// key, as if a keygen had made it (to test signing without paying for a keygen).
    pub async fn import_share(&self, i: usize, key_id: &str, share: &KeyShare) {
        let party = self.party(i);
        let index = share.index().get();
        let ctx = SealContext {
            key_id,
            party_id: party.party_id.as_str(),
            party_index: index,
        };
        let sealed = seal::seal_share(&party.master_key, &ctx, share)
            .unwrap_or_else(|e| panic!("sealing: {e}"));
        let store = self.party_store(i).await;
        let session = SessionId::new_random();
        let parameters = share.parameters();
        store
            .put_pending_share(&NewShare {
                id: uuid::Uuid::new_v4(),
                key_id: key_id.into(),
                party_id: party.party_id.clone(),
                party_index: index,
                threshold: Threshold {
                    t: parameters.threshold(),
                    n: parameters.parties(),
                },
                public_key: share.public_key().to_hex(),
                session_id: session,
                sealed_share: sealed,
                kek_id: party.master_key.id().into(),
                created_at: Utc::now(),
            })
            .await
            .unwrap_or_else(|e| panic!("storing: {e}"));
        store
            .record_outcome(
                session,
                SessionType::Keygen,
                key_id,
                SessionOutcome::Completed,
                Utc::now(),
            )
            .await
            .unwrap_or_else(|e| panic!("activating: {e}"));
    }
}

/// The committed 2-of-3 test key of `mpc-protocol` (shares at indices 0, 1, 2).
pub fn fixture_shares() -> Vec<Arc<KeyShare>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../mpc-protocol/tests/fixtures");
    (0..3)
        .map(|i| {
            let bytes = std::fs::read(dir.join(format!("share_v1_2of3_p{i}.bin")))
                .unwrap_or_else(|e| panic!("fixture share {i}: {e}"));
            Arc::new(
                KeyShare::from_bytes(&bytes).unwrap_or_else(|e| panic!("fixture share {i}: {e}")),
            )
        })
        .collect()
}

/// The independent check (k256, not our engine): the signature verifies for `public_key`, `s`
/// is low, `ecrecover(hash, r, s, v)` returns the key, and the DER form is the same signature.
pub fn assert_valid_signature(public_key: &[u8], hash: &[u8], sig: &pb::Signature) {
    let vk = VerifyingKey::from_sec1_bytes(public_key).unwrap_or_else(|e| panic!("group key: {e}"));
    let r: [u8; 32] = sig
        .r
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("r is not 32 bytes"));
    let s: [u8; 32] = sig
        .s
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("s is not 32 bytes"));
    let k = k256::ecdsa::Signature::from_scalars(r, s).unwrap_or_else(|e| panic!("r, s: {e}"));
    assert_eq!(k.normalize_s(), k, "signature must be low-s");
    vk.verify_prehash(hash, &k)
        .unwrap_or_else(|e| panic!("k256 rejects the signature: {e}"));
    let v = u8::try_from(sig.v).unwrap_or(u8::MAX);
    let recovered = VerifyingKey::recover_from_prehash(
        hash,
        &k,
        RecoveryId::from_byte(v).unwrap_or_else(|| panic!("v = {} is not 0 or 1", sig.v)),
    )
    .unwrap_or_else(|e| panic!("ecrecover: {e}"));
    assert_eq!(
        recovered, vk,
        "ecrecover(hash, r, s, v) must return the group key"
    );
    if !sig.der.is_empty() {
        assert_eq!(
            k256::ecdsa::Signature::from_der(&sig.der).unwrap_or_else(|e| panic!("DER: {e}")),
            k,
            "the DER form is the same signature"
        );
    }
}
