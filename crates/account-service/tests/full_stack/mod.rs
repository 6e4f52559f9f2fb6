//! Helpers of the full-stack tests: the whole system in this process (`mpc-testkit`: the
//! coordinator, the router, real server parties, the Server Party API and the Account Service,
//! each on its own fresh database, on port 0), driven over HTTP only, as a wallet back end
//! would, with every signature checked independently with `k256`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_protocol::PublicKey;
use mpc_testkit::http::HttpResponse;
use mpc_testkit::{Backend, Cluster};
use serde_json::{Value, json};

pub const PARTY_KEYGEN: &str = "/api/v1/keygen/generate-user-share";
pub const PARTY_SIGN: &str = "/api/v1/sign/with-user-share";
pub const PARTY_REFRESH: &str = "/api/v1/refresh/with-user-share";
pub const PARTY_RECOVERY: &str = "/api/v1/recovery/new-user-share";

/// The guide's phone (§5.1).
pub const DEVICE: &str = "user_device_12345";

/// `servers` server parties, the Server Party API and the Account Service; `None` when
/// PostgreSQL is asked for but not configured (outside CI).
pub async fn cluster(backend: Backend, servers: usize) -> Option<Cluster> {
    Cluster::builder()
        .backend(backend)
        .server_parties(servers)
        .party_api(true)
        .account_service(true)
        .build()
        .await
}

/// The guide's 2-of-3 wallet (§5.1 step 1): the phone and server parties 1 and 2.
pub fn guide_keygen() -> Value {
    json!({
        "threshold_n": 3,
        "threshold_t": 2,
        "participants": [
            {"party_id": DEVICE, "device_type": "android", "device_id": "android_device_uuid"},
            {"party_id": "server_party_1", "device_type": "server", "platform": "linux"},
            {"party_id": "server_party_2", "device_type": "server", "platform": "linux"}
        ]
    })
}

/// A wallet made through the HTTP APIs.
#[derive(Clone, Debug)]
pub struct Wallet {
    pub account_id: String,
    pub keygen_session_id: String,
    /// 65 bytes, uncompressed.
    pub public_key: Vec<u8>,
    pub address: String,
    /// The device's `share_data`, as the Server Party API returned it.
    pub device_share: String,
}

pub fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

#[track_caller]
pub fn assert_ok(r: &HttpResponse) {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["success"], true, "{}", r.body);
}

#[track_caller]
pub fn assert_error(r: &HttpResponse, status: u16, code: &str) {
    assert_eq!((r.status, r.error_code()), (status, code), "{}", r.body);
    assert!(!r.error_message().is_empty(), "{}", r.body);
}

/// The Server Party API's body for the device: the session, its party id and its join token
/// from a "created" answer of the Account Service, plus `extra`.
pub fn device_body(created: &Value, party: &str, extra: Value) -> Value {
    let mut body = json!({
        "session_id": str_of(created, "session_id"),
        "party_id": party,
        "join_token": created["join_tokens"][party].as_str().unwrap_or_else(|| panic!("no join token for {party} in {created}")),
    });
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    body
}

/// Guide §5.1 over HTTP: `POST /api/v1/mpc/keygen` with `body` at the Account Service, the
/// device's part through `generate-user-share` with the API key (as in the guide), then the
/// account becomes active. Returns the wallet and the keygen's "created" answer.
pub async fn create_wallet_with(cluster: &Cluster, body: &Value) -> (Wallet, Value) {
    let accounts = cluster.account_service();
    let created = accounts.post("/api/v1/mpc/keygen", body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let wallet = finish_keygen(cluster, &created.body).await;
    (wallet, created.body)
}

pub async fn create_wallet(cluster: &Cluster) -> Wallet {
    create_wallet_with(cluster, &guide_keygen()).await.0
}

/// The device joins the keygen of `created` through the Server Party API; waits until the
/// account is active with the key the device was told.
pub async fn finish_keygen(cluster: &Cluster, created: &Value) -> Wallet {
    let r = cluster
        .party_api()
        .post(PARTY_KEYGEN, &device_body(created, DEVICE, json!({})))
        .await;
    assert_ok(&r);
    assert_eq!(r.body["party_index"], 0, "the first participant");
    let public_key = hex::decode(str_of(&r.body, "public_key")).unwrap();
    assert_eq!(public_key.len(), 65, "uncompressed");
    assert_eq!(public_key[0], 4);
    let address = PublicKey::from_sec1(&public_key).unwrap().eth_address();
    let account_id = str_of(created, "account_id").to_owned();
    let account = cluster
        .account_service()
        .wait_for_account(&account_id, "the account's activation", |a| {
            a["status"] != "pending"
        })
        .await;
    assert_eq!(account["status"], "active", "{account}");
    assert_eq!(account["public_key"], hex::encode(&public_key));
    assert_eq!(account["ethereum_address"], address.as_str());
    Wallet {
        account_id,
        keygen_session_id: str_of(created, "session_id").to_owned(),
        public_key,
        address,
        device_share: str_of(&r.body, "share_data").to_owned(),
    }
}

/// A random 32-byte hash, hex without `0x`.
pub fn random_hash() -> String {
    mpc_testkit::random_hash().to_hex()
}

pub fn sign_body(wallet: &Wallet, hash: &str, parties: &[&str]) -> Value {
    json!({
        "account_id": wallet.account_id,
        "message_hash": hash,
        "participants": parties.iter().map(|p| json!({"party_id": p})).collect::<Vec<_>>(),
    })
}

/// `POST /api/v1/mpc/sign` at the Account Service; must be created.
pub async fn create_sign(cluster: &Cluster, body: &Value) -> Value {
    let r = cluster
        .account_service()
        .post("/api/v1/mpc/sign", body)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["session_type"], "sign");
    r.body
}

