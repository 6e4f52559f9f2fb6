//! Whole sessions over real gRPC: keygen and sign from creation to completion, and the ways they
//! fail. Storage-dependent flows run on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use k256::ecdsa::Signature;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use mpc_bus::EventKind;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ErrorCode, PartyId};
use mpc_store::testing::TestDb;

async fn keygen_completes(t: TestDb) {
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let created = client
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();
    let id = session_id(&created);
    assert_eq!(
        pb::SessionStatus::try_from(created.status),
        Ok(pb::SessionStatus::Created)
    );
    assert_eq!(created.join_tokens.len(), 3);

    // session.created carries the server parties' tokens, not the phone's.
    let event = c.bus.wait_for(EventKind::Created, id).await;
    let with_tokens: Vec<&str> = event.join_tokens.keys().map(PartyId::as_str).collect();
    assert_eq!(with_tokens, ["server_party_1", "server_party_2"]);
    assert_eq!(
        event.join_tokens[&PartyId::parse("server_party_1").unwrap()],
        created.join_tokens["server_party_1"]
    );

    let parties = ["user_device", "server_party_1", "server_party_2"];
    let mut joins = Vec::new();
    for (i, party) in parties.iter().enumerate() {
        let req = join_request(&created.join_tokens[*party]);
        let joined = client.join_session(req.clone()).await.unwrap().into_inner();
        assert_eq!(joined.party_index, u32::try_from(i).unwrap());
        let expected = if i < 2 {
            pb::SessionStatus::Waiting
        } else {
            pb::SessionStatus::InProgress
        };
        assert_eq!(status(joined.session.as_ref().unwrap()), expected);
        // The roster is not available before everyone joined.
        if i == 0 {
            let early = client
                .get_roster(pb::GetRosterRequest {
                    join_token: req.join_token.clone(),
                })
                .await;
            let err = api_error(early);
            assert_eq!(err.code, ErrorCode::FailedPrecondition);
            assert_eq!(err.message, "session has not started");
        }
        joins.push(req);
    }
    c.bus.wait_for(EventKind::Started, id).await;

    // A retried join is idempotent; a join with other keys is refused.
    let again = client.join_session(joins[0].clone()).await.unwrap();
    assert_eq!(again.into_inner().party_index, 0);
    let mut other_keys = joins[0].clone();
    other_keys.session_key = b"another key".to_vec();
    assert_eq!(
        code(client.join_session(other_keys).await),
        ErrorCode::FailedPrecondition
    );

    let roster = client
        .get_roster(pb::GetRosterRequest {
            join_token: joins[1].join_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(roster.parties.len(), 3);
    for (entry, join) in roster.parties.iter().zip(&joins) {
        assert_eq!(entry.identity_public_key, join.identity_public_key);
        assert_eq!(entry.session_key, join.session_key);
    }
    let me = &roster.session.as_ref().unwrap().participants[1];
    assert_eq!(
        pb::ParticipantStatus::try_from(me.status),
        Ok(pb::ParticipantStatus::Computing)
    );

    let group_key = public_key_bytes(&test_key());
    for (i, join) in joins.iter().enumerate() {
        let report = client
            .report_completion(pb::ReportCompletionRequest {
                join_token: join.join_token.clone(),
                result: Some(pb::report_completion_request::Result::Key(pb::KeyResult {
                    public_key: group_key.clone(),
                })),
            })
            .await
            .unwrap()
            .into_inner();
        let info = report.session.unwrap();
        let expected = if i < 2 {
            pb::SessionStatus::InProgress
        } else {
            pb::SessionStatus::Completed
        };
        assert_eq!(status(&info), expected);
    }
    let done = c.bus.wait_for(EventKind::Completed, id).await;
    assert_eq!(done.public_key, Some(hex::encode(&group_key)));
    let info = client
        .get_session(pb::GetSessionRequest {
            session_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&info), pb::SessionStatus::Completed);
    assert_eq!(info.public_key, group_key);
    assert!(info.completed_at_ms.is_some());
    assert!(
        info.participants
            .iter()
            .all(|p| p.status == i32::from(pb::ParticipantStatus::Completed))
    );
    let kinds: Vec<EventKind> = c.bus.events_of(id).iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Created, EventKind::Started, EventKind::Completed]
    );

    // Joining (with a still-valid token) after completion is an error.
    assert_eq!(
        code(
            client
                .join_session(join_request(&joins[0].join_token))
                .await
        ),
        ErrorCode::FailedPrecondition
    );

    // The guide's metrics count it.
    let metrics = http(c.http, "GET", "/metrics", None, None).await;
    let text = metrics.body.as_str().unwrap().to_owned();
    assert!(
        text.lines().any(|l| l.starts_with("mpc_sessions_total{")
            && l.contains("type=\"keygen\"")
            && l.contains("outcome=\"completed\"")
            && l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("mpc_keygen_duration_seconds_count") && l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("mpc_session_success_rate") && l.ends_with(" 1.0")),
        "{text}"
    );
    c.stop().await;
}

