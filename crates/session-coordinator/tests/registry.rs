//! The party registry and session cancellation at the coordinator, on SQLite and PostgreSQL:
//! signed announcements (a forged, replayed, malformed or unauthenticated one is refused), the
//! checks of CreateSession against the registry (unknown, dead, disguised parties), liveness
//! after heartbeats stop, and CancelSession.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ApiError, ErrorCode};
use mpc_protocol::IdentityKey;
use mpc_store::testing::TestDb;
use tonic::Request;

async fn announcements_are_checked(t: TestDb) {
    let c = Running::start(
        t.db.clone(),
        RecordingBus::new(),
        registry_config(Duration::from_secs(30)),
    )
    .await;
    let mut client = c.client().await;
    let one = IdentityKey::from_seed(&[1; 32]);
    let ok = announce(
        &mut client,
        announcement(&one, "server_party_1", pb::PartyKind::Server, now_ms()),
    )
    .await
    .unwrap();
    assert_eq!(ok.heartbeat_interval_ms, 100);
    assert_eq!(ok.liveness_timeout_ms, 30_000);

    // Without the service token.
    let unauthenticated = client
        .announce_party(Request::new(announcement(
            &one,
            "server_party_1",
            pb::PartyKind::Server,
            now_ms(),
        )))
        .await;
    assert_eq!(code(unauthenticated), ErrorCode::InvalidApiKey);
    // Signed by another key than the one announced.
    let other = IdentityKey::from_seed(&[2; 32]);
    let mut forged = announcement(&other, "server_party_1", pb::PartyKind::Server, now_ms());
    forged.identity_public_key = one.public_key().as_bytes().to_vec();
    let e = announce(&mut client, forged).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("does not verify"), "{e}");
    // A signed announcement with a field changed afterwards.
    let mut tampered = announcement(&one, "server_party_1", pb::PartyKind::Server, now_ms());
    tampered.party_id = "server_party_2".into();
    assert!(announce(&mut client, tampered).await.is_err());
    // An old one, replayed to make a dead party look alive.
    let old = announcement(
        &one,
        "server_party_1",
        pb::PartyKind::Server,
        now_ms() - 120_000,
    );
    let e = announce(&mut client, old).await.unwrap_err();
    assert!(e.message.contains("check the clocks"), "{e}");
    // Malformed fields.
    for bad in [
        pb::AnnouncePartyRequest {
            kind: 0,
            ..announcement(&one, "server_party_1", pb::PartyKind::Server, now_ms())
        },
        pb::AnnouncePartyRequest {
            identity_public_key: vec![1; 31],
            ..announcement(&one, "server_party_1", pb::PartyKind::Server, now_ms())
        },
        announcement(&one, "not a party id", pb::PartyKind::Server, now_ms()),
        pb::AnnouncePartyRequest {
            version: "v".repeat(65),
            ..announcement(&one, "server_party_1", pb::PartyKind::Server, now_ms())
        },
    ] {
        assert_eq!(
            announce(&mut client, bad).await.unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
    // Listed, live, with what it said.
    let listed = client
        .list_parties(authorized(pb::ListPartiesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .parties;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].party_id, "server_party_1");
    assert_eq!(listed[0].kind, i32::from(pb::PartyKind::Server));
    assert_eq!(
        listed[0].identity_public_key,
        one.public_key().as_bytes().to_vec()
    );
    assert_eq!(listed[0].active_sessions, 2);
    assert!(listed[0].live);
    c.stop().await;
}
mpc_store::backend_tests!(announcements_are_checked, announcements_are_checked);

async fn sessions_are_checked_against_the_registry(t: TestDb) {
    let c = Running::start(
        t.db.clone(),
        RecordingBus::new(),
        registry_config(Duration::from_millis(600)),
    )
    .await;
    let mut client = c.client().await;
    let creator = client.clone();
    let create = |req: pb::CreateSessionRequest| {
        let mut client = creator.clone();
        async move {
            client
                .create_session(authorized(req))
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| ApiError::from_status(&s))
        }
    };
    // Nobody registered: the guide's keygen names two unknown server parties.
    let e = create(keygen_request()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownParty);
    assert!(e.message.contains("server_party_1"), "{e}");
    let (one, two) = (
        IdentityKey::from_seed(&[1; 32]),
        IdentityKey::from_seed(&[2; 32]),
    );
    for (key, id) in [(&one, "server_party_1"), (&two, "server_party_2")] {
        announce(
            &mut client,
            announcement(key, id, pb::PartyKind::Server, now_ms()),
        )
        .await
        .unwrap();
    }
    // A Server Party API is not a server party.
    let api = IdentityKey::from_seed(&[3; 32]);
    announce(
        &mut client,
        announcement(&api, "server-party-api", pb::PartyKind::PartyApi, now_ms()),
    )
    .await
    .unwrap();
    let created = create(keygen_request()).await.unwrap();
    // Server parties get their tokens on the bus; the device does not.
    let events = c.bus.events();
    let event = events
        .iter()
        .find(|e| e.session_id.to_string() == created.session_id)
        .unwrap();
    let mut on_bus: Vec<_> = event.join_tokens.keys().map(ToString::to_string).collect();
    on_bus.sort();
    assert_eq!(on_bus, ["server_party_1", "server_party_2"]);

    let mut disguised = keygen_request();
    disguised.participants[0] = participant("server_party_2", "ios", None);
    disguised.participants[2] = participant("server_party_3", "", None);
    let e = create(disguised).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("server_party_2"), "{e}");
    // A registered server party named without a device type counts as one (and its token goes
    // on the bus).
    let mut plain = keygen_request();
    plain.participants[1] = participant("server_party_1", "", None);
    let created = create(plain).await.unwrap();
    let events = c.bus.events();
    let event = events
        .iter()
        .find(|e| e.session_id.to_string() == created.session_id)
        .unwrap();
    assert!(
        event
            .join_tokens
            .keys()
            .any(|p| p.as_str() == "server_party_1")
    );

    // server_party_2 stops heartbeating; server_party_1 keeps on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let e = loop {
        announce(
            &mut client,
            announcement(&one, "server_party_1", pb::PartyKind::Server, now_ms()),
        )
        .await
        .unwrap();
        match create(keygen_request()).await {
            Err(e) => break e,
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "still live");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(e.code, ErrorCode::PartyUnavailable);
    assert!(e.message.contains("server_party_2"), "{e}");
    assert!(e.retry_after.is_some_and(|s| s >= 1));
    // Back once it announces itself again.
    announce(
        &mut client,
        announcement(&two, "server_party_2", pb::PartyKind::Server, now_ms()),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    announce(
        &mut client,
        announcement(&one, "server_party_1", pb::PartyKind::Server, now_ms()),
    )
    .await
    .unwrap();
    announce(
        &mut client,
        announcement(&two, "server_party_2", pb::PartyKind::Server, now_ms()),
    )
    .await
    .unwrap();
    create(keygen_request()).await.unwrap();
    c.stop().await;
}
mpc_store::backend_tests!(
    sessions_are_checked_against_the_registry,
    sessions_are_checked_against_the_registry
);

