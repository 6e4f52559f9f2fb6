//! What goes wrong, and what the server party does about it: a wrong master key at start, a
//! share copied from another party's store, a party killed mid-keygen, events that wait in the
//! queue while a party is down, and the concurrency bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use common::*;
use mpc_bus::{EventKind, EventParticipant, SessionEvent};
use mpc_client::{PartyOutput, PartyWork, SignExpectation, run_session};
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{SessionId, SessionType};
use mpc_protocol::{IdentityKey, SealingKey};
use mpc_store::party::{LocalState, NewShare, ShareStatus};
use mpc_testkit::{Cluster, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_master_key_at_restart_is_a_clear_startup_error() {
    let mut cluster = Cluster::builder().server_parties(2).build().await.unwrap();
    cluster.stop_party(0).await;
    let wrong = SealingKey::generate("kek-1").unwrap();
    let err = cluster
        .start_party_with_master_key(0, wrong)
        .await
        .expect_err("the party must not start");
    assert_eq!(
        err.to_string(),
        "cannot open the identity key: wrong master key"
    );
    // With the right key it starts again.
    cluster.start_party(0).await.unwrap();
    let health = http::get(cluster.party(0).http().unwrap(), "/readyz")
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_copied_from_another_partys_store_does_not_open() {
    // One master key for all: only the associated data (party id, index) keeps shares apart.
    let cluster = Cluster::builder()
        .server_parties(3)
        .shared_master_key(true)
        .build()
        .await
        .unwrap();
    let fixture = mpc_testkit::fixture_shares();
    cluster.import_share(0, "acct-c", &fixture[0]).await;
    cluster.import_share(2, "acct-c", &fixture[2]).await;
    // server_party_1's sealed share, copied into server_party_2's store (relabelled as its own).
    let stolen = cluster
        .party_store(0)
        .await
        .active_share("acct-c")
        .await
        .unwrap()
        .unwrap();
    let target = cluster.party_store(1).await;
    let session = SessionId::new_random();
    target
        .put_pending_share(&NewShare {
            id: uuid::Uuid::new_v4(),
            key_id: "acct-c".into(),
            party_id: cluster.party_id(1),
            party_index: 1,
            threshold: T2N3,
            public_key: stolen.public_key.clone(),
            session_id: session,
            sealed_share: stolen.sealed_share.clone().unwrap(),
            kek_id: stolen.kek_id.clone().unwrap(),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    target
        .record_outcome(
            session,
            SessionType::Keygen,
            "acct-c",
            mpc_store::party::SessionOutcome::Completed,
            Utc::now(),
        )
        .await
        .unwrap();

    let pk = fixture[0].public_key().to_uncompressed().to_vec();
    let info = cluster
        .run_session(mpc_testkit::sign_request(
            at_index(&cluster, &[1, 2]),
            T2N3,
            "acct-c",
            &pk,
            &mpc_testkit::random_hash(),
        ))
        .await;
    assert_eq!(mpc_testkit::status(&info), pb::SessionStatus::Failed);
    assert_eq!(
        info.failure_reason,
        "sign failed: party server_party_2 cannot use its share: share for key acct-c does not decrypt: wrong master key"
    );
    // The genuine holders still sign.
    sign(&cluster, &[0, 2], T2N3, "acct-c", &pk).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_killed_mid_keygen_fails_the_session_cleanly() {
    let mut cluster = Cluster::builder().server_parties(3).build().await.unwrap();
    let mut request = mpc_testkit::keygen_request(servers(&cluster), 2, "acct-k");
    request.lifetime_seconds = 12;
    let created = cluster.create_session(request).await;
    // Everyone joined: the protocol runs. server_party_3 dies now, without a word.
    cluster
        .wait_for_session(&created.session_id, "the start", |info| {
            mpc_testkit::status(info) == pb::SessionStatus::InProgress
        })
        .await;
    cluster.kill_party(2).await;

    let info = cluster.wait_for_end(&created.session_id).await;
    assert_eq!(
        mpc_testkit::status(&info),
        pb::SessionStatus::Failed,
        "{info:?}"
    );
    assert!(
        info.failure_reason
            .starts_with("keygen failed: timeout waiting for party server_party_3"),
        "{}",
        info.failure_reason
    );
    assert_eq!(info.blamed_party_id, "server_party_3");
    for i in 0..3 {
        let shares = shares(&cluster, i, "acct-k").await;
        assert!(
            shares.iter().all(|s| s.status != ShareStatus::Active),
            "party {}: {shares:?}",
            i + 1
        );
    }

    // Back up: the redelivered event of the interrupted session is closed off as failed (the
    // engine state died with the process), and a new keygen succeeds.
    cluster.start_party(2).await.unwrap();
    let db = cluster.party_db(2).await;
    let sid = SessionId::parse(&created.session_id).unwrap();
    tokio::time::timeout(mpc_testkit::DEADLINE, async {
        loop {
            let seen = mpc_store::testing::party::handled_session(&db, sid).await;
            if seen.is_none_or(|s| s.local_state == LocalState::Finished) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the interrupted session is closed off");
    let pk = keygen(&cluster, 2, "acct-k2").await;
    sign(&cluster, &[0, 2], T2N3, "acct-k2", &pk).await;
    for i in 0..3 {
        assert!(
            shares(&cluster, i, "acct-k").await.is_empty(),
            "party {}",
            i + 1
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_that_arrives_while_the_party_is_down_activates_on_restart() {
    let mut cluster = Cluster::builder().server_parties(1).build().await.unwrap();
    let fixture = mpc_testkit::fixture_shares();
    // A share the party stored as pending before it reported (made here directly).
    let store = cluster.party_store(0).await;
    let session = SessionId::new_random();
    let me = cluster.party_id(0);
    let ctx = mpc_protocol::SealContext {
        key_id: "acct-d",
        party_id: me.as_str(),
        party_index: 0,
    };
    store
        .put_pending_share(&NewShare {
            id: uuid::Uuid::new_v4(),
            key_id: "acct-d".into(),
            party_id: cluster.party_id(0),
            party_index: 0,
            threshold: T2N3,
            public_key: fixture[0].public_key().to_hex(),
            session_id: session,
            sealed_share: mpc_protocol::seal::seal_share(
                &cluster.party(0).master_key,
                &ctx,
                &fixture[0],
            )
            .unwrap(),
            kek_id: "kek-1".into(),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    cluster.stop_party(0).await;
    // The session completes while the party is down: the event waits in its queue.
    let now = Utc::now();
    cluster
        .bus()
        .publish(&SessionEvent {
            event_id: uuid::Uuid::new_v4(),
            kind: EventKind::Completed,
            session_id: session,
            session_type: SessionType::Keygen,
            threshold: T2N3,
            participants: vec![EventParticipant {
                party_id: cluster.party_id(0),
                party_index: 0,
                device_type: Some("server".into()),
            }],
            join_tokens: BTreeMap::new(),
            key_id: Some("acct-d".into()),
            message_hash: None,
            public_key: Some(fixture[0].public_key().to_hex()),
            failure_reason: None,
            blamed_party: None,
            expires_at: now,
            occurred_at: now,
        })
        .await
        .unwrap();
    assert_eq!(store.active_share("acct-d").await.unwrap(), None);
    cluster.start_party(0).await.unwrap();
    wait_active(&cluster, 0, "acct-d", &session.to_string()).await;
    cluster.shutdown().await;
}

/// With a bound of 2 sessions held at once, three sign sessions whose device has not joined:
/// the party joins two at once (joining holds no CPU slot, so nothing waits on anything) and
/// declines the third as busy — it fails at once as `overloaded`, and nobody is blamed — instead
/// of leaving it to wait out its lifetime. The two held sessions then complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_its_bound_a_party_declines_as_busy_and_is_not_blamed() {
    let device = Arc::new(IdentityKey::generate().unwrap());
    let cluster = Cluster::builder()
        .server_parties(1)
        .max_concurrent_sessions(2)
        .delegate(device.public_key())
        .build()
        .await
        .unwrap();
    let fixture = mpc_testkit::fixture_shares();
    cluster.import_share(0, "acct-n", &fixture[1]).await;
    let pk = fixture[0].public_key().to_uncompressed().to_vec();
    let device_id = pid("user_device_1");
    let admin = cluster.admin();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let hash = mpc_testkit::random_hash();
        let created = cluster
            .create_session(mpc_testkit::sign_request(
                vec![
                    mpc_testkit::participant(&device_id, "android", Some(0)),
                    mpc_testkit::server(&cluster.party_id(0), Some(1)),
                ],
                T2N3,
                "acct-n",
                &pk,
                &hash,
            ))
            .await;
        // One at a time, so which one is the third is known.
        let id = SessionId::parse(&created.session_id).unwrap();
        if sessions.len() < 2 {
            tokio::time::timeout(mpc_testkit::DEADLINE, async {
                loop {
                    let info = admin.get_session(id).await.unwrap();
                    if info.participants.iter().any(|p| {
                        p.party_id == "server_party_1"
                            && p.status != i32::from(pb::ParticipantStatus::Invited)
                    }) {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("the party joins at once");
        }
        sessions.push((created, hash));
    }
    let (declined, _) = sessions.pop().unwrap();
    let info = cluster.wait_for_end(&declined.session_id).await;
    assert_eq!(
        pb::SessionStatus::try_from(info.status).unwrap(),
        pb::SessionStatus::Failed
    );
    assert_eq!(
        info.failure_reason,
        "sign failed: overloaded: party server_party_1 is at capacity; retry later"
    );
    assert!(
        info.blamed_party_id.is_empty(),
        "a busy party is not blamed"
    );
    assert_eq!(
        http::metric(
            &metrics(&cluster, 0).await,
            "mpc_party_active_sessions_peak",
            &[]
        ),
        Some(2.0)
    );

    let ctx = cluster.client_context(device);
    let runs = sessions.iter().map(|(created, hash)| {
        let ctx = &ctx;
        let work = PartyWork::Sign {
            share: fixture[0].clone(),
            expected: SignExpectation {
                key_id: Some("acct-n".into()),
                message_hash: Some(*hash),
            },
        };
        async move { run_session(ctx, &created.join_tokens["user_device_1"], work).await }
    });
    let outcomes = tokio::time::timeout(mpc_testkit::DEADLINE, futures::future::join_all(runs))
        .await
        .unwrap();
    for ((created, hash), outcome) in sessions.iter().zip(outcomes) {
        let outcome = outcome.unwrap();
        assert!(matches!(outcome.output, PartyOutput::Signature(_)));
        let info = cluster.wait_for_end(&created.session_id).await;
        assert_completed(&info);
        mpc_testkit::assert_valid_signature(&pk, hash.as_bytes(), info.signature.as_ref().unwrap());
    }
    // No ban came of it.
    assert!(
        cluster
            .party_store(0)
            .await
            .bans("acct-n")
            .await
            .unwrap()
            .is_empty()
    );
    cluster.shutdown().await;
}

/// A key frozen for a party (after a protocol abort that requires excluding it) is refused for
/// sessions with that party, and still used with the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_frozen_for_a_party_refuses_sessions_with_it() {
    let cluster = Cluster::builder().server_parties(3).build().await.unwrap();
    let fixture = mpc_testkit::fixture_shares();
    for (i, share) in fixture.iter().enumerate() {
        cluster.import_share(i, "acct-b", share).await;
    }
    let pk = fixture[0].public_key().to_uncompressed().to_vec();
    let banned = mpc_store::party::KeyBan {
        key_id: "acct-b".into(),
        party_id: cluster.party_id(1),
        reason: "failed a multiplication check".into(),
        session_id: SessionId::new_random(),
        created_at: Utc::now(),
    };
    cluster.party_store(0).await.ban(&banned).await.unwrap();

    let info = cluster
        .run_session(mpc_testkit::sign_request(
            at_index(&cluster, &[0, 1]),
            T2N3,
            "acct-b",
            &pk,
            &mpc_testkit::random_hash(),
        ))
        .await;
    assert_eq!(mpc_testkit::status(&info), pb::SessionStatus::Failed);
    assert!(
        info.failure_reason.starts_with(
            "sign failed: party server_party_2 is not trusted: key acct-b is frozen for it"
        ),
        "{}",
        info.failure_reason
    );
    assert_eq!(info.blamed_party_id, "server_party_2");
    sign(&cluster, &[0, 2], T2N3, "acct-b", &pk).await;
    // An operator clears it; the pair signs again.
    assert!(
        cluster
            .party_store(0)
            .await
            .clear_ban("acct-b", &cluster.party_id(1))
            .await
            .unwrap()
    );
    sign(&cluster, &[0, 1], T2N3, "acct-b", &pk).await;
    cluster.shutdown().await;
}

/// A graceful stop while a session is open reports the failure at once (no waiting for the
/// deadline), and the session is not taken up again after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_fails_open_sessions_cleanly() {
    let mut cluster = Cluster::builder().server_parties(2).build().await.unwrap();
    let device = pid("user_device_1");
    let mut participants = servers(&cluster);
    participants.push(mpc_testkit::participant(&device, "android", None));
    let created = cluster
        .create_session(mpc_testkit::keygen_request(participants, 2, "acct-g"))
        .await;
    // Both server parties joined; the device never does, so the session stays open.
    cluster
        .wait_for_session(&created.session_id, "both server parties joined", |info| {
            info.participants
                .iter()
                .filter(|p| p.party_id.starts_with("server_party_"))
                .all(|p| p.status == i32::from(pb::ParticipantStatus::Joined))
        })
        .await;
    cluster.stop_party(0).await;
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_eq!(mpc_testkit::status(&info), pb::SessionStatus::Failed);
    assert_eq!(
        info.failure_reason,
        "keygen failed: party server_party_1 stopped before the session finished"
    );
    cluster.start_party(0).await.unwrap();
    let seen = mpc_store::testing::party::handled_session(
        &cluster.party_db(0).await,
        SessionId::parse(&created.session_id).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(seen.local_state, LocalState::Finished);
    for i in 0..2 {
        assert!(shares(&cluster, i, "acct-g").await.is_empty());
    }
    cluster.shutdown().await;
}