mpc_store::backend_tests!(keygen_completes, keygen_completes);

/// Joins every party of `created` and fetches its roster; returns the tokens in request order.
async fn join_all(
    client: &mut pb::coordinator_client::CoordinatorClient<tonic::transport::Channel>,
    created: &pb::CreateSessionResponse,
    parties: &[&str],
) -> Vec<String> {
    let mut tokens = Vec::new();
    for party in parties {
        let token = created.join_tokens[*party].clone();
        client.join_session(join_request(&token)).await.unwrap();
        tokens.push(token);
    }
    for token in &tokens {
        client
            .get_roster(pb::GetRosterRequest {
                join_token: token.clone(),
            })
            .await
            .unwrap();
    }
    tokens
}

fn signature_report(
    token: &str,
    (r, s, v): (Vec<u8>, Vec<u8>, u32),
) -> pb::ReportCompletionRequest {
    pb::ReportCompletionRequest {
        join_token: token.into(),
        result: Some(pb::report_completion_request::Result::Signature(
            pb::SignatureResult { r, s, v },
        )),
    }
}

async fn sign_completes_with_a_verified_signature(t: TestDb) {
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let key = test_key();
    let hash = [0x3c; 32];
    let created = client
        .create_session(sign_request(public_key_bytes(&key), hash))
        .await
        .unwrap()
        .into_inner();
    let id = session_id(&created);
    let tokens = join_all(&mut client, &created, &["user_device", "server_party_2"]).await;

    let sig = sign(&key, &hash);
    for token in &tokens {
        client
            .report_completion(signature_report(token, sig.clone()))
            .await
            .unwrap();
    }
    c.bus.wait_for(EventKind::Completed, id).await;

    // Over HTTP, in the guide's shape: DER signature, r, s, v.
    let got = http(c.http, "GET", &format!("/api/v1/sessions/{id}"), None, None).await;
    assert_eq!(got.status, 200);
    let body = got.body;
    assert_eq!(body["status"], "completed");
    assert_eq!(body["message_hash"], hex::encode(hash));
    assert_eq!(body["signature"]["r"], hex::encode(&sig.0));
    assert_eq!(body["signature"]["s"], hex::encode(&sig.1));
    assert_eq!(body["signature"]["v"], sig.2);
    let der = hex::decode(body["signature"]["signature"].as_str().unwrap()).unwrap();
    let parsed = Signature::from_der(&der).unwrap();
    assert!(key.verifying_key().verify_prehash(&hash, &parsed).is_ok());
    c.stop().await;
}

mpc_store::backend_tests!(
    sign_completes_with_a_verified_signature,
    sign_completes_with_a_verified_signature
);

#[tokio::test]
async fn a_wrong_signature_fails_the_session() {
    let t = TestDb::sqlite().await;
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let key = test_key();
    let hash = [0x11; 32];
    let created = client
        .create_session(sign_request(public_key_bytes(&key), hash))
        .await
        .unwrap()
        .into_inner();
    let id = session_id(&created);
    let tokens = join_all(&mut client, &created, &["user_device", "server_party_2"]).await;

    // Signed by a key that is not the session's.
    let forged = sign(&test_key(), &hash);
    let err = api_error(
        client
            .report_completion(signature_report(&tokens[0], forged))
            .await,
    );
    assert_eq!(err.code, ErrorCode::ProtocolFailed);
    assert!(
        err.message.starts_with("sign failed: invalid signature"),
        "{}",
        err.message
    );
    let failed = c.bus.wait_for(EventKind::Failed, id).await;
    assert!(
        failed
            .failure_reason
            .unwrap()
            .starts_with("sign failed: invalid signature")
    );
    let info = client
        .get_session(pb::GetSessionRequest {
            session_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&info), pb::SessionStatus::Failed);
    assert!(info.signature.is_none());
    // Nothing completes it afterwards, not even the right signature.
    let right = sign(&key, &hash);
    assert_eq!(
        code(
            client
                .report_completion(signature_report(&tokens[1], right))
                .await
        ),
        ErrorCode::FailedPrecondition
    );
    c.stop().await;
}

