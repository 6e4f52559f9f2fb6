//! The webhook store suite, run on SQLite and PostgreSQL (`backend_tests!`).

use chrono::{DateTime, TimeDelta, Utc};
use mpc_proto::{AccountId, SessionId};

use super::*;
use crate::testing::TestDb;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

async fn store(t: &TestDb) -> Arc<dyn WebhookStore> {
    crate::account::open(&t.db).await.unwrap();
    open(&t.db)
}

fn hook(key: &str, events: &[&str]) -> NewWebhook {
    NewWebhook {
        id: uuid::Uuid::new_v4(),
        api_key_id: key.into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        secret_sealed: vec![1, 2, 3],
        created_at: now(),
    }
}

fn attempt(code: Option<u16>) -> AttemptRecord {
    AttemptRecord {
        attempt: 0,
        attempted_at: now(),
        status_code: code,
        error: None,
        duration_ms: 3,
    }
}

async fn outbox_suite(t: TestDb) {
    let s = store(&t).await;
    let a = hook("key-a", &["session.completed", "account.activated"]);
    let b = hook("key-b", &["session.completed"]);
    assert!(s.create_webhook(&a, 2).await.unwrap());
    assert!(s.create_webhook(&b, 2).await.unwrap());
    assert!(
        s.create_webhook(&hook("key-a", &["session.failed"]), 2)
            .await
            .unwrap()
    );
    assert!(
        !s.create_webhook(&hook("key-a", &["session.failed"]), 2)
            .await
            .unwrap(),
        "capped"
    );
    assert_eq!(s.list_webhooks("key-a").await.unwrap().len(), 2);
    assert!(
        s.get_webhook(a.id, "key-b").await.unwrap().is_none(),
        "not another key's"
    );
    assert_eq!(
        s.get_webhook(a.id, "key-a").await.unwrap().unwrap().events,
        a.events
    );

    let session = SessionId::new_random();
    s.set_session_owner(session, "key-a").await.unwrap();
    s.set_session_owner(session, "key-b").await.unwrap();
    assert_eq!(
        s.session_owner(session).await.unwrap().as_deref(),
        Some("key-a"),
        "first owner stays"
    );
    let event = NewEvent {
        session_id: session,
        account_id: AccountId::new_random(),
        event: "session.completed".into(),
        created_at: now(),
    };
    let body = |id: uuid::Uuid| format!("{{\"event_id\":\"{id}\"}}");
    assert_eq!(s.enqueue("key-a", &event, &body).await.unwrap(), 1);
    assert_eq!(
        s.enqueue("key-a", &event, &body).await.unwrap(),
        0,
        "idempotent"
    );

    let t0 = now();
    let claimed = s
        .claim_due("w1", t0, t0 + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].webhook_id, a.id);
    assert!(claimed[0].body.contains(&claimed[0].id.to_string()));
    assert!(
        s.claim_due("w2", t0, t0 + TimeDelta::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert!(
        !s.finish_attempt(
            claimed[0].id,
            "w2",
            &attempt(Some(500)),
            AttemptResult::GiveUp
        )
        .await
        .unwrap(),
        "not the holder"
    );
    let retry_at = t0 + TimeDelta::seconds(5);
    assert!(
        s.finish_attempt(
            claimed[0].id,
            "w1",
            &attempt(Some(500)),
            AttemptResult::Retry(retry_at)
        )
        .await
        .unwrap()
    );
    assert!(
        s.claim_due("w2", t0, t0 + TimeDelta::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let again = s
        .claim_due("w2", retry_at, retry_at + TimeDelta::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert!(
        s.finish_attempt(
            again[0].id,
            "w2",
            &attempt(Some(204)),
            AttemptResult::Delivered
        )
        .await
        .unwrap()
    );

    let log = s.deliveries(a.id, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, DeliveryStatus::Delivered);
    assert_eq!(
        log[0]
            .attempts
            .iter()
            .map(|a| (a.attempt, a.status_code))
            .collect::<Vec<_>>(),
        vec![(1, Some(500)), (2, Some(204))]
    );
    assert!(
        s.deliveries(b.id, 10).await.unwrap().is_empty(),
        "key B's webhook gets nothing of key A's"
    );

    // An expired lease is claimed again.
    let other = NewEvent {
        event: "account.activated".into(),
        ..event
    };
    assert_eq!(s.enqueue("key-a", &other, &body).await.unwrap(), 1);
    let t1 = now();
    assert_eq!(
        s.claim_due("w1", t1, t1 + TimeDelta::seconds(1), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let later = t1 + TimeDelta::seconds(2);
    assert_eq!(
        s.claim_due("w2", later, later + TimeDelta::seconds(1), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    assert!(!s.delete_webhook(a.id, "key-b").await.unwrap());
    assert!(s.delete_webhook(a.id, "key-a").await.unwrap());
    assert!(s.deliveries(a.id, 10).await.unwrap().is_empty());
}

crate::backend_tests!(outbox, outbox_suite);
