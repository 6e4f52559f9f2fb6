//! Many sessions at once with deliberately small CPU pools (2 permits per party): nothing
//! waits on anything in a cycle, so every one of 300 concurrent sign sessions completes, on
//! SQLite and on PostgreSQL, and every signature verifies with k256 (not with our code).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_testkit::{Backend, Cluster};

const SESSIONS: usize = 300;

async fn burst_of_signs(backend: Backend) {
    let Some(cluster) = Cluster::builder()
        .backend(backend)
        .server_parties(2)
        .compute_permits(2)
        .build()
        .await
    else {
        return;
    };
    let fixture = mpc_testkit::fixture_shares();
    // server_party_1 holds index 1, server_party_2 index 2 of the fixture's 2-of-3 key.
    cluster.import_share(0, "acct-load", &fixture[1]).await;
    cluster.import_share(1, "acct-load", &fixture[2]).await;
    let pk = fixture[0].public_key().to_uncompressed().to_vec();
    let requests: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let hash = mpc_testkit::random_hash();
            let request = mpc_testkit::sign_request(
                vec![
                    mpc_testkit::server(&cluster.party_id(0), Some(1)),
                    mpc_testkit::server(&cluster.party_id(1), Some(2)),
                ],
                T2N3,
                "acct-load",
                &pk,
                &hash,
            );
            (request, hash)
        })
        .collect();
    // All created at once: the parties see 300 sessions together.
    let created = futures::future::join_all(
        requests
            .iter()
            .map(|(request, _)| cluster.create_session(request.clone())),
    )
    .await;
    let ended =
        futures::future::join_all(created.iter().map(|c| cluster.wait_for_end(&c.session_id)))
            .await;
    for ((info, (_, hash)), c) in ended.iter().zip(&requests).zip(&created) {
        assert_eq!(
            pb::SessionStatus::try_from(info.status).unwrap(),
            pb::SessionStatus::Completed,
            "session {}: {}",
            c.session_id,
            info.failure_reason
        );
        mpc_testkit::assert_valid_signature(&pk, hash.as_bytes(), info.signature.as_ref().unwrap());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_signs_sqlite() {
    burst_of_signs(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_signs_postgres() {
    burst_of_signs(Backend::Postgres).await;
}
