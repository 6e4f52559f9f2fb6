//! Expiry, restarts, replicas on one database, watching, and events surviving a broker outage.
//! All of these depend on storage, so they run on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use mpc_bus::EventKind;
use mpc_proto::ErrorCode;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_store::testing::TestDb;
use tokio_stream::StreamExt;

fn short_lived(seconds: u32) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        lifetime_seconds: seconds,
        ..keygen_request()
    }
}

/// One party never shows up: the session waits, then expires with the guide's reason.
async fn an_absent_party_leaves_the_session_waiting_then_expired(t: TestDb) {
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let created = client
        .create_session(short_lived(2))
        .await
        .unwrap()
        .into_inner();
    let id = session_id(&created);
    for party in ["user_device", "server_party_1"] {
        client
            .join_session(join_request(&created.join_tokens[party]))
            .await
            .unwrap();
    }
    let info = client
        .get_session(pb::GetSessionRequest {
            session_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&info), pb::SessionStatus::Waiting);

    let event = c.bus.wait_for(EventKind::Expired, id).await;
    assert_eq!(
        event.failure_reason.as_deref(),
        Some("keygen failed: timeout")
    );
    let info = client
        .get_session(pb::GetSessionRequest {
            session_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&info), pb::SessionStatus::Expired);
    assert_eq!(info.failure_reason, "keygen failed: timeout");
    assert!(
        info.participants
            .iter()
            .all(|p| p.status == i32::from(pb::ParticipantStatus::Failed))
    );
    // The late party's token is still within its clock-skew leeway: the answer is the session's
    // state, not a token error.
    let late = api_error(
        client
            .join_session(join_request(&created.join_tokens["server_party_2"]))
            .await,
    );
    assert_eq!(late.code, ErrorCode::SessionExpired);
    assert_eq!(late.message, "session expired: keygen failed: timeout");
    // Once the token itself is past its expiry (plus the leeway), it is just invalid.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let err = api_error(
            client
                .join_session(join_request(&created.join_tokens["server_party_2"]))
                .await,
        );
        if err.code == ErrorCode::InvalidJoinToken {
            break;
        }
        assert_eq!(err.code, ErrorCode::SessionExpired);
        assert!(
            tokio::time::Instant::now() < deadline,
            "token never expired"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let body = http(c.http, "GET", &format!("/api/v1/sessions/{id}"), None, None)
        .await
        .body;
    assert_eq!(body["status"], "expired");
    assert_eq!(body["failure_reason"], "keygen failed: timeout");
    c.stop().await;
}

mpc_store::backend_tests!(
    an_absent_party_leaves_the_session_waiting_then_expired,
    an_absent_party_leaves_the_session_waiting_then_expired
);

/// Sessions that expire while no coordinator runs are expired when one starts again.
async fn expiry_survives_a_restart(t: TestDb) {
    let first = Running::on(&t).await;
    let mut client = first.client().await;
    let created = client
        .create_session(short_lived(1))
        .await
        .unwrap()
        .into_inner();
    let id = session_id(&created);
    first.bus.wait_for(EventKind::Created, id).await;
    first.stop().await;
    // Let the deadline pass while nothing runs.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let second = Running::on(&t).await;
    let event = second.bus.wait_for(EventKind::Expired, id).await;
    assert_eq!(
        event.failure_reason.as_deref(),
        Some("keygen failed: timeout")
    );
    second.stop().await;
}

mpc_store::backend_tests!(expiry_survives_a_restart, expiry_survives_a_restart);

/// Two coordinators on one database expire each of N sessions exactly once between them.
async fn two_replicas_expire_each_session_once(t: TestDb) {
    const N: usize = 12;
    let a = Running::on(&t).await;
    let b = Running::replica(&t).await;
    let mut ids = HashSet::new();
    for i in 0..N {
        let via = if i % 2 == 0 { &a } else { &b };
        let created = via
            .client()
            .await
            .create_session(short_lived(1))
            .await
            .unwrap()
            .into_inner();
        ids.insert(session_id(&created));
    }
    let expired = |c: &Running| -> Vec<_> {
        c.bus
            .events()
            .into_iter()
            .filter(|e| e.kind == EventKind::Expired)
            .map(|e| e.session_id)
            .collect()
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while expired(&a).len() + expired(&b).len() < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions did not expire"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both replicas keep sweeping; give them a few more rounds to double-process, if they could.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all: Vec<_> = expired(&a).into_iter().chain(expired(&b)).collect();
    assert_eq!(all.len(), N, "exactly one session.expired per session");
    assert_eq!(all.iter().copied().collect::<HashSet<_>>(), ids);
    a.stop().await;
    b.stop().await;
}

mpc_store::backend_tests!(
    two_replicas_expire_each_session_once,
    two_replicas_expire_each_session_once
);

/// A watcher on one replica sees every change made through the other, then the stream ends.
async fn watch_sees_changes_made_through_another_replica(t: TestDb) {
    let a = Running::on(&t).await;
    let b = Running::replica(&t).await;
    let mut via_a = a.client().await;
    let created = via_a
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();
    let mut stream = b
        .client()
        .await
        .watch_session(pb::WatchSessionRequest {
            session_id: created.session_id.clone(),
            join_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut next_status = async || {
        let info = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("no update from the watch")
            .expect("watch ended early")
            .unwrap();
        status(&info)
    };
    assert_eq!(next_status().await, pb::SessionStatus::Created);

    let mut tokens = Vec::new();
    for party in ["user_device", "server_party_1", "server_party_2"] {
        let token = created.join_tokens[party].clone();
        via_a.join_session(join_request(&token)).await.unwrap();
        tokens.push(token);
    }
    // Every update is a real change; the states arrive in order (a watcher may merge updates
    // that happen close together, but never reorders them).
    let mut seen = vec![pb::SessionStatus::Created];
    while *seen.last().unwrap() != pb::SessionStatus::InProgress {
        let s = next_status().await;
        assert!(
            s as i32 >= *seen.last().unwrap() as i32,
            "{seen:?} then {s:?}"
        );
        seen.push(s);
    }
    via_a
        .report_failure(pb::ReportFailureRequest {
            join_token: tokens[0].clone(),
            reason: "device went offline".into(),
            blamed_party_id: String::new(),
            overloaded: false,
        })
        .await
        .unwrap();
    loop {
        let s = next_status().await;
        if s == pb::SessionStatus::Failed {
            break;
        }
        assert_eq!(s, pb::SessionStatus::InProgress);
    }
    let end = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("watch did not end");
    assert!(end.is_none(), "the stream ends after a terminal state");
    a.stop().await;
    b.stop().await;
}

mpc_store::backend_tests!(
    watch_sees_changes_made_through_another_replica,
    watch_sees_changes_made_through_another_replica
);

/// A broker outage neither fails requests nor loses events: the outbox publishes them later.
async fn events_survive_a_broker_outage(t: TestDb) {
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    c.bus.set_failing(true);
    let created = client
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();
    let id = session_id(&created);
    client
        .join_session(join_request(&created.join_tokens["user_device"]))
        .await
        .unwrap();
    assert!(c.bus.events().is_empty());
    c.bus.set_failing(false);
    let event = c.bus.wait_for(EventKind::Created, id).await;
    assert_eq!(event.join_tokens.len(), 2);
    c.stop().await;
}

mpc_store::backend_tests!(
    events_survive_a_broker_outage,
    events_survive_a_broker_outage
);
