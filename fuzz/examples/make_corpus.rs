//! Writes the seed corpus (`corpus/<target>/seed-*`) from real encodings made with the
//! harness's fixed keys: a routed envelope, a sealed keygen frame, join tokens, wrapped and
//! HPKE-sealed shares. Run once after a format change: `cargo run --example make_corpus`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use mpc_proto::SessionType;
use mpc_proto::pb::mpc::router::v1::{MpcMessage, RouteMessageRequest};
use mpc_protocol::KeyShare;
use prost::Message;
use server_party_api::hpke::{self, DevicePublicKey};
use server_party_api::share::{ShareOwner, hpke_info, to_share_data};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn main() {
    let claims = mpc_fuzz::claims();
    let envelope = |to: &str| RouteMessageRequest {
        join_token: "eyJ...".into(),
        envelope: Some(MpcMessage {
            message_id: "0b6c3f0e-8d43-4b8e-9c1a-3f7b2d1e5a60".into(),
            session_id: mpc_fuzz::SESSION.into(),
            from_party: claims.pid.to_string(),
            to_party: to.into(),
            round: 1,
            payload: vec![1, 2, 3, 4],
            ..Default::default()
        }),
    };
    write(
        "router_envelope",
        "p2p",
        &envelope("server_party_1").encode_to_vec(),
    );
    write(
        "router_envelope",
        "broadcast",
        &envelope("").encode_to_vec(),
    );

    let signer = mpc_fuzz::token_signer();
    let expires = SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let token = signer
        .issue(
            mpc_fuzz::session_id(),
            claims.pid.clone(),
            0,
            SessionType::Sign,
            claims.parties.clone(),
            expires,
        )
        .unwrap();
    write("join_token", "valid", token.as_bytes());
    let other = mpc_proto::TokenSigner::from_seed(&[8; 32])
        .issue(
            mpc_fuzz::session_id(),
            claims.pid.clone(),
            0,
            SessionType::Keygen,
            claims.parties.clone(),
            expires,
        )
        .unwrap();
    write("join_token", "other-key", other.as_bytes());

    let share = KeyShare::from_bytes(mpc_fuzz::FIXTURE_SHARE).unwrap();
    write(
        "share_data",
        "share-v1",
        &[&[0u8][..], mpc_fuzz::FIXTURE_SHARE].concat(),
    );
    let party = mpc_fuzz::party("user_device_1");
    let owner = ShareOwner {
        key_id: mpc_fuzz::KEY_ID,
        party_id: &party,
        party_index: 0,
    };
    let keys = mpc_fuzz::share_keys();
    let wrapped = to_share_data(&keys, &owner, &share, None).unwrap();
    write(
        "share_data",
        "wrapped",
        &[b"\x01", wrapped.as_bytes()].concat(),
    );

    let device_public = p256_public(&mpc_fuzz::DEVICE_SECRET);
    let sealed = to_share_data(&keys, &owner, &share, Some(&device_public)).unwrap();
    write("hpke_open", "sealed-hex", sealed.as_bytes());
    let raw = hpke::seal(
        &device_public,
        &hpke_info(mpc_fuzz::KEY_ID, &party),
        b"inner share",
    )
    .unwrap();
    write("hpke_open", "sealed-raw", &raw);

    // Engine frames: mode 2 (a well-formed frame) and 1 (raw plaintext), keygen round 1.
    write(
        "engine_frame",
        "keygen-r1-frame",
        &[2, 1, 4, 1, 2, 3, 4, 5, 6, 7, 8],
    );
    write(
        "engine_frame",
        "sign-r1-frame",
        &[6, 1, 4, 1, 2, 3, 4, 5, 6, 7, 8],
    );
    write("engine_frame", "keygen-raw", &[0, 1, 0, 1, 0xde, 0xad]);
}

fn p256_public(secret: &[u8; 32]) -> DevicePublicKey {
    use p256::elliptic_curve::sec1::ToSec1Point;
    let sk = p256::SecretKey::from_bytes(&(*secret).into()).unwrap();
    DevicePublicKey::from_sec1(sk.public_key().to_sec1_point(false).as_bytes()).unwrap()
}
