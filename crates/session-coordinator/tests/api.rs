//! The API surface: join-token checks, request validation over gRPC and HTTP, the service token,
//! the HTTP shapes and ops routes, and a property test over CreateSession.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{ErrorCode, PartyId, SessionId, SessionType, TokenSigner};
use mpc_store::testing::TestDb;
use secrecy::SecretString;
use serde_json::json;
use tokio_stream::StreamExt;

fn invalid<T>(result: Result<T, tonic::Status>) {
    let e = api_error(result);
    assert_eq!(e.code, ErrorCode::InvalidJoinToken);
    assert_eq!(e.message, "invalid join token");
}

#[tokio::test]
async fn join_tokens_are_checked() {
    let t = TestDb::sqlite().await;
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let a = client
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();
    let b = client
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();
    let (a_id, b_id) = (session_id(&a), session_id(&b));
    let token = a.join_tokens["user_device"].clone();

    // Tampered: one character of the claims changed.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = parts[1].clone().into_bytes();
    claims[10] = if claims[10] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(claims).unwrap();
    invalid(client.join_session(join_request(&parts.join("."))).await);
    invalid(client.join_session(join_request("not a token")).await);

    // Signed by another key.
    let parties = vec![PartyId::parse("user_device").unwrap()];
    let later = SystemTime::now() + Duration::from_secs(600);
    let stranger = TokenSigner::generate().unwrap();
    let foreign = stranger
        .issue(
            a_id,
            parties[0].clone(),
            0,
            SessionType::Keygen,
            parties.clone(),
            later,
        )
        .unwrap();
    invalid(client.join_session(join_request(&foreign)).await);

    // Correctly signed (the tests know the seed) but expired, or for a party not in the session,
    // or for the right party with the wrong index.
    let ours = TokenSigner::from_seed(&SEED);
    let expired = ours
        .issue(
            a_id,
            parties[0].clone(),
            0,
            SessionType::Keygen,
            parties.clone(),
            SystemTime::now() - Duration::from_secs(60),
        )
        .unwrap();
    invalid(client.join_session(join_request(&expired)).await);
    let outsider = PartyId::parse("mallory").unwrap();
    let not_invited = ours
        .issue(
            a_id,
            outsider.clone(),
            0,
            SessionType::Keygen,
            vec![outsider],
            later,
        )
        .unwrap();
    invalid(client.join_session(join_request(&not_invited)).await);
    let wrong_index = ours
        .issue(
            a_id,
            parties[0].clone(),
            2,
            SessionType::Keygen,
            parties.clone(),
            later,
        )
        .unwrap();
    invalid(client.join_session(join_request(&wrong_index)).await);
    // A valid token for a session that does not exist.
    let ghost = ours
        .issue(
            SessionId::new_random(),
            parties[0].clone(),
            0,
            SessionType::Keygen,
            parties,
            later,
        )
        .unwrap();
    assert_eq!(
        code(client.join_session(join_request(&ghost)).await),
        ErrorCode::SessionNotFound
    );

    // Replay of session A's token against session B (watching B with A's token).
    let replay = client
        .watch_session(pb::WatchSessionRequest {
            session_id: b_id.to_string(),
            join_token: token.clone(),
        })
        .await;
    invalid(replay);
    // Roster and reports need a valid token too.
    invalid(
        client
            .get_roster(pb::GetRosterRequest {
                join_token: parts.join("."),
            })
            .await,
    );

    // Nothing of the above changed session A.
    let info = client
        .get_session(pb::GetSessionRequest {
            session_id: a_id.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&info), pb::SessionStatus::Created);
    c.stop().await;
}

