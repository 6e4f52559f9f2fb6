//! Whole flows through real services in this process (coordinator, router, server parties on
//! port 0, each party on its own database): keygen 2-of-3 and sign with every pair, a restart
//! between keygen and sign, a redelivered `session.created`, refresh (old shares erased),
//! 3-of-5, and recovery of a lost server share. Signatures are checked with k256's ecrecover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mpc_bus::{EventKind, SessionEvent};
use mpc_proto::Threshold;
use mpc_store::party::ShareStatus;
use mpc_testkit::{Backend, Cluster, http};

/// The bus as a spectator sees it (to replay an event later).
async fn spy(cluster: &Cluster) -> Box<dyn mpc_bus::Subscription> {
    let queue = format!("spy.{}", uuid::Uuid::new_v4().simple());
    cluster
        .bus()
        .subscribe(&queue, &["session.*"])
        .await
        .unwrap()
}

async fn created_event(spy: &mut Box<dyn mpc_bus::Subscription>, session: &str) -> SessionEvent {
    loop {
        let delivery = tokio::time::timeout(mpc_testkit::DEADLINE, spy.next())
            .await
            .expect("no event")
            .expect("bus closed")
            .unwrap();
        let event = delivery.event.clone();
        delivery.ack().await.unwrap();
        if event.kind == EventKind::Created && event.session_id.to_string() == session {
            return event;
        }
    }
}

