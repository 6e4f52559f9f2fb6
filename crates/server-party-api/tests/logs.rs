//! No secret reaches the logs: every `tracing` event (at TRACE, from every crate) of a sign
//! through the API, of refused requests and of an access-token call is captured and searched
//! for the join token, the share (as sent, and its inner sealed bytes), the API key and the
//! access token. A test binary of its own, because it installs the process-wide subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use mpc_proto::{AccountId, Threshold};
use mpc_testkit::Backend;
use serde_json::json;
use server_party_api::share::{ShareOwner, to_share_data};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let cluster = cluster(Backend::Sqlite, 2).await.unwrap();
    let api = cluster.party_api();
    let account = AccountId::new_random();
    let key_id = account.to_string();
    let shares = mpc_testkit::fixture_shares();
    cluster.import_share(0, &key_id, &shares[1]).await;
    cluster.import_share(1, &key_id, &shares[2]).await;
    let key = Key {
        key_id: key_id.clone(),
        threshold: Threshold { t: 2, n: 3 },
        public_key: shares[0].public_key().to_uncompressed().to_vec(),
    };
    let party = device();
    let owner = ShareOwner {
        key_id: &key_id,
        party_id: &party,
        party_index: 0,
    };
    let share = to_share_data(&api.share_keys(), &owner, &shares[0], None).unwrap();
    let (hash, created) = sign_session(&cluster, &key, true, &[0]).await;
    let token = created.join_tokens[party.as_str()].clone();
    let body = request(
        &created,
        json!({ "share_data": share, "message_hash": hash.to_hex() }),
    );
    // Refused first (wrong hash, a share of another party), then signed with an access token.
    let mut wrong = body.clone();
    wrong["message_hash"] = json!(mpc_testkit::random_hash().to_hex());
    assert_eq!(api.post(SIGN, &wrong).await.status, 400);
    let mut theirs = body.clone();
    let other = pid("user_device_2");
    theirs["share_data"] = json!(
        to_share_data(
            &api.share_keys(),
            &ShareOwner {
                party_id: &other,
                ..owner
            },
            &shares[0],
            None
        )
        .unwrap()
    );
    assert_eq!(api.post(SIGN, &theirs).await.status, 400);
    let access = api.access_token(account);
    let r = api
        .post_with(
            SIGN,
            &[("authorization", &format!("Bearer {access}"))],
            &body,
        )
        .await;
    assert_ok(&r);
    check_signature(&key, &hash, &r.body);
    let session_id = created.session_id.clone();
    let api_key = api.api_key.clone();
    cluster.shutdown().await;

    let text = logs.text();
    // The capture works: the API's own events about this session are there.
    assert!(
        text.contains(&session_id) && text.contains("request refused before joining"),
        "no API events captured"
    );
    let share_bytes = shares[0].to_bytes().unwrap();
    let needles = [
        ("join token", token.rsplit('.').next().unwrap().to_owned()),
        ("share_data", share[share.len() - 64..].to_owned()),
        (
            "share bytes",
            hex::encode(&share_bytes[share_bytes.len() - 32..]),
        ),
        (
            "share bytes (Debug)",
            format!("{:?}", &share_bytes[200..216])
                .trim_matches(|c| c == '[' || c == ']')
                .to_owned(),
        ),
        ("API key", api_key),
        (
            "access token",
            access.rsplit('.').next().unwrap().to_owned(),
        ),
    ];
    for (what, needle) in needles {
        assert!(!text.contains(&needle), "the {what} leaked to the logs");
    }
}
