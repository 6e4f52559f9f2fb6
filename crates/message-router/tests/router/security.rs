//! Token and input checks: every problem is a 4xx-class `ApiError` with a stable code.

use std::time::{Duration, SystemTime};

use mpc_proto::ErrorCode;
use mpc_proto::pb::mpc::router::v1::MpcMessage;
use mpc_store::testing::TestDb;

use crate::common::*;

fn tamper(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    // Change one character of the claims: the signature no longer matches.
    let mut claims = parts[1].clone().into_bytes();
    claims[10] = if claims[10] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(claims).unwrap();
    parts.join(".")
}

async fn token_problems_are_invalid_join_token(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b"]);
    let other_session = f.coordinator.session(&["a", "b"]);
    let expired = f
        .coordinator
        .session_until(&["a", "b"], SystemTime::now() - Duration::from_secs(60));
    let foreign = Coordinator::new().session(&["a", "b"]);
    let mut client = f.client().await;

    let bad_tokens = [
        ("tampered", tamper(&s.token("a"))),
        ("other session", other_session.token("a")),
        ("other coordinator", foreign.token("a")),
        ("garbage", "not.a.token".to_owned()),
        ("empty", String::new()),
    ];
    for (what, token) in &bad_tokens {
        let env = s.envelope("a", "b", 1, b"x");
        assert_eq!(
            code(route(&mut client, token, env).await),
            ErrorCode::InvalidJoinToken,
            "route with {what} token"
        );
        assert_eq!(
            code(subscribe_with_token(&mut client, &s, token, "a", 0).await),
            ErrorCode::InvalidJoinToken,
            "subscribe with {what} token"
        );
    }
    // An expired token, for its own session.
    let env = expired.envelope("a", "b", 1, b"x");
    assert_eq!(
        code(route(&mut client, &expired.token("a"), env).await),
        ErrorCode::InvalidJoinToken
    );
    assert_eq!(
        code(fetch(&mut client, &expired, "b", 0, 0, 0).await),
        ErrorCode::InvalidJoinToken
    );
    // The guide's wording reaches the client.
    let err = route(&mut client, "", s.envelope("a", "b", 1, b"x"))
        .await
        .unwrap_err();
    assert_eq!(err.message, "invalid join token");
    f.stop().await;
}
mpc_store::backend_tests!(bad_tokens, token_problems_are_invalid_join_token);

async fn a_party_acts_only_as_itself(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b", "c"]);
    let mut client = f.client().await;

    // b's token cannot send as a.
    let err = route(
        &mut client,
        &s.token("b"),
        s.envelope("a", "c", 1, b"forged"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::PermissionDenied);
    assert_eq!(err.message, "from_party does not match the join token");
    // a's token cannot read b's mailbox, by stream or by fetch.
    let a_token = s.token("a");
    assert_eq!(
        code(subscribe_with_token(&mut client, &s, &a_token, "b", 0).await),
        ErrorCode::PermissionDenied
    );
    let err = client
        .fetch_messages(mpc_proto::pb::mpc::router::v1::FetchMessagesRequest {
            join_token: a_token,
            session_id: s.id.to_string(),
            party_id: "b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        mpc_proto::ApiError::from_status(&err).code,
        ErrorCode::PermissionDenied
    );
    // Nothing forged was stored.
    assert!(
        fetch(&mut client, &s, "c", 0, 0, 0)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    f.stop().await;
}
mpc_store::backend_tests!(impersonation, a_party_acts_only_as_itself);

/// Makes a good envelope bad in one way.
type Spoil = fn(&mut MpcMessage);

async fn malformed_envelopes_are_invalid_argument(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f.coordinator.session(&["a", "b"]);
    let mut client = f.client().await;
    let token = s.token("a");
    let cases: [(&str, Spoil); 6] = [
        ("unknown recipient", |e| e.to_party = "mallory".into()),
        ("to itself", |e| e.to_party = "a".into()),
        ("bad recipient name", |e| {
            e.to_party = "no spaces allowed".into()
        }),
        ("bad message id", |e| e.message_id = "42".into()),
        ("bad session id", |e| e.session_id = "yesterday".into()),
        ("empty payload", |e| e.payload.clear()),
    ];
    for (what, change) in cases {
        let mut env = s.envelope("a", "b", 1, b"x");
        change(&mut env);
        assert_eq!(
            code(route(&mut client, &token, env).await),
            ErrorCode::InvalidArgument,
            "{what}"
        );
    }
    let missing = client
        .route_message(mpc_proto::pb::mpc::router::v1::RouteMessageRequest {
            join_token: token,
            envelope: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        mpc_proto::ApiError::from_status(&missing).code,
        ErrorCode::InvalidArgument
    );
    f.stop().await;
}
mpc_store::backend_tests!(malformed, malformed_envelopes_are_invalid_argument);

async fn payload_limit_is_enforced(t: TestDb) {
    let f = Fixture::start_with(t, |c| c.max_payload_bytes = 1024).await;
    let s = f.coordinator.session(&["a", "b"]);
    let mut client = f.client().await;
    let token = s.token("a");
    route(&mut client, &token, s.envelope("a", "b", 1, &[1; 1024]))
        .await
        .unwrap();
    let err = route(&mut client, &token, s.envelope("a", "b", 1, &[1; 1025]))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::PayloadTooLarge);
    assert!(err.message.contains("1024"), "{}", err.message);
    // Far beyond the limit the transport refuses to read the request at all: still a client
    // error, never an internal one.
    let err = route(
        &mut client,
        &token,
        s.envelope("a", "b", 1, &[1; 3 * 1024 * 1024]),
    )
    .await
    .unwrap_err();
    assert!(err.code.http_status().is_client_error(), "{err:?}");
    assert_eq!(
        fetch(&mut client, &s, "b", 0, 0, 0)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    f.stop().await;
}
mpc_store::backend_tests!(payload_limit, payload_limit_is_enforced);

/// A subscription authenticated by a token does not outlive it (plus the verifier's leeway).
async fn subscription_ends_when_the_token_expires(t: TestDb) {
    let f = Fixture::start(t).await;
    let s = f
        .coordinator
        .session_until(&["a", "b"], SystemTime::now() + Duration::from_secs(1));
    let mut client = f.client().await;
    let mut stream = subscribe(&mut client, &s, "b", 0).await.unwrap();
    assert_eq!(
        stream_error(&mut stream).await.code,
        ErrorCode::InvalidJoinToken
    );
    f.stop().await;
}
mpc_store::backend_tests!(token_expiry, subscription_ends_when_the_token_expires);
