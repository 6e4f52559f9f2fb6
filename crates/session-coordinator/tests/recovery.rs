//! After a crash nothing waits for a session's lifetime (issue 10 §1b), at the coordinator, on
//! SQLite and PostgreSQL: a server party that announces a new instance (it restarted) fails the
//! sessions its earlier instance was running, naming the restart; a Server Party API that
//! restarted lets its devices join again a session that had not started; a host that stops
//! heartbeating fails its sessions within the liveness timeout; a session whose parties do not
//! all join within the join timeout fails, naming who never came.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use mpc_proto::ApiError;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_protocol::IdentityKey;
use mpc_store::testing::TestDb;
use pb::coordinator_client::CoordinatorClient;
use tonic::transport::Channel;

fn host(party: &str, instance: &str) -> Option<pb::HostInstance> {
    Some(pb::HostInstance {
        party_id: party.into(),
        instance_id: instance.into(),
    })
}

async fn join(
    client: &mut CoordinatorClient<Channel>,
    token: &str,
    host: Option<pb::HostInstance>,
) -> Result<pb::JoinSessionResponse, ApiError> {
    let mut req = join_request(token);
    req.host = host;
    client
        .join_session(req)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| ApiError::from_status(&s))
}

async fn session(client: &mut CoordinatorClient<Channel>, id: &str) -> pb::SessionInfo {
    client
        .get_session(authorized(pb::GetSessionRequest {
            session_id: id.into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

/// Polls until the session has ended; returns it.
async fn ended(
    client: &mut CoordinatorClient<Channel>,
    id: &str,
    within: Duration,
) -> pb::SessionInfo {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let s = session(client, id).await;
        if matches!(
            status(&s),
            pb::SessionStatus::Failed | pb::SessionStatus::Expired | pb::SessionStatus::Completed
        ) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session {id} still {:?} after {within:?}",
            status(&s)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// server_party_1, server_party_2 and the Server Party API, registered (instance "a").
async fn registered(client: &mut CoordinatorClient<Channel>) -> [IdentityKey; 3] {
    let keys = [
        IdentityKey::from_seed(&[1; 32]),
        IdentityKey::from_seed(&[2; 32]),
        IdentityKey::from_seed(&[3; 32]),
    ];
    for (key, id, kind) in [
        (&keys[0], "server_party_1", pb::PartyKind::Server),
        (&keys[1], "server_party_2", pb::PartyKind::Server),
        (&keys[2], "server-party-api", pb::PartyKind::PartyApi),
    ] {
        announce(client, announcement_of(key, id, kind, now_ms(), "a"))
            .await
            .unwrap();
    }
    keys
}

async fn restarts_end_what_the_old_instance_ran(t: TestDb) {
    let c = Running::start(
        t.db.clone(),
        RecordingBus::new(),
        registry_config(Duration::from_secs(30)),
    )
    .await;
    let mut client = c.client().await;
    let keys = registered(&mut client).await;
    let create = |client: &mut CoordinatorClient<Channel>| {
        let mut client = client.clone();
        async move {
            client
                .create_session(authorized(keygen_request()))
                .await
                .unwrap()
                .into_inner()
        }
    };

    // A server party joined, then restarted (a new instance announces itself): the session
    // fails at once, naming the restart, and nobody is blamed.
    let first = create(&mut client).await;
    let token = |s: &pb::CreateSessionResponse, p: &str| s.join_tokens[p].clone();
    join(
        &mut client,
        &token(&first, "server_party_1"),
        host("server_party_1", "a"),
    )
    .await
    .unwrap();
    // The device, through the API, in the same session.
    join(
        &mut client,
        &token(&first, "user_device"),
        host("server-party-api", "a"),
    )
    .await
    .unwrap();
    announce(
        &mut client,
        announcement_of(
            &keys[0],
            "server_party_1",
            pb::PartyKind::Server,
            now_ms(),
            "b",
        ),
    )
    .await
    .unwrap();
    let failed = ended(&mut client, &first.session_id, Duration::from_secs(5)).await;
    assert_eq!(status(&failed), pb::SessionStatus::Failed);
    assert!(
        failed.failure_reason.contains("server_party_1 restarted"),
        "{}",
        failed.failure_reason
    );
    assert!(failed.blamed_party_id.is_empty(), "{failed:?}");

    // The API restarted while its device waited in a session that had not started: the device
    // may join again (through the new instance); the session is not failed.
    let second = create(&mut client).await;
    join(
        &mut client,
        &token(&second, "user_device"),
        host("server-party-api", "a"),
    )
    .await
    .unwrap();
    announce(
        &mut client,
        announcement_of(
            &keys[2],
            "server-party-api",
            pb::PartyKind::PartyApi,
            now_ms(),
            "b",
        ),
    )
    .await
    .unwrap();
    let s = session(&mut client, &second.session_id).await;
    assert!(
        matches!(
            status(&s),
            pb::SessionStatus::Waiting | pb::SessionStatus::Created
        ),
        "{s:?}"
    );
    let device = s
        .participants
        .iter()
        .find(|p| p.party_id == "user_device")
        .unwrap();
    assert_eq!(device.status, i32::from(pb::ParticipantStatus::Invited));
    join(
        &mut client,
        &token(&second, "user_device"),
        host("server-party-api", "b"),
    )
    .await
    .unwrap();

    // A join from a new instance of the process that joined before (its announcement not
    // seen yet) is handled the same way: a device's join is redone...
    let third = create(&mut client).await;
    join(
        &mut client,
        &token(&third, "user_device"),
        host("server-party-api", "b"),
    )
    .await
    .unwrap();
    join(
        &mut client,
        &token(&third, "user_device"),
        host("server-party-api", "c"),
    )
    .await
    .unwrap();
    // ... a server party's fails the session, naming the restart.
    join(
        &mut client,
        &token(&third, "server_party_2"),
        host("server_party_2", "a"),
    )
    .await
    .unwrap();
    let e = join(
        &mut client,
        &token(&third, "server_party_2"),
        host("server_party_2", "z"),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("server_party_2 restarted"), "{e}");
    let failed = session(&mut client, &third.session_id).await;
    assert_eq!(status(&failed), pb::SessionStatus::Failed);
    c.stop().await;
}
mpc_store::backend_tests!(
    restarts_end_what_the_old_instance_ran,
    restarts_end_what_the_old_instance_ran
);

async fn silent_hosts_and_missing_joins_fail_sessions_at_once(t: TestDb) {
    let mut config = registry_config(Duration::from_millis(800));
    config.join_timeout = Duration::from_secs(2);
    config.expiry_interval = Duration::from_millis(100);
    let c = Running::start(t.db.clone(), RecordingBus::new(), config).await;
    let mut client = c.client().await;
    let keys = registered(&mut client).await;
    let created = client
        .create_session(authorized(keygen_request()))
        .await
        .unwrap()
        .into_inner();
    join(
        &mut client,
        &created.join_tokens["server_party_1"],
        host("server_party_1", "a"),
    )
    .await
    .unwrap();
    // Nobody joins this one.
    let unjoined = client
        .create_session(authorized(keygen_request()))
        .await
        .unwrap()
        .into_inner();
    // server_party_2 and the API keep heartbeating, server_party_1 falls silent.
    let heartbeat = {
        let mut client = client.clone();
        tokio::spawn(async move {
            loop {
                for (key, id, kind) in [
                    (&keys[1], "server_party_2", pb::PartyKind::Server),
                    (&keys[2], "server-party-api", pb::PartyKind::PartyApi),
                ] {
                    let _ =
                        announce(&mut client, announcement_of(key, id, kind, now_ms(), "a")).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let failed = ended(&mut client, &created.session_id, Duration::from_secs(10)).await;
    assert_eq!(status(&failed), pb::SessionStatus::Failed);
    assert!(
        failed
            .failure_reason
            .contains("server_party_1 stopped responding"),
        "{}",
        failed.failure_reason
    );
    let failed = ended(&mut client, &unjoined.session_id, Duration::from_secs(10)).await;
    assert_eq!(status(&failed), pb::SessionStatus::Failed);
    assert_eq!(
        failed.failure_reason,
        "keygen failed: timeout waiting for parties user_device, server_party_1, server_party_2 to join (join timeout 2 s)"
    );
    assert!(failed.blamed_party_id.is_empty());
    heartbeat.abort();
    c.stop().await;
}
mpc_store::backend_tests!(
    silent_hosts_and_missing_joins_fail_sessions_at_once,
    silent_hosts_and_missing_joins_fail_sessions_at_once
);
