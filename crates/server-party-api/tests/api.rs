//! The API's checks over real HTTP and gRPC (coordinator, router, two server parties and the
//! API in this process, port 0), on SQLite and PostgreSQL. The key is the committed 2-of-3 test
//! key (device at index 0, server parties at 1 and 2), so no test pays for a keygen:
//! - authentication: no key, a wrong key, an access token for the session's account (accepted)
//!   or another's (403);
//! - the join token: another session's, another party's, garbage, another session type;
//! - `share_data`: of another party, of another account, altered, not hex, still sealed;
//! - the message hash: not the session's, not hex;
//! - none of those refusals touches the session: the same session then signs;
//! - a caller that goes away mid-session makes the party report a failure; a second request
//!   for a party already in the session is refused without harming the first;
//! - identity, readiness and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{AccountId, Threshold};
use mpc_testkit::{Backend, Cluster, http};
use serde_json::json;
use server_party_api::share::{ShareOwner, to_share_data};

/// The fixture key imported into both server parties under a fresh account id.
async fn fixture_key(cluster: &Cluster) -> (Key, AccountId) {
    let account = AccountId::new_random();
    let key_id = account.to_string();
    let shares = mpc_testkit::fixture_shares();
    cluster.import_share(0, &key_id, &shares[1]).await;
    cluster.import_share(1, &key_id, &shares[2]).await;
    let key = Key {
        key_id,
        threshold: Threshold { t: 2, n: 3 },
        public_key: shares[0].public_key().to_uncompressed().to_vec(),
    };
    (key, account)
}

/// The device's fixture share wrapped as the API would hand it out, for `party` and `key_id`.
fn share_data(cluster: &Cluster, key_id: &str, party: &str) -> String {
    let shares = mpc_testkit::fixture_shares();
    let party = pid(party);
    let owner = ShareOwner {
        key_id,
        party_id: &party,
        party_index: 0,
    };
    to_share_data(&cluster.party_api().share_keys(), &owner, &shares[0], None).unwrap()
}