#[tokio::test]
async fn create_session_validation_over_grpc_and_http() {
    let t = TestDb::sqlite().await;
    let c = Running::on(&t).await;
    let mut client = c.client().await;
    let key = public_key_bytes(&test_key());

    let mut one_signer = sign_request(key.clone(), [1; 32]);
    one_signer.participants.pop();
    let err = api_error(client.create_session(one_signer).await);
    assert_eq!(err.code, ErrorCode::InsufficientParticipants);
    assert!(err.message.starts_with("insufficient participants"));

    let mut dup = keygen_request();
    dup.participants[1].party_id = "user_device".into();
    assert_eq!(
        code(client.create_session(dup).await),
        ErrorCode::DuplicatePartyId
    );
    let mut bad_t = keygen_request();
    bad_t.threshold_t = 4;
    assert_eq!(
        code(client.create_session(bad_t).await),
        ErrorCode::InvalidThreshold
    );
    let bad_hash = sign_request(key.clone(), [1; 32]);
    let bad_hash = pb::CreateSessionRequest {
        message_hash: vec![1; 20],
        ..bad_hash
    };
    assert_eq!(
        code(client.create_session(bad_hash).await),
        ErrorCode::InvalidMessageHash
    );
    let unspecified = pb::CreateSessionRequest {
        session_type: 0,
        ..keygen_request()
    };
    assert_eq!(
        code(client.create_session(unspecified).await),
        ErrorCode::InvalidArgument
    );
    let unknown = client
        .get_session(pb::GetSessionRequest {
            session_id: SessionId::new_random().to_string(),
        })
        .await;
    let err = api_error(unknown);
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::SessionNotFound, "session not found")
    );

    // The same over HTTP, with the guide's JSON.
    let keygen = json!({
        "session_type": "keygen", "threshold_n": 3, "threshold_t": 2, "key_id": "account-1",
        "participants": [
            {"party_id": "user_device_12345", "device_type": "android", "device_id": "x"},
            {"party_id": "server_party_1", "device_type": "server", "platform": "linux"},
            {"party_id": "server_party_2", "device_type": "server"}
        ]
    });
    let post = |body: serde_json::Value| http(c.http, "POST", "/api/v1/sessions", Some(body), None);
    let ok = post(keygen.clone()).await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    assert_eq!(ok.body["session_type"], "keygen");
    assert_eq!(ok.body["status"], "created");
    assert_eq!(ok.body["threshold_n"], 3);
    assert_eq!(ok.body["threshold_t"], 2);
    assert_eq!(ok.body["join_tokens"].as_object().unwrap().len(), 3);
    assert!(
        ok.body["join_tokens"]["user_device_12345"]
            .as_str()
            .unwrap()
            .starts_with("ey")
    );
    assert!(SessionId::parse(ok.body["session_id"].as_str().unwrap()).is_ok());
    assert!(ok.body["expires_at"].is_string());

    let error_code = |r: &HttpResponse| {
        r.body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let mut two = keygen.clone();
    two["participants"].as_array_mut().unwrap().pop();
    let r = post(two).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "insufficient_participants")
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("insufficient participants")
    );
    let mut dup = keygen.clone();
    dup["participants"][2]["party_id"] = json!("server_party_1");
    let r = post(dup).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "duplicate_party_id")
    );
    let mut bad_n = keygen.clone();
    bad_n["threshold_n"] = json!(1);
    let r = post(bad_n).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "invalid_threshold")
    );
    let sign = |hash: &str| {
        json!({
            "session_type": "sign", "threshold_n": 3, "threshold_t": 2, "account_id": "account-1",
            "message_hash": hash, "public_key": hex::encode(&key),
            "participants": [
                {"party_id": "user_device_12345", "device_type": "android", "party_index": 0},
                {"party_id": "server_party_1", "device_type": "server", "party_index": 1}
            ]
        })
    };
    let r = post(sign(&"ab".repeat(32))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["message_hash"], "ab".repeat(32));
    for bad in ["0x1234", "abc", &"ab".repeat(31)] {
        let r = post(sign(bad)).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (400, "invalid_message_hash"),
            "{bad}"
        );
    }
    let r = post(json!({"session_type": "keygen"})).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "invalid_argument")
    );
    let r = post(
        json!({"session_type": "dance", "threshold_n": 3, "threshold_t": 2, "participants": []}),
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "invalid_argument")
    );

    let r = http(
        c.http,
        "GET",
        &format!("/api/v1/sessions/{}", SessionId::new_random()),
        None,
        None,
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "session_not_found")
    );
    assert_eq!(r.body["error"]["message"], "session not found");
    let r = http(c.http, "GET", "/api/v1/sessions/not-a-uuid", None, None).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "invalid_argument")
    );
    let r = http(c.http, "GET", "/api/v1/nothing-here", None, None).await;
    assert_eq!(r.status, 404);
    c.stop().await;
}

