//! Helpers shared by the Server Party API's integration tests: a cluster with the API, sessions
//! where one device joins through the API (at index 0) and server party `k` sits at index `k`,
//! and independent signature checks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod hpke_ref;

use std::time::Duration;

use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_proto::{PartyId, Threshold};
use mpc_protocol::MessageHash;
use mpc_testkit::http::HttpResponse;
use mpc_testkit::{Backend, Cluster, DEADLINE};
use serde_json::{Value, json};

pub const KEYGEN: &str = "/api/v1/keygen/generate-user-share";
pub const SIGN: &str = "/api/v1/sign/with-user-share";
pub const REFRESH: &str = "/api/v1/refresh/with-user-share";
pub const RECOVERY: &str = "/api/v1/recovery/new-user-share";

pub fn pid(s: &str) -> PartyId {
    PartyId::parse(s).unwrap()
}

/// The device party of every test.
pub fn device() -> PartyId {
    pid("user_device_1")
}

/// `servers` server parties and the Server Party API; `None` when PostgreSQL is asked for but
/// not configured (outside CI).
pub async fn cluster(backend: Backend, servers: usize) -> Option<Cluster> {
    Cluster::builder()
        .backend(backend)
        .server_parties(servers)
        .party_api(true)
        .build()
        .await
}

/// A key with the device at index 0 and server party `k` (1-based) at index `k`.
#[derive(Clone, Debug)]
pub struct Key {
    pub key_id: String,
    pub threshold: Threshold,
    /// 65 bytes, uncompressed.
    pub public_key: Vec<u8>,
}

/// The device at index 0 and the server parties `which` (0-based) at their indices.
pub fn participants(
    cluster: &Cluster,
    with_device: bool,
    which: &[usize],
) -> Vec<pb::ParticipantSpec> {
    let device = with_device.then(|| mpc_testkit::participant(&device(), "android", Some(0)));
    device
        .into_iter()
        .chain(
            which
                .iter()
                .map(|i| mpc_testkit::server(&cluster.party_id(*i), Some(*i as u16 + 1))),
        )
        .collect()
}

pub fn assert_completed(info: &pb::SessionInfo) {
    assert_eq!(
        mpc_testkit::status(info),
        pb::SessionStatus::Completed,
        "session failed: {} (blamed: {:?})",
        info.failure_reason,
        info.blamed_party_id
    );
}

pub fn assert_ok(r: &HttpResponse) {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["success"], true, "{}", r.body);
}