async fn checks(backend: Backend) {
    let Some(cluster) = cluster(backend, 2).await else {
        return;
    };
    let api = cluster.party_api();
    let (key, account) = fixture_key(&cluster).await;
    let mine = share_data(&cluster, &key.key_id, "user_device_1");

    // The happy path first: the device and server party 1 sign.
    sign_ok(&cluster, &key, &mine, &[0]).await;

    // One session for all the refusals; it must still sign afterwards.
    let (hash, created) = sign_session(&cluster, &key, true, &[1]).await;
    let good = request(
        &created,
        json!({ "share_data": mine, "message_hash": hash.to_hex() }),
    );
    let with = |changes: serde_json::Value| {
        let mut b = good.clone();
        b.as_object_mut()
            .unwrap()
            .extend(changes.as_object().unwrap().clone());
        b
    };

    // Authentication.
    let (code, _) = error(&api.post_with(SIGN, &[], &good).await, 401);
    assert_eq!(code, "invalid_api_key");
    let (code, _) = error(
        &api.post_with(SIGN, &[("x-api-key", "nope")], &good).await,
        401,
    );
    assert_eq!(code, "invalid_api_key");
    let other_account = format!("Bearer {}", api.access_token(AccountId::new_random()));
    let (code, message) = error(
        &api.post_with(SIGN, &[("authorization", &other_account)], &good)
            .await,
        403,
    );
    assert_eq!(code, "permission_denied");
    assert!(message.contains("another account"), "{message}");

    // Join tokens.
    let (other_hash, other_session) = sign_session(&cluster, &key, true, &[0]).await;
    let (code, message) = error(
        &api.post(
            SIGN,
            &with(json!({ "session_id": other_session.session_id })),
        )
        .await,
        401,
    );
    assert_eq!(code, "invalid_join_token");
    assert!(message.contains("another session"), "{message}");
    let (code, message) = error(
        &api.post(SIGN, &with(json!({ "party_id": "user_device_2" })))
            .await,
        401,
    );
    assert_eq!(code, "invalid_join_token");
    assert!(message.contains("another party"), "{message}");
    let (_, message) = error(
        &api.post(SIGN, &with(json!({ "join_token": "eyJ.not.a-token" })))
            .await,
        401,
    );
    assert_eq!(message, "invalid join token");
    let (code, message) = error(&api.post(REFRESH, &good).await, 400);
    assert_eq!(code, "invalid_argument");
    assert!(message.contains("sign session"), "{message}");

    // share_data.
    for (party, key_id, what) in [
        ("user_device_2", key.key_id.as_str(), "another party"),
        ("user_device_1", "another-account", "another account"),
    ] {
        let theirs = share_data(&cluster, key_id, party);
        let (code, message) = error(
            &api.post(SIGN, &with(json!({ "share_data": theirs }))).await,
            400,
        );
        assert_eq!(code, "invalid_argument", "{what}");
        assert!(
            message.contains("does not open as the share of party user_device_1"),
            "{what}: {message}"
        );
    }
    let mut altered = hex::decode(&mine).unwrap();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x40;
    let (_, message) = error(
        &api.post(SIGN, &with(json!({ "share_data": hex::encode(altered) })))
            .await,
        400,
    );
    assert!(message.contains("altered"), "{message}");
    let (_, message) = error(
        &api.post(SIGN, &with(json!({ "share_data": "not hex!" })))
            .await,
        400,
    );
    assert_eq!(message, "share_data must be hex");
    let device_key = p256::SecretKey::from_slice(&[7; 32]).unwrap();
    let sealed = {
        let shares = mpc_testkit::fixture_shares();
        let party = device();
        let owner = ShareOwner {
            key_id: &key.key_id,
            party_id: &party,
            party_index: 0,
        };
        let pk = server_party_api::hpke::DevicePublicKey::from_sec1(
            p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&device_key.public_key(), false)
                .as_bytes(),
        )
        .unwrap();
        to_share_data(&api.share_keys(), &owner, &shares[0], Some(&pk)).unwrap()
    };
    let (_, message) = error(
        &api.post(SIGN, &with(json!({ "share_data": sealed }))).await,
        400,
    );
    assert!(message.contains("sealed to the device key"), "{message}");

    // Message hashes.
    let (code, message) = error(
        &api.post(SIGN, &with(json!({ "message_hash": other_hash.to_hex() })))
            .await,
        400,
    );
    assert_eq!(code, "invalid_message_hash");
    assert!(
        message.contains("not the hash this session signs"),
        "{message}"
    );
    let (code, _) = error(
        &api.post(SIGN, &with(json!({ "message_hash": "a1b2c3d4" })))
            .await,
        400,
    );
    assert_eq!(code, "invalid_message_hash");

    // None of that touched the session: the device is still only invited, and now it signs,
    // with an access token for the session's account and a `0x` hash.
    let info = cluster
        .admin()
        .get_session(mpc_proto::SessionId::parse(&created.session_id).unwrap())
        .await
        .unwrap();
    assert_eq!(mpc_testkit::status(&info), pb::SessionStatus::Waiting);
    let bearer = format!("Bearer {}", api.access_token(account));
    let r = api
        .post_with(
            SIGN,
            &[("authorization", &bearer)],
            &with(json!({ "message_hash": format!("0x{}", hash.to_hex()) })),
        )
        .await;
    assert_ok(&r);
    check_signature(&key, &hash, &r.body);
    assert_completed(&cluster.wait_for_end(&created.session_id).await);

    // The other session was not touched either.
    let r = api
        .post(
            SIGN,
            &request(
                &other_session,
                json!({ "share_data": mine, "message_hash": other_hash.to_hex() }),
            ),
        )
        .await;
    assert_ok(&r);
    check_signature(&key, &other_hash, &r.body);

    // Identity, readiness, metrics.
    let identity = http::get(api.http, "/api/v1/identity").await.unwrap();
    assert_eq!(
        identity.body["identity_public_key"],
        api.identity.to_string()
    );
    assert_eq!(http::get(api.http, "/readyz").await.unwrap().status, 200);
    let metrics = http::get(api.http, "/metrics").await.unwrap().text();
    let count = |outcome: &str| {
        http::metric(
            &metrics,
            "mpc_party_api_sessions_total",
            &["type=\"sign\"", &format!("outcome=\"{outcome}\"")],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("completed"), 3.0);
    assert!(count("refused") >= 10.0, "{metrics}");
    assert!(!metrics.contains(&mine[..64]), "no share in metrics");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_before_joining_sqlite() {
    checks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_before_joining_postgres() {
    checks(Backend::Postgres).await;
}

/// A keygen that cannot start (a participant that never joins) holds the device's request; a
/// second request for the device is refused (409) without harming the first; when the caller
/// goes away, the API's party reports a failure at once, naming the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_fails_the_session() {
    let cluster = cluster(Backend::Sqlite, 1).await.unwrap();
    let participants = vec![
        mpc_testkit::participant(&device(), "ios", Some(0)),
        mpc_testkit::server(&cluster.party_id(0), Some(1)),
        mpc_testkit::participant(&pid("never_joins"), "android", Some(2)),
    ];
    let created = cluster
        .create_session(mpc_testkit::keygen_request(participants, 2, "acct-gone"))
        .await;
    let body = request(&created, json!({}));
    let api_addr = cluster.party_api().http;
    let api_key = cluster.party_api().api_key.clone();
    let pending = tokio::spawn(async move {
        http::post_json(api_addr, KEYGEN, &[("x-api-key", &api_key)], &body).await
    });
    let device_joined = |info: &pb::SessionInfo| {
        info.participants.iter().any(|p| {
            p.party_id == device().as_str() && p.status != i32::from(pb::ParticipantStatus::Invited)
        })
    };
    cluster
        .wait_for_session(&created.session_id, "the device to join", device_joined)
        .await;

    let (_, message) = error(
        &cluster
            .party_api()
            .post(KEYGEN, &request(&created, json!({})))
            .await,
        409,
    );
    assert!(message.contains("already joined"), "{message}");

    pending.abort();
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_eq!(mpc_testkit::status(&info), pb::SessionStatus::Failed);
    assert_eq!(
        info.failure_reason,
        "keygen failed: party user_device_1 stopped before the session finished"
    );
    cluster.shutdown().await;
}