/// The device's part of the sign session `created` through the Server Party API, with
/// `share` and the given headers (the API key, or a Bearer access token).
pub async fn device_signs(
    cluster: &Cluster,
    created: &Value,
    party: &str,
    share: &str,
    hash: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    cluster
        .party_api()
        .post_with(
            PARTY_SIGN,
            headers,
            &device_body(
                created,
                party,
                json!({"share_data": share, "message_hash": hash}),
            ),
        )
        .await
}

/// The API key of the Server Party API, as the wallet back end sends it.
pub fn party_api_key(cluster: &Cluster) -> [(&'static str, &str); 1] {
    [("x-api-key", cluster.party_api().api_key.as_str())]
}

/// `device` (through the API with `share`) and the server parties `servers` sign a random
/// hash; the API's answer and the completed session both carry a signature that k256 accepts
/// for the wallet's key. Returns the completed session.
pub async fn sign_with_device(
    cluster: &Cluster,
    wallet: &Wallet,
    device: &str,
    share: &str,
    servers: &[&str],
) -> Value {
    let hash = random_hash();
    let mut parties = vec![device];
    parties.extend_from_slice(servers);
    let created = create_sign(cluster, &sign_body(wallet, &hash, &parties)).await;
    let r = device_signs(
        cluster,
        &created,
        device,
        share,
        &hash,
        &party_api_key(cluster),
    )
    .await;
    assert_ok(&r);
    check_signature(&wallet.public_key, &hash, &r.body);
    let session = cluster
        .account_service()
        .wait_for_session_end(str_of(&created, "session_id"))
        .await;
    assert_completed_sign(wallet, &hash, &session);
    for field in ["signature", "r", "s", "v"] {
        assert_eq!(
            session[field], r.body[field],
            "{field}: the session's and the API's"
        );
    }
    session
}

/// The server parties `servers` sign a random hash without the device: the session completes
/// by itself (polled through the Account Service) with a signature k256 accepts.
pub async fn sign_without_device(cluster: &Cluster, wallet: &Wallet, servers: &[&str]) -> Value {
    let hash = random_hash();
    let created = create_sign(cluster, &sign_body(wallet, &hash, servers)).await;
    let tokens = created["join_tokens"].as_object().unwrap();
    assert_eq!(tokens.len(), servers.len());
    let session = cluster
        .account_service()
        .wait_for_session_end(str_of(&created, "session_id"))
        .await;
    assert_completed_sign(wallet, &hash, &session);
    session
}

/// A completed sign session of `hash` whose `signature`, `r`, `s`, `v` k256 accepts.
#[track_caller]
pub fn assert_completed_sign(wallet: &Wallet, hash: &str, session: &Value) {
    assert_eq!(session["status"], "completed", "{session}");
    assert_eq!(session["session_type"], "sign");
    assert_eq!(session["message_hash"], hash);
    assert_eq!(session["public_key"], hex::encode(&wallet.public_key));
    check_signature(&wallet.public_key, hash, session);
}

/// `{signature (DER hex), r, s, v}` checked independently: k256 verifies it for the key, `s` is
/// low, `ecrecover(hash, r, s, v)` is the key, and the DER form is the same signature.
#[track_caller]
pub fn check_signature(public_key: &[u8], hash: &str, body: &Value) {
    let field = |name: &str| hex::decode(str_of(body, name)).unwrap();
    let sig = pb::Signature {
        r: field("r"),
        s: field("s"),
        v: u32::try_from(body["v"].as_u64().unwrap()).unwrap(),
        der: field("signature"),
    };
    assert!(!sig.der.is_empty(), "a DER signature");
    mpc_testkit::assert_valid_signature(public_key, &hex::decode(hash).unwrap(), &sig);
}

/// `(party_id, party_index, share_type, device_type, storage_location)` of each share the
/// account shows.
pub fn share_rows(account: &Value) -> Vec<(String, u64, String, String, String)> {
    account["shares"]
        .as_array()
        .unwrap_or_else(|| panic!("no shares in {account}"))
        .iter()
        .map(|s| {
            assert!(
                s.get("share_data").is_none(),
                "a share row carries share data: {s}"
            );
            (
                str_of(s, "party_id").to_owned(),
                s["party_index"].as_u64().unwrap(),
                str_of(s, "share_type").to_owned(),
                str_of(s, "device_type").to_owned(),
                str_of(s, "storage_location").to_owned(),
            )
        })
        .collect()
}

pub fn row(
    party: &str,
    index: u64,
    share_type: &str,
    device_type: &str,
    location: &str,
) -> (String, u64, String, String, String) {
    (
        party.into(),
        index,
        share_type.into(),
        device_type.into(),
        location.into(),
    )
}