/// The error code and message of an error response with `status`.
pub fn error(r: &HttpResponse, status: u16) -> (String, String) {
    assert_eq!(r.status, status, "{}", r.body);
    (
        r.body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        r.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn body(created: &pb::CreateSessionResponse, extra: Value) -> Value {
    let mut b = json!({
        "session_id": created.session_id,
        "party_id": device().as_str(),
        "join_token": created.join_tokens[device().as_str()],
    });
    if let (Some(b), Value::Object(extra)) = (b.as_object_mut(), extra) {
        b.extend(extra);
    }
    b
}

/// Keygen `t`-of-(1 + servers) with the device through the API; returns the key, the API's
/// answer and the session.
pub async fn keygen(
    cluster: &Cluster,
    t: u16,
    key_id: &str,
    extra: Value,
) -> (Key, HttpResponse, pb::CreateSessionResponse) {
    let servers: Vec<usize> = (0..cluster.parties().len()).collect();
    let created = cluster
        .create_session(mpc_testkit::keygen_request(
            participants(cluster, true, &servers),
            t,
            key_id,
        ))
        .await;
    let r = cluster
        .party_api()
        .post(KEYGEN, &body(&created, extra))
        .await;
    assert_ok(&r);
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_completed(&info);
    assert_eq!(r.body["public_key"], hex::encode(&info.public_key));
    assert_eq!(r.body["party_index"], 0);
    assert_eq!(r.body["session_id"], created.session_id);
    assert_eq!(r.body["party_id"], device().as_str());
    let n = 1 + servers.len() as u16;
    let key = Key {
        key_id: key_id.to_owned(),
        threshold: Threshold { t, n },
        public_key: info.public_key,
    };
    wait_active(cluster, &servers, key_id, &created.session_id).await;
    (key, r, created)
}

/// A sign session of a random hash by the device (if `share_data` is given, through the API)
/// and the server parties `which`.
pub async fn sign_session(
    cluster: &Cluster,
    key: &Key,
    with_device: bool,
    which: &[usize],
) -> (MessageHash, pb::CreateSessionResponse) {
    let hash = mpc_testkit::random_hash();
    let created = cluster
        .create_session(mpc_testkit::sign_request(
            participants(cluster, with_device, which),
            key.threshold,
            &key.key_id,
            &key.public_key,
            &hash,
        ))
        .await;
    (hash, created)
}

/// The device (through the API, with `share_data`) and server parties `which` sign a random
/// hash; returns the hash, the session and the API's answer.
pub async fn sign_with_device(
    cluster: &Cluster,
    key: &Key,
    share_data: &str,
    which: &[usize],
) -> (MessageHash, pb::CreateSessionResponse, HttpResponse) {
    let (hash, created) = sign_session(cluster, key, true, which).await;
    let r = cluster
        .party_api()
        .post(
            SIGN,
            &body(
                &created,
                json!({ "share_data": share_data, "message_hash": hash.to_hex() }),
            ),
        )
        .await;
    (hash, created, r)
}

/// Signs with the device and checks the answer and the session's signature with k256.
pub async fn sign_ok(cluster: &Cluster, key: &Key, share_data: &str, which: &[usize]) {
    let (hash, created, r) = sign_with_device(cluster, key, share_data, which).await;
    assert_ok(&r);
    check_signature(key, &hash, &r.body);
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_completed(&info);
    let sig = info
        .signature
        .as_ref()
        .expect("a completed sign has a signature");
    assert_eq!(hex::encode(&sig.r), r.body["r"].as_str().unwrap());
    assert_eq!(hex::encode(&sig.s), r.body["s"].as_str().unwrap());
}

/// Server parties `which` sign without the device.
pub async fn sign_servers_ok(cluster: &Cluster, key: &Key, which: &[usize]) {
    let (hash, created) = sign_session(cluster, key, false, which).await;
    let info = cluster.wait_for_end(&created.session_id).await;
    assert_completed(&info);
    let sig = info
        .signature
        .as_ref()
        .expect("a completed sign has a signature");
    mpc_testkit::assert_valid_signature(&key.public_key, hash.as_bytes(), sig);
}

/// The API's `{signature, r, s, v}` checked independently (k256: verify, low-s, ecrecover, DER).
pub fn check_signature(key: &Key, hash: &MessageHash, body: &Value) {
    let field = |name: &str| hex::decode(body[name].as_str().unwrap()).unwrap();
    let sig = pb::Signature {
        r: field("r"),
        s: field("s"),
        v: u32::try_from(body["v"].as_u64().unwrap()).unwrap(),
        der: field("signature"),
    };
    mpc_testkit::assert_valid_signature(&key.public_key, hash.as_bytes(), &sig);
}

/// Waits until the server parties `which` activated their share of `key_id` from `session`
/// (activation follows the `session.completed` event).
pub async fn wait_active(cluster: &Cluster, which: &[usize], key_id: &str, session: &str) {
    for i in which {
        let store = cluster.party_store(*i).await;
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(share) = store.active_share(key_id).await.unwrap()
                    && share.session_id.to_string() == session
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("server party {} never activated {key_id}", i + 1));
    }
}

/// A refresh by the device (through the API) and every server party; returns the new
/// `share_data` and the session.
pub async fn refresh(
    cluster: &Cluster,
    key: &Key,
    share_data: &str,
) -> (HttpResponse, pb::CreateSessionResponse) {
    let servers: Vec<usize> = (0..cluster.parties().len()).collect();
    let created = cluster
        .create_session(mpc_testkit::refresh_request(
            participants(cluster, true, &servers),
            key.threshold,
            &key.key_id,
            &key.public_key,
        ))
        .await;
    let r = cluster
        .party_api()
        .post(
            REFRESH,
            &body(&created, json!({ "share_data": share_data })),
        )
        .await;
    (r, created)
}

/// A recovery of the device's share (the device is the target, through the API) by the server
/// parties `helpers`; every server party takes part.
pub async fn recover(
    cluster: &Cluster,
    key: &Key,
    helpers: &[usize],
    extra: Value,
) -> (HttpResponse, pb::CreateSessionResponse) {
    let servers: Vec<usize> = (0..cluster.parties().len()).collect();
    let helper_ids: Vec<PartyId> = helpers.iter().map(|i| cluster.party_id(*i)).collect();
    let created = cluster
        .create_session(mpc_testkit::recovery_request(
            participants(cluster, true, &servers),
            key.threshold,
            &key.key_id,
            &key.public_key,
            &device(),
            &helper_ids,
        ))
        .await;
    let r = cluster
        .party_api()
        .post(RECOVERY, &body(&created, extra))
        .await;
    (r, created)
}

/// The request body of a session for the device, with `extra` fields.
pub fn request(created: &pb::CreateSessionResponse, extra: Value) -> Value {
    body(created, extra)
}