#[tokio::test]
async fn the_service_token_guards_service_calls_only() {
    let t = TestDb::sqlite().await;
    let mut config = config();
    config.service_token = Some(SecretString::from("s3rvice-token".to_owned()));
    let c = Running::start(t.db.clone(), RecordingBus::new(), config).await;
    let mut client = c.client().await;

    let err = api_error(client.create_session(keygen_request()).await);
    assert_eq!(err.code, ErrorCode::InvalidApiKey);
    let mut wrong = tonic::Request::new(keygen_request());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer s3rvice-tokem".parse().unwrap());
    assert_eq!(
        code(client.create_session(wrong).await),
        ErrorCode::InvalidApiKey
    );
    let mut right = tonic::Request::new(keygen_request());
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3rvice-token".parse().unwrap());
    let created = client.create_session(right).await.unwrap().into_inner();

    let get = pb::GetSessionRequest {
        session_id: created.session_id.clone(),
    };
    assert_eq!(
        code(client.get_session(get.clone()).await),
        ErrorCode::InvalidApiKey
    );
    let watch_anonymously = pb::WatchSessionRequest {
        session_id: created.session_id.clone(),
        join_token: String::new(),
    };
    assert_eq!(
        code(client.watch_session(watch_anonymously).await),
        ErrorCode::InvalidApiKey
    );
    // Parties use their join tokens, not the service token.
    let token = created.join_tokens["user_device"].clone();
    client.join_session(join_request(&token)).await.unwrap();
    let mut stream = client
        .watch_session(pb::WatchSessionRequest {
            session_id: created.session_id.clone(),
            join_token: token,
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(status(&first), pb::SessionStatus::Waiting);

    let body = serde_json::to_value(json!({
        "session_type": "keygen", "threshold_n": 2, "threshold_t": 2, "key_id": "k",
        "participants": [{"party_id": "a"}, {"party_id": "b"}]
    }))
    .unwrap();
    let r = http(c.http, "POST", "/api/v1/sessions", Some(body.clone()), None).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let r = http(
        c.http,
        "POST",
        "/api/v1/sessions",
        Some(body),
        Some("s3rvice-token"),
    )
    .await;
    assert_eq!(r.status, 201);
    let path = format!("/api/v1/sessions/{}", created.session_id);
    assert_eq!(http(c.http, "GET", &path, None, None).await.status, 401);
    assert_eq!(
        http(c.http, "GET", &path, None, Some("s3rvice-token"))
            .await
            .status,
        200
    );
    // Public: the key that verifies join tokens, and the ops routes.
    let key = http(c.http, "GET", "/api/v1/join-token-key", None, None).await;
    assert_eq!(key.status, 200);
    assert_eq!(
        key.body["public_key"],
        hex::encode(TokenSigner::from_seed(&SEED).public_key())
    );
    let grpc_key = client
        .get_join_token_key(pb::GetJoinTokenKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        grpc_key.public_key,
        TokenSigner::from_seed(&SEED).public_key()
    );
    assert_eq!(
        http(c.http, "GET", "/healthz", None, None).await.status,
        200
    );
    assert_eq!(http(c.http, "GET", "/readyz", None, None).await.status, 200);
    c.bus.set_failing(true);
    let not_ready = http(c.http, "GET", "/readyz", None, None).await;
    assert_eq!(not_ready.status, 503);
    c.stop().await;
}

mod property {
    use proptest::prelude::*;

    use super::*;

    fn request() -> impl Strategy<Value = pb::CreateSessionRequest> {
        let participant = (
            "[a-d]{0,2}|\\PC{0,6}",
            "server|android|\\PC{0,3}",
            proptest::option::of(0u32..18),
        )
            .prop_map(|(party_id, device_type, party_index)| pb::ParticipantSpec {
                party_id,
                device_type,
                party_index,
            });
        (
            -1i32..6,
            0u32..18,
            0u32..18,
            proptest::collection::vec(participant, 0..18),
            "[a-z0-9]{0,4}|\\PC{0,4}",
            proptest::collection::vec(any::<u8>(), 0..40),
            prop_oneof![
                Just(public_key_bytes(&test_key())),
                proptest::collection::vec(any::<u8>(), 0..70)
            ],
            any::<u32>(),
        )
            .prop_map(
                |(ty, t, n, participants, key_id, message_hash, public_key, lifetime_seconds)| {
                    pb::CreateSessionRequest {
                        session_type: ty,
                        threshold_t: t,
                        threshold_n: n,
                        participants,
                        key_id,
                        message_hash,
                        public_key,
                        recovery: None,
                        lifetime_seconds,
                    }
                },
            )
    }

    /// Random CreateSession requests are accepted or refused with a 4xx code; the coordinator
    /// keeps serving either way.
    #[test]
    fn create_session_never_fails_with_a_server_error() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (c, client, _db) = rt.block_on(async {
            let t = TestDb::sqlite().await;
            let c = Running::on(&t).await;
            let client = c.client().await;
            (c, client, t)
        });
        let config = ProptestConfig {
            cases: 64,
            ..ProptestConfig::default()
        };
        proptest!(config, |(req in request())| {
            let mut client = client.clone();
            let result = rt.block_on(client.create_session(req));
            match result {
                Ok(created) => {
                    let created = created.into_inner();
                    prop_assert_eq!(created.join_tokens.len(), created.session.unwrap().participants.len());
                }
                Err(status) => {
                    let e = mpc_proto::ApiError::from_status(&status);
                    prop_assert!(e.code.http_status().is_client_error(), "{:?}", e);
                }
            }
        });
        rt.block_on(c.stop());
    }
}
