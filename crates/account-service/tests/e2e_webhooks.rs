//! Webhooks end to end (issue 13 §3), on SQLite and PostgreSQL: a receiver spawned here that
//! answers 500 twice gets the third attempt; a restart between a failure and the retry still
//! delivers; every delivery's signature is checked independently (HMAC computed here with the
//! `hmac` crate); key A's outcomes never reach key B's webhook; keygen completion
//! (`account.activated`, `session.completed`) and a failed keygen (`session.failed`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use hmac::{Hmac, KeyInit, Mac};
use mpc_store::testing::TestDb;
use serde_json::{Value, json};
use sha2::Sha256;

#[derive(Clone, Default)]
struct Receiver {
    /// (timestamp, signature, body) of every request, in order.
    got: Arc<Mutex<Vec<(String, String, Bytes)>>>,
    /// Requests to refuse with a 500 before accepting.
    refuse: Arc<Mutex<u32>>,
}

impl Receiver {
    async fn spawn(refuse: u32) -> (Self, String) {
        let this = Self {
            refuse: Arc::new(Mutex::new(refuse)),
            ..Self::default()
        };
        let state = this.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
                    state.got.lock().unwrap().push((
                        h("x-mpc-timestamp"),
                        h("x-mpc-signature"),
                        body,
                    ));
                    let mut refuse = state.refuse.lock().unwrap();
                    if *refuse > 0 {
                        *refuse -= 1;
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (this, format!("http://{addr}/hook"))
    }

    fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }

    /// Waits until `pred` holds for the received bodies.
    async fn wait(&self, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let b = self.bodies();
                if pred(&b) {
                    return b;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the receiver did not get the expected deliveries")
    }

    /// Every request carries a valid signature under `secret`.
    fn check_signatures(&self, secret: &str) {
        for (ts, sig, body) in self.got.lock().unwrap().iter() {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{ts}.").as_bytes());
            mac.update(body);
            let want = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(sig, &want);
            let tampered = [body.as_ref(), b" "].concat();
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(format!("{ts}.").as_bytes());
            mac.update(&tampered);
            assert_ne!(
                sig,
                &format!("v1={}", hex::encode(mac.finalize().into_bytes()))
            );
            let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
            assert!((0..300).contains(&age), "timestamp {ts}");
        }
    }
}

fn fast(config: &mut account_service::AccountConfig) {
    config.webhooks.backoff_base = Duration::from_millis(300);
    config.webhooks.poll_interval = Duration::from_millis(100);
    config.webhooks.timeout = Duration::from_secs(5);
}

async fn register(c: &Cluster, key: &str, url: &str, events: &[&str]) -> (String, String) {
    let r = c
        .post(
            "/api/v1/webhooks",
            Some(key),
            &json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    (r.body["id"].as_str().unwrap().to_owned(), secret)
}

async fn operator_key(c: &Cluster) -> String {
    let r = c
        .admin_post("/api/v1/admin/api-keys", &json!({"name": "key-b"}))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["api_key"].as_str().unwrap().to_owned()
}

async fn retries_and_isolation(db: TestDb) {
    let c = Cluster::start_with(db, fast).await;
    // Registration checks.
    c.post(
        "/api/v1/webhooks",
        Some(ADMIN_KEY),
        &json!({"url": "ftp://x", "events": ["session.failed"]}),
    )
    .await
    .expect_error(400, "invalid_argument");
    c.post(
        "/api/v1/webhooks",
        Some(ADMIN_KEY),
        &json!({"url": "http://x", "events": ["nope"]}),
    )
    .await
    .expect_error(400, "invalid_argument");

    let (a, a_url) = Receiver::spawn(2).await;
    let (b, b_url) = Receiver::spawn(0).await;
    let all = [
        "session.completed",
        "session.failed",
        "session.expired",
        "account.activated",
    ];
    let (a_hook, a_secret) = register(&c, ADMIN_KEY, &a_url, &all).await;
    // One event, refused twice: its third attempt is the one accepted.
    let (third, third_url) = Receiver::spawn(2).await;
    let (third_hook, third_secret) =
        register(&c, ADMIN_KEY, &third_url, &["account.activated"]).await;
    let key_b = operator_key(&c).await;
    let (b_hook, _) = register(&c, &key_b, &b_url, &all).await;
    let listed = c.get("/api/v1/webhooks", Some(ADMIN_KEY)).await;
    assert_eq!(
        listed.body["webhooks"].as_array().unwrap().len(),
        2,
        "only its own"
    );
    assert!(
        listed.body["webhooks"][0].get("secret").is_none(),
        "never the secret"
    );
    c.get(
        &format!("/api/v1/webhooks/{a_hook}/deliveries"),
        Some(&key_b),
    )
    .await
    .expect_error(404, "not_found");

    // Key A's keygen completes: two events, the first attempt of each may be refused.
    let (account_id, key) = active_account(&c).await;
    let got = a
        .wait(|b| {
            ["account.activated", "session.completed"]
                .iter()
                .all(|e| b.iter().filter(|x| x["event"] == *e).count() >= 1)
                && b.len() >= 4
        })
        .await;
    assert_eq!(got.len(), 4, "two refused, then the two events: {got:?}");
    let activated = got
        .iter()
        .find(|x| x["event"] == "account.activated")
        .unwrap();
    assert_eq!(activated["account_id"], account_id.as_str());
    assert_eq!(
        activated["outcome"]["public_key"],
        hex::encode(public_key_bytes(&key))
    );
    assert!(
        activated["outcome"]["ethereum_address"]
            .as_str()
            .unwrap()
            .starts_with("0x")
    );

    let got = third.wait(|b| b.len() >= 3).await;
    assert!(
        got.iter().all(|x| x["event_id"] == got[0]["event_id"]),
        "{got:?}"
    );
    third.check_signatures(&third_secret);
    let log = c
        .get(
            &format!("/api/v1/webhooks/{third_hook}/deliveries"),
            Some(ADMIN_KEY),
        )
        .await;
    let attempts: Vec<u64> = log.body["deliveries"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![500, 500, 204], "{log:?}");

    // A failed keygen of key A.
    let created = c.admin_post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(created.status, 201);
    fail_session(&c, &created.body, "boom", "server_party_1").await;
    let got = a
        .wait(|b| b.iter().any(|x| x["event"] == "session.failed"))
        .await;
    let failed = got.iter().find(|x| x["event"] == "session.failed").unwrap();
    assert_eq!(failed["session_id"], created.body["session_id"]);
    assert_eq!(failed["outcome"]["failure_reason"], "keygen failed: boom");
    a.check_signatures(&a_secret);
    let ids: std::collections::HashSet<_> = got.iter().map(|x| x["event_id"].clone()).collect();
    assert_eq!(ids.len(), 3, "one event id per event, kept across retries");

    // Every delivery has a 2xx attempt; one has its two refusals before it.
    let log = c
        .get(
            &format!("/api/v1/webhooks/{a_hook}/deliveries"),
            Some(ADMIN_KEY),
        )
        .await;
    let deliveries = log.body["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 3, "{log:?}");
    let codes: Vec<Vec<u64>> = deliveries
        .iter()
        .map(|d| {
            d["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["status_code"].as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        codes.iter().flatten().filter(|c| **c == 500).count(),
        2,
        "{codes:?}"
    );
    assert!(
        deliveries.iter().all(|d| d["status"] == "delivered"),
        "{log:?}"
    );

    // Key B's webhook got nothing of key A's sessions.
    assert!(b.bodies().is_empty());
    let log_b = c
        .get(
            &format!("/api/v1/webhooks/{b_hook}/deliveries"),
            Some(&key_b),
        )
        .await;
    assert!(log_b.body["deliveries"].as_array().unwrap().is_empty());
    assert_eq!(
        c.request(
            "DELETE",
            &format!("/api/v1/webhooks/{b_hook}"),
            Some(ADMIN_KEY),
            &[],
            None
        )
        .await
        .status,
        404
    );
    assert_eq!(
        c.request(
            "DELETE",
            &format!("/api/v1/webhooks/{b_hook}"),
            Some(&key_b),
            &[],
            None
        )
        .await
        .status,
        204
    );
    c.stop().await;
}

async fn restart_between_failure_and_retry(db: TestDb) {
    let c = Cluster::start_with(db, |config| {
        fast(config);
        // The retry comes long after the restart below.
        config.webhooks.backoff_base = Duration::from_secs(3);
    })
    .await;
    let (r, url) = Receiver::spawn(1).await;
    let (_, secret) = register(&c, ADMIN_KEY, &url, &["account.activated"]).await;
    let (account_id, _) = active_account(&c).await;
    r.wait(|b| !b.is_empty()).await;
    let db = c.stop_keep_db().await;
    assert_eq!(
        r.bodies().len(),
        1,
        "refused once, not retried before the restart"
    );
    let c = Cluster::start_with(db, fast).await;
    let got = r.wait(|b| b.len() >= 2).await;
    assert_eq!(got[1]["event_id"], got[0]["event_id"]);
    assert_eq!(got[1]["account_id"], account_id.as_str());
    r.check_signatures(&secret);
    c.stop().await;
}

mpc_store::backend_tests!(webhook_retries_and_isolation, retries_and_isolation);
mpc_store::backend_tests!(webhook_restart, restart_between_failure_and_retry);