async fn cancel_session(t: TestDb) {
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let created = client
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();
    let cancel = |reason: &str| pb::CancelSessionRequest {
        session_id: created.session_id.clone(),
        reason: reason.into(),
    };
    assert_eq!(
        code(client.cancel_session(cancel("")).await),
        ErrorCode::InvalidArgument
    );
    let info = client
        .cancel_session(cancel("account suspended"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&info), pb::SessionStatus::Failed);
    assert_eq!(
        info.failure_reason,
        "keygen failed: cancelled: account suspended"
    );
    assert!(info.blamed_party_id.is_empty());
    // Once more: the session as it is.
    let again = client
        .cancel_session(cancel("again"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.failure_reason, info.failure_reason);
    // A party can no longer join.
    let join = client
        .join_session(join_request(&created.join_tokens["user_device"]))
        .await;
    assert_eq!(code(join), ErrorCode::FailedPrecondition);
    let events = c.bus.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.session_id.to_string() == created.session_id
                && e.kind == mpc_bus::EventKind::Failed)
            .count(),
        1
    );
    let unknown = client
        .cancel_session(pb::CancelSessionRequest {
            session_id: uuid::Uuid::new_v4().to_string(),
            reason: "x".into(),
        })
        .await;
    assert_eq!(code(unknown), ErrorCode::SessionNotFound);
    c.stop().await;
}
mpc_store::backend_tests!(cancel_session, cancel_session);
