//! The flows with a user device through the Server Party API and real server parties
//! (coordinator, router, server parties and the API in this process, port 0), every signature
//! checked with k256 (verify, low-s, ecrecover, DER):
//! - 2-of-3 keygen (device + server parties 1 and 2), the share sealed to the device's P-256 key
//!   and opened with the independent HPKE implementation; sign device + server party 1 and
//!   server parties 1 + 2; refresh keeps the key and gives the device a new share; recovery of
//!   the lost device share gives a new share for the same address; the old device shares no
//!   longer sign — on SQLite and on PostgreSQL; on SQLite also the rebuild of a lost *server*
//!   share with the device's help (the device's share is renewed too);
//! - 3-of-5 and 4-of-7 keygen and sign with one device.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mpc_protocol::PublicKey;
use mpc_testkit::{Backend, http};
use p256::elliptic_curve::sec1::ToSec1Point;
use serde_json::json;

/// A sign with a share that is no longer the device's: the API answers an error and the session
/// fails.
async fn stale_share_does_not_sign(
    cluster: &mpc_testkit::Cluster,
    key: &Key,
    share: &str,
    server: usize,
) {
    let (_, created, r) = sign_with_device(cluster, key, share, &[server]).await;
    let (code, message) = error(&r, 422);
    assert_eq!(code, "protocol_failed");
    assert!(message.starts_with("sign failed: "), "{message}");
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_ne!(
        mpc_testkit::status(&info),
        mpc_proto::pb::mpc::coordinator::v1::SessionStatus::Completed,
        "a stale share signed"
    );
}

