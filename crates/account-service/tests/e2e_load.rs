//! Capacity with the real system in this process, on SQLite and on PostgreSQL:
//! - `overload_is_a_quick_429`: beyond the entrance's budget and queue, a keygen or sign gets
//!   `429 overloaded` with `Retry-After` at once, leaves no account, session or idempotency
//!   record behind, is audited, and the same request (same `Idempotency-Key`) succeeds once a
//!   slot is free;
//! - `abandoned_keygens_delay_nothing`: 50 keygens whose device never joins, then 20 signs with
//!   the device through the Server Party API: every sign completes (the parties hold no slot
//!   for a session they wait in), while the keygens still wait.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod full_stack;

use std::time::Duration;

use full_stack::*;
use mpc_testkit::{Backend, Cluster};

async fn overload_is_a_quick_429(backend: Backend) {
    let Some(cluster) = Cluster::builder()
        .backend(backend)
        .server_parties(2)
        .party_api(true)
        .account_config(|c| {
            c.admission = mpc_service::AdmissionConfig {
                budget: 2,
                queue_limit: 1,
                max_wait: Duration::from_millis(300),
            };
        })
        .build()
        .await
    else {
        return;
    };
    let accounts = cluster.account_service();
    // Two keygens hold the budget (their device has not joined yet).
    let first = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
    assert_eq!(second.status, 201, "{}", second.body);
    let total_before = accounts.get("/api/v1/accounts").await.body["total"].clone();
    // The third waits its 300 ms in the queue, then is refused.
    let retried = [
        ("x-api-key", accounts.api_key.as_str()),
        ("idempotency-key", "burst-3"),
    ];
    let refused = accounts
        .post_with("/api/v1/mpc/keygen", &retried, &guide_keygen())
        .await;
    assert_error(&refused, 429, "overloaded");
    assert!(
        refused.headers.get("retry-after").is_some(),
        "{:?}",
        refused.headers
    );
    assert_eq!(
        accounts.get("/api/v1/accounts").await.body["total"],
        total_before,
        "a refusal creates no account"
    );
    let audited = accounts
        .wait_for_audit("status_min=429&status_max=429&operation=keygen")
        .await;
    assert!(!audited.is_empty());
    // The device of the first keygen joins: the session ends and frees a slot.
    finish_keygen(&cluster, &first.body).await;
    // The same request, with the same Idempotency-Key, now goes through (the 429 was not kept).
    let ok = accounts
        .post_with("/api/v1/mpc/keygen", &retried, &guide_keygen())
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert!(ok.headers.get("idempotent-replayed").is_none());
    cluster.shutdown().await;
}

async fn abandoned_keygens_delay_nothing(backend: Backend) {
    // The entrance's budget is not under test here (the 50 keygens hold 50 of its slots until
    // their outcome or the hold time): room for all 70 sessions, so only the parties decide.
    let Some(cluster) = Cluster::builder()
        .backend(backend)
        .server_parties(2)
        .party_api(true)
        .account_config(|c| {
            c.admission = mpc_service::AdmissionConfig {
                budget: 256,
                ..c.admission
            };
        })
        .build()
        .await
    else {
        return;
    };
    let accounts = cluster.account_service();
    let wallet = create_wallet(&cluster).await;
    let mut abandoned = Vec::new();
    for _ in 0..50 {
        let r = accounts.post("/api/v1/mpc/keygen", &guide_keygen()).await;
        assert_eq!(r.status, 201, "{}", r.body);
        abandoned.push(str_of(&r.body, "session_id").to_owned());
    }
    let signs = (0..20).map(|_| {
        sign_with_device(
            &cluster,
            &wallet,
            DEVICE,
            &wallet.device_share,
            &["server_party_1"],
        )
    });
    let signed = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(signs))
        .await
        .expect("the signs complete while the keygens wait");
    assert_eq!(signed.len(), 20);
    // The keygens still wait for their device (nothing failed them, nothing blamed anyone).
    for id in abandoned.iter().take(5) {
        let r = accounts.get(&format!("/api/v1/mpc/sessions/{id}")).await;
        assert!(
            ["created", "waiting"].contains(&r.body["status"].as_str().unwrap()),
            "{}",
            r.body
        );
    }
    cluster.shutdown().await;
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(Backend::Postgres).await;
                }
            )*
        }
    };
}

both_backends!(overload_is_a_quick_429, abandoned_keygens_delay_nothing);