async fn keygen_sign_restart_redeliver_refresh(backend: Backend) {
    let Some(mut cluster) = Cluster::builder()
        .backend(backend)
        .server_parties(3)
        .build()
        .await
    else {
        return;
    };
    // Each party serves the identity the others pin.
    for i in 0..3 {
        let body = http::get(cluster.party(i).http().unwrap(), "/api/v1/identity")
            .await
            .unwrap()
            .body;
        assert_eq!(body["party_id"], cluster.party_id(i).as_str());
        assert_eq!(
            body["identity_public_key"],
            cluster.party(i).identity.to_string()
        );
    }
    let mut spy = spy(&cluster).await;

    let created = cluster
        .create_session(mpc_testkit::keygen_request(servers(&cluster), 2, "acct-1"))
        .await;
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_completed(&info);
    let pk = info.public_key.clone();
    let pk_hex = hex::encode(&pk);
    for i in 0..3 {
        let share = wait_active(&cluster, i, "acct-1", &created.session_id).await;
        assert_eq!(share.public_key, pk_hex);
        assert_eq!(usize::from(share.party_index), i);
        assert_eq!(share.party_id, cluster.party_id(i));
        assert_eq!(share.kek_id.as_deref(), Some("kek-1"));
    }

    for pair in [[0, 1], [0, 2], [1, 2]] {
        sign(&cluster, &pair, T2N3, "acct-1", &pk).await;
    }

    // A restart between keygen and sign: the share is read back from the party's database.
    cluster.restart_party(1).await;
    sign(&cluster, &[1, 2], T2N3, "acct-1", &pk).await;

    // The keygen's session.created again (as after a broker redelivery): acknowledged, ignored.
    let event = created_event(&mut spy, &created.session_id).await;
    cluster.bus().publish(&event).await.unwrap();
    for i in 0..3 {
        wait_metric(
            &cluster,
            i,
            "mpc_party_sessions_total",
            &["type=\"keygen\"", "outcome=\"skipped\""],
            |v| v >= 1.0,
        )
        .await;
        let shares = shares(&cluster, i, "acct-1").await;
        assert_eq!(
            statuses(&shares),
            vec![ShareStatus::Active],
            "party {}",
            i + 1
        );
    }

    // Refresh: same key, new shares; the old ones are retired and their ciphertext erased.
    let created = cluster
        .create_session(mpc_testkit::refresh_request(
            at_index(&cluster, &[0, 1, 2]),
            T2N3,
            "acct-1",
            &pk,
        ))
        .await;
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_completed(&info);
    assert_eq!(info.public_key, pk);
    for i in 0..3 {
        let active = wait_active(&cluster, i, "acct-1", &created.session_id).await;
        assert_eq!(active.public_key, pk_hex);
        let all = shares(&cluster, i, "acct-1").await;
        assert_eq!(
            statuses(&all),
            vec![ShareStatus::Retired, ShareStatus::Active]
        );
        assert_eq!(all[0].sealed_share, None, "the old share is erased");
        assert_eq!(all[0].kek_id, None);
    }
    sign(&cluster, &[0, 2], T2N3, "acct-1", &pk).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_sign_restart_redeliver_refresh_sqlite() {
    keygen_sign_restart_redeliver_refresh(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_sign_restart_redeliver_refresh_postgres() {
    keygen_sign_restart_redeliver_refresh(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_of_five_keygen_and_sign() {
    let cluster = Cluster::builder().server_parties(5).build().await.unwrap();
    let pk = keygen(&cluster, 3, "acct-35").await;
    let threshold = Threshold { t: 3, n: 5 };
    sign(&cluster, &[0, 2, 4], threshold, "acct-35", &pk).await;
    sign(&cluster, &[1, 2, 3], threshold, "acct-35", &pk).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_rebuilds_a_lost_server_share_with_the_same_key() {
    let mut cluster = Cluster::builder().server_parties(3).build().await.unwrap();
    let fixture = mpc_testkit::fixture_shares();
    for (i, share) in fixture.iter().enumerate() {
        cluster.import_share(i, "acct-r", share).await;
    }
    let pk = fixture[0].public_key().to_uncompressed().to_vec();

    // server_party_3 loses its server: a fresh database (and identity) under the same id.
    cluster.replace_party_database(2).await;
    assert_eq!(shares(&cluster, 2, "acct-r").await, vec![]);

    let target = cluster.party_id(2);
    let helpers = [cluster.party_id(0), cluster.party_id(1)];
    let created = cluster
        .create_session(mpc_testkit::recovery_request(
            at_index(&cluster, &[0, 1, 2]),
            T2N3,
            "acct-r",
            &pk,
            &target,
            &helpers,
        ))
        .await;
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_completed(&info);
    let rebuilt = wait_active(&cluster, 2, "acct-r", &created.session_id).await;
    assert_eq!(
        rebuilt.public_key,
        hex::encode(&pk),
        "same key, same address"
    );
    assert_eq!(rebuilt.party_index, 2);
    for i in 0..2 {
        wait_active(&cluster, i, "acct-r", &created.session_id).await;
        let all = shares(&cluster, i, "acct-r").await;
        assert_eq!(
            statuses(&all),
            vec![ShareStatus::Retired, ShareStatus::Active]
        );
    }
    sign(&cluster, &[0, 2], T2N3, "acct-r", &pk).await;
    sign(&cluster, &[1, 2], T2N3, "acct-r", &pk).await;
    cluster.shutdown().await;
}

/// The same parties over RabbitMQ (durable queues, manual acknowledgement) instead of the
/// in-process bus; skipped without `AMQP_URL` outside CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_and_sign_over_rabbitmq() {
    let Some(mut cluster) = Cluster::builder()
        .bus(mpc_testkit::BusKind::RabbitMq)
        .server_parties(3)
        .build()
        .await
    else {
        return;
    };
    let created = cluster
        .create_session(mpc_testkit::keygen_request(servers(&cluster), 2, "acct-mq"))
        .await;
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_completed(&info);
    for i in 0..3 {
        wait_active(&cluster, i, "acct-mq", &created.session_id).await;
    }
    // A restart: the party consumes its durable queue again and still signs.
    cluster.restart_party(0).await;
    sign(&cluster, &[0, 1], T2N3, "acct-mq", &info.public_key).await;
    cluster.shutdown().await;
}