async fn device_lifecycle(backend: Backend, rebuild_a_server_share: bool) {
    let Some(mut cluster) = cluster(backend, 2).await else {
        return;
    };
    // The device's P-256 key: the share comes back sealed to it.
    let device_sk = p256::SecretKey::from_slice(&[0x5a; 32]).unwrap();
    let device_pk = hex::encode(device_sk.public_key().to_sec1_point(true).as_bytes());
    let key_id = format!("acct-{}", uuid::Uuid::new_v4().simple());
    let (key, r, _) = keygen(
        &cluster,
        2,
        &key_id,
        json!({ "user_public_key": device_pk }),
    )
    .await;
    let sealed = r.body["share_data"].as_str().unwrap().to_owned();
    assert!(sealed.starts_with(&hex::encode(b"MPCHPKE\x01")));
    let share =
        hpke_ref::open_share_data(&device_sk.to_bytes(), &key_id, device().as_str(), &sealed)
            .expect("the device opens its sealed share");
    // Still sealed, it is refused (the device must open it first).
    let (_, _, refused) = sign_with_device(&cluster, &key, &sealed, &[0]).await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    sign_ok(&cluster, &key, &share, &[0]).await;
    sign_servers_ok(&cluster, &key, &[0, 1]).await;

    // Refresh: same key, new device share (unsealed this time).
    let (r, created) = refresh(&cluster, &key, &share).await;
    assert_ok(&r);
    assert_eq!(r.body["public_key"], hex::encode(&key.public_key));
    let refreshed = r.body["share_data"].as_str().unwrap().to_owned();
    assert_ne!(refreshed, share);
    wait_active(&cluster, &[0, 1], &key_id, &created.session_id).await;
    sign_ok(&cluster, &key, &refreshed, &[1]).await;

    // The device is lost: recovery rebuilds its share at index 0 for the same address.
    let address = PublicKey::from_sec1(&key.public_key).unwrap().eth_address();
    let (r, created) = recover(&cluster, &key, &[0, 1], json!({})).await;
    assert_ok(&r);
    assert_eq!(r.body["party_index"], 0);
    let recovered_key =
        PublicKey::from_sec1(&hex::decode(r.body["public_key"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(recovered_key.eth_address(), address, "same address");
    let recovered = r.body["share_data"].as_str().unwrap().to_owned();
    assert_ne!(recovered, refreshed);
    wait_active(&cluster, &[0, 1], &key_id, &created.session_id).await;
    sign_ok(&cluster, &key, &recovered, &[0]).await;
    sign_ok(&cluster, &key, &recovered, &[1]).await;

    // The old device shares no longer sign with the servers' current shares.
    stale_share_does_not_sign(&cluster, &key, &share, 0).await;
    stale_share_does_not_sign(&cluster, &key, &refreshed, 1).await;
    // The servers still sign together.
    sign_servers_ok(&cluster, &key, &[0, 1]).await;

    // (Before the rebuild: the API restarts with it, and its counters with it.)
    let metrics = http::get(cluster.party_api().http, "/metrics")
        .await
        .unwrap()
        .text();
    for ty in ["keygen", "refresh", "recovery"] {
        let completed = http::metric(
            &metrics,
            "mpc_party_api_sessions_total",
            &[&format!("type=\"{ty}\""), "outcome=\"completed\""],
        );
        assert_eq!(completed, Some(1.0), "{ty}: {metrics}");
    }

    if rebuild_a_server_share {
        // Server party 2 loses its database; the device (through the API) and server party 1
        // rebuild its share. Every participant's share is renewed, the device's too.
        cluster.replace_party_database(1).await;
        let created = cluster
            .create_session(mpc_testkit::recovery_request(
                participants(&cluster, true, &[0, 1]),
                key.threshold,
                &key_id,
                &key.public_key,
                &cluster.party_id(1),
                &[device(), cluster.party_id(0)],
            ))
            .await;
        let (_, message) = error(
            &cluster
                .party_api()
                .post(RECOVERY, &request(&created, json!({})))
                .await,
            400,
        );
        assert!(message.contains("not this recovery's target"), "{message}");
        let r = cluster
            .party_api()
            .post(
                RECOVERY,
                &request(&created, json!({ "share_data": recovered })),
            )
            .await;
        assert_ok(&r);
        assert_eq!(r.body["public_key"], hex::encode(&key.public_key));
        let renewed = r.body["share_data"].as_str().unwrap().to_owned();
        wait_active(&cluster, &[0, 1], &key_id, &created.session_id).await;
        sign_ok(&cluster, &key, &renewed, &[1]).await;
        sign_servers_ok(&cluster, &key, &[0, 1]).await;
        stale_share_does_not_sign(&cluster, &key, &recovered, 1).await;
    }

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_keygen_sign_refresh_recover_and_rebuild_a_server_share_sqlite() {
    device_lifecycle(Backend::Sqlite, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_keygen_sign_refresh_recover_postgres() {
    device_lifecycle(Backend::Postgres, false).await;
}

/// 3-of-5: the device and four server parties; the device signs with two of them, and three
/// server parties sign without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_of_five_with_a_device() {
    let cluster = cluster(Backend::Sqlite, 4).await.unwrap();
    let (key, r, _) = keygen(&cluster, 3, "acct-35", json!({})).await;
    let share = r.body["share_data"].as_str().unwrap().to_owned();
    sign_ok(&cluster, &key, &share, &[0, 2]).await;
    sign_ok(&cluster, &key, &share, &[1, 3]).await;
    sign_servers_ok(&cluster, &key, &[0, 1, 3]).await;
    cluster.shutdown().await;
}

/// 4-of-7: the device and six server parties (on PostgreSQL, so both backends see a large
/// session); one sign with the device, one without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_of_seven_with_a_device() {
    let Some(cluster) = cluster(Backend::Postgres, 6).await else {
        return;
    };
    let (key, r, _) = keygen(&cluster, 4, "acct-47", json!({})).await;
    let share = r.body["share_data"].as_str().unwrap().to_owned();
    sign_ok(&cluster, &key, &share, &[0, 3, 5]).await;
    sign_servers_ok(&cluster, &key, &[1, 2, 4, 5]).await;
    cluster.shutdown().await;
}