#[tokio::test]
async fn keygen_fails_when_parties_report_different_keys() {
    let t = TestDb::sqlite().await;
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let created = client
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();
    let id = session_id(&created);
    let tokens = join_all(
        &mut client,
        &created,
        &["user_device", "server_party_1", "server_party_2"],
    )
    .await;
    let report = |token: &str, key: Vec<u8>| pb::ReportCompletionRequest {
        join_token: token.into(),
        result: Some(pb::report_completion_request::Result::Key(pb::KeyResult {
            public_key: key,
        })),
    };
    client
        .report_completion(report(&tokens[0], public_key_bytes(&test_key())))
        .await
        .unwrap();
    let err = api_error(
        client
            .report_completion(report(&tokens[1], public_key_bytes(&test_key())))
            .await,
    );
    assert_eq!(err.code, ErrorCode::ProtocolFailed);
    assert_eq!(err.message, "keygen failed: public key mismatch");
    let event = c.bus.wait_for(EventKind::Failed, id).await;
    assert_eq!(
        event.failure_reason.as_deref(),
        Some("keygen failed: public key mismatch")
    );
    let info = client
        .get_session(pb::GetSessionRequest {
            session_id: id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(info.public_key.is_empty(), "a failed keygen has no key");
    c.stop().await;
}

#[tokio::test]
async fn a_party_reports_failure_and_blames_another() {
    let t = TestDb::sqlite().await;
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let key = test_key();
    let created = client
        .create_session(sign_request(public_key_bytes(&key), [9; 32]))
        .await
        .unwrap()
        .into_inner();
    let id = session_id(&created);
    let tokens = join_all(&mut client, &created, &["user_device", "server_party_2"]).await;

    // Blaming someone who is not in the session is refused.
    let bogus = client
        .report_failure(pb::ReportFailureRequest {
            join_token: tokens[0].clone(),
            reason: "x".into(),
            blamed_party_id: "stranger".into(),
            overloaded: false,
        })
        .await;
    assert_eq!(code(bogus), ErrorCode::InvalidArgument);

    let failed = client
        .report_failure(pb::ReportFailureRequest {
            join_token: tokens[0].clone(),
            reason: "party server_party_2 sent an invalid message".into(),
            blamed_party_id: "server_party_2".into(),
            overloaded: false,
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(status(&failed), pb::SessionStatus::Failed);
    assert_eq!(
        failed.failure_reason,
        "sign failed: party server_party_2 sent an invalid message"
    );
    assert_eq!(failed.blamed_party_id, "server_party_2");
    assert!(
        failed
            .participants
            .iter()
            .all(|p| p.status == i32::from(pb::ParticipantStatus::Failed))
    );
    let event = c.bus.wait_for(EventKind::Failed, id).await;
    assert_eq!(
        event.blamed_party,
        Some(PartyId::parse("server_party_2").unwrap())
    );

    // The other party noticing the same failure is fine; the session stays as the first left it.
    let second = client
        .report_failure(pb::ReportFailureRequest {
            join_token: tokens[1].clone(),
            reason: "aborted".into(),
            blamed_party_id: String::new(),
            overloaded: false,
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(second.blamed_party_id, "server_party_2");
    assert_eq!(
        c.bus
            .events_of(id)
            .iter()
            .filter(|e| e.kind == EventKind::Failed)
            .count(),
        1
    );
    // A failed session has no roster.
    let roster = client
        .get_roster(pb::GetRosterRequest {
            join_token: tokens[1].clone(),
        })
        .await;
    assert_eq!(code(roster), ErrorCode::FailedPrecondition);
    c.stop().await;
}

#[tokio::test]
async fn reports_before_start_are_refused() {
    let t = TestDb::sqlite().await;
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let created = client
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();
    let token = created.join_tokens["user_device"].clone();
    let report = pb::ReportCompletionRequest {
        join_token: token.clone(),
        result: Some(pb::report_completion_request::Result::Key(pb::KeyResult {
            public_key: public_key_bytes(&test_key()),
        })),
    };
    let err = api_error(client.report_completion(report.clone()).await);
    assert_eq!(err.code, ErrorCode::FailedPrecondition);
    assert_eq!(err.message, "session has not started");
    client.join_session(join_request(&token)).await.unwrap();
    assert_eq!(
        code(client.report_completion(report).await),
        ErrorCode::FailedPrecondition
    );
    // A keygen reports a key, not a signature.
    let wrong_kind = signature_report(&token, (vec![1; 32], vec![1; 32], 0));
    assert_eq!(
        code(client.report_completion(wrong_kind).await),
        ErrorCode::InvalidArgument
    );
    let info = client
        .get_session(pb::GetSessionRequest {
            session_id: created.session_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&info), pb::SessionStatus::Waiting);
    c.stop().await;
}
