//! Helpers shared by the server-party integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{PartyId, Threshold};
use mpc_store::party::{ShareRecord, ShareStatus};
use mpc_testkit::{Cluster, DEADLINE, http};

pub const T2N3: Threshold = Threshold { t: 2, n: 3 };

/// `server_party_1..n` as keygen participants (indices in order).
pub fn servers(cluster: &Cluster) -> Vec<pb::ParticipantSpec> {
    (0..cluster.parties().len())
        .map(|i| mpc_testkit::server(&cluster.party_id(i), None))
        .collect()
}

/// Server parties `which` (0-based) at their own index, for sign/refresh/recovery.
pub fn at_index(cluster: &Cluster, which: &[usize]) -> Vec<pb::ParticipantSpec> {
    which
        .iter()
        .map(|i| mpc_testkit::server(&cluster.party_id(*i), Some(*i as u16)))
        .collect()
}

pub fn assert_completed(info: &pb::SessionInfo) {
    assert_eq!(
        mpc_testkit::status(info),
        pb::SessionStatus::Completed,
        "session failed: {} (blamed: {:?})",
        info.failure_reason,
        info.blamed_party_id
    );
}

/// Keygen 2-of-3 (or t-of-all) among all server parties; returns the group key.
pub async fn keygen(cluster: &Cluster, t: u16, key_id: &str) -> Vec<u8> {
    let info = cluster
        .run_session(mpc_testkit::keygen_request(servers(cluster), t, key_id))
        .await;
    assert_completed(&info);
    assert_eq!(info.public_key.len(), 65);
    info.public_key
}

/// Signs a random hash with the server parties `which` and checks it with k256.
pub async fn sign(
    cluster: &Cluster,
    which: &[usize],
    threshold: Threshold,
    key_id: &str,
    pk: &[u8],
) {
    let hash = mpc_testkit::random_hash();
    let info = cluster
        .run_session(mpc_testkit::sign_request(
            at_index(cluster, which),
            threshold,
            key_id,
            pk,
            &hash,
        ))
        .await;
    assert_completed(&info);
    let sig = info
        .signature
        .as_ref()
        .expect("a completed sign has a signature");
    mpc_testkit::assert_valid_signature(pk, hash.as_bytes(), sig);
}

/// Every share of `key_id` in server party `i`'s store.
pub async fn shares(cluster: &Cluster, i: usize, key_id: &str) -> Vec<ShareRecord> {
    cluster.party_store(i).await.shares(key_id).await.unwrap()
}

/// Waits until server party `i`'s store has an active share of `key_id` from `session`
/// (activation follows the `session.completed` event, shortly after the session completes).
pub async fn wait_active(cluster: &Cluster, i: usize, key_id: &str, session: &str) -> ShareRecord {
    let store = cluster.party_store(i).await;
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(share) = store.active_share(key_id).await.unwrap()
                && share.session_id.to_string() == session
            {
                return share;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "server party {} never activated its share of {key_id}",
            i + 1
        )
    })
}

pub fn statuses(shares: &[ShareRecord]) -> Vec<ShareStatus> {
    shares.iter().map(|s| s.status).collect()
}

/// Server party `i`'s `/metrics` text.
pub async fn metrics(cluster: &Cluster, i: usize) -> String {
    let addr = cluster.party(i).http().expect("the party runs");
    http::get(addr, "/metrics").await.unwrap().text()
}

/// Waits until a metric of server party `i` satisfies `pred` (absent counts as 0).
pub async fn wait_metric(
    cluster: &Cluster,
    i: usize,
    name: &str,
    labels: &[&str],
    pred: impl Fn(f64) -> bool,
) -> f64 {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let value = http::metric(&metrics(cluster, i).await, name, labels).unwrap_or(0.0);
            if pred(value) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "metric {name}{labels:?} of server party {} never got there",
            i + 1
        )
    })
}

pub fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}
