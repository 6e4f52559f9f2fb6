//! The coordinator's events as a server party receives them, through the in-process bus and
//! through RabbitMQ: `session.created` carries the party's join token, which lets it join.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use mpc_bus::{EventBus, EventKind, MemoryBus, RabbitBus, RabbitConfig, Subscription};
use mpc_proto::PartyId;
use mpc_proto::pb::mpc::coordinator::v1 as pb;
use mpc_store::testing::TestDb;

async fn next_event(sub: &mut Box<dyn Subscription>) -> mpc_bus::SessionEvent {
    let delivery = tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("no event delivered")
        .expect("bus closed")
        .unwrap();
    let event = delivery.event.clone();
    delivery.ack().await.unwrap();
    event
}

/// A server party's view: it learns of the session, joins with the token from the event, and
/// sees the session start and fail.
async fn a_server_party_joins_from_the_event(bus: Arc<dyn EventBus>) {
    let queue = format!("server_party_1.{}", uuid::Uuid::new_v4().simple());
    let mut sub = bus.subscribe(&queue, &["session.*"]).await.unwrap();
    let t = TestDb::sqlite().await;
    let c = Running::start_with_bus(t.db.clone(), bus, RecordingBus::new(), config()).await;
    let mut client = c.client().await;
    let created = client
        .create_session(keygen_request())
        .await
        .unwrap()
        .into_inner();

    let event = next_event(&mut sub).await;
    assert_eq!(event.kind, EventKind::Created);
    assert_eq!(event.session_id.to_string(), created.session_id);
    let me = PartyId::parse("server_party_1").unwrap();
    let token = event
        .join_tokens
        .get(&me)
        .expect("the created event carries my token")
        .clone();
    assert!(
        !event
            .join_tokens
            .contains_key(&PartyId::parse("user_device").unwrap())
    );
    let joined = client
        .join_session(join_request(&token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(joined.party_index, 1);
    for party in ["user_device", "server_party_2"] {
        client
            .join_session(join_request(&created.join_tokens[party]))
            .await
            .unwrap();
    }
    assert_eq!(next_event(&mut sub).await.kind, EventKind::Started);
    client
        .report_failure(pb::ReportFailureRequest {
            join_token: token,
            reason: "cannot store the share".into(),
            blamed_party_id: String::new(),
            overloaded: false,
        })
        .await
        .unwrap();
    let failed = next_event(&mut sub).await;
    assert_eq!(failed.kind, EventKind::Failed);
    assert_eq!(
        failed.failure_reason.as_deref(),
        Some("keygen failed: cannot store the share")
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_memory_bus() {
    a_server_party_joins_from_the_event(Arc::new(MemoryBus::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_rabbitmq() {
    let Some(url) = mpc_bus::testing::amqp_url() else {
        return;
    };
    let mut config = RabbitConfig::new(url);
    // A private exchange: other tests' events do not reach this test's queue.
    config.exchange = format!("mpc.test.{}", uuid::Uuid::new_v4().simple());
    let bus = tokio::time::timeout(Duration::from_secs(30), RabbitBus::connect(config))
        .await
        .expect("RabbitMQ did not answer")
        .unwrap();
    a_server_party_joins_from_the_event(Arc::new(bus)).await;
}
