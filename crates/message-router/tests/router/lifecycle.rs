//! Session ends (bus events), retention, and router replicas sharing one PostgreSQL database.

use std::sync::Arc;
use std::time::Duration;

use message_router::RouterConfig;
use mpc_bus::testing::sample_event;
use mpc_bus::{EventBus, EventKind, MemoryBus, RabbitBus, RabbitConfig};
use mpc_proto::ErrorCode;
use mpc_store::testing::TestDb;

use crate::common::*;

/// The router's durable queue exists from its first subscription on; create it (as a deployed
/// broker would already have it) so that no event published early is dropped as unroutable.
async fn declare_router_queue(bus: &dyn EventBus, queue: &str) {
    drop(bus.subscribe(queue, &["session.*"]).await.unwrap());
}

fn short_retention(config: &mut RouterConfig) {
    config.retention_grace = Duration::from_millis(300);
    config.sweep_interval = Duration::from_millis(100);
}

async fn ended_session_is_refused_then_purged_after_grace(t: TestDb) {
    let f = Fixture::start_with(t, short_retention).await;
    declare_router_queue(&*f.bus, "mpc.router").await;
    session_end_scenario(f).await;
}
mpc_store::backend_tests!(retention, ended_session_is_refused_then_purged_after_grace);

/// The production bus: `session.completed` through RabbitMQ (`AMQP_URL`) on the router's own
/// durable queue. The exchange and queue are unique to this test and deleted afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_end_arrives_through_rabbitmq() {
    let Some(url) = mpc_bus::testing::amqp_url() else {
        return;
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let exchange = format!("mpc-router-test.{}.events", &id[..8]);
    let queue = format!("mpc-router-test.{}.router", &id[..8]);
    let bus = RabbitBus::connect(RabbitConfig {
        exchange: exchange.clone(),
        ..RabbitConfig::new(url.clone())
    })
    .await
    .unwrap();
    declare_router_queue(&bus, &queue).await;
    let f = Fixture::start_on_bus(TestDb::sqlite().await, Arc::new(bus.clone()), |c| {
        short_retention(c);
        c.bus_queue = queue.clone();
    })
    .await;
    session_end_scenario(f).await;
    bus.close().await;

    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await
        .unwrap();
    channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await
        .unwrap();
    connection.close(200, "done".into()).await.unwrap();
}

/// A session with envelopes ends by a bus event: sending is refused at once, and after the
/// grace its envelopes are gone ("session not found"), while another session keeps its own.
async fn session_end_scenario(f: Fixture) {
    let s = f.coordinator.session(&["a", "b"]);
    let bystander = f.coordinator.session(&["a", "b"]);
    let mut client = f.client().await;
    for session in [&s, &bystander] {
        route(
            &mut client,
            &session.token("a"),
            session.envelope("a", "b", 1, b"secret"),
        )
        .await
        .unwrap();
    }
    let mut stream = subscribe(&mut client, &s, "b", 0).await.unwrap();
    assert_eq!(next(&mut stream).await.payload, b"secret");

    let mut event = sample_event(EventKind::Completed);
    event.session_id = s.id;
    f.bus.publish(&event).await.unwrap();

    // The event is consumed asynchronously: wait (with a deadline) until sending is refused.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match route(&mut client, &s.token("a"), s.envelope("a", "b", 2, b"late")).await {
            Err(e) if e.code == ErrorCode::FailedPrecondition => break,
            Ok(_) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session.completed was not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // After the grace the sweep deletes the envelopes: the open subscription ends and fetching
    // is "session not found".
    let err = stream_error(&mut stream).await;
    assert_eq!(err.code, ErrorCode::SessionNotFound);
    let err = fetch(&mut client, &s, "b", 0, 0, 0).await.unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::SessionNotFound, "session not found")
    );
    // A new subscription is accepted, then ends with the same error.
    let mut again = subscribe(&mut client, &s, "b", 0).await.unwrap();
    assert_eq!(
        stream_error(&mut again).await.code,
        ErrorCode::SessionNotFound
    );
    // Another session is untouched.
    let kept = fetch(&mut client, &bystander, "b", 0, 0, 0).await.unwrap();
    assert_eq!(kept.messages.len(), 1);
    f.stop().await;
}

/// Two router instances on one PostgreSQL schema: envelopes routed through A reach a
/// subscriber on B live, and the other way round. The routers' safety-net poll is off, so only
/// `LISTEN/NOTIFY` can wake a subscriber that is waiting on another instance. (Each round routes
/// only after the previous envelope arrived, by which time the subscriber is waiting again.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_wake_each_others_subscribers() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let coordinator = Coordinator::new();
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new());
    let second_db = mpc_store::Db::connect(&t.config).await.unwrap();
    let a = TestRouter::start(&coordinator, t.db.clone(), bus.clone(), |_| {}).await;
    let b = TestRouter::start(&coordinator, second_db, bus, |_| {}).await;
    let s = coordinator.session(&["p1", "p2", "p3"]);
    let (mut on_a, mut on_b) = (a.client().await, b.client().await);

    // Warm-up through B itself, so that B's subscription is surely running.
    let mut stream = subscribe(&mut on_b, &s, "p2", 0).await.unwrap();
    route(
        &mut on_b,
        &s.token("p3"),
        s.envelope("p3", "p2", 0, b"via B"),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut stream).await.seq, 1);
    for round in 1..=3 {
        route(
            &mut on_a,
            &s.token("p1"),
            s.envelope("p1", "", round, b"via A"),
        )
        .await
        .unwrap();
        let m = next(&mut stream).await;
        assert_eq!(
            (m.seq, m.round, m.from_party.as_str(), m.payload.as_slice()),
            (u64::from(round) + 1, round, "p1", b"via A".as_slice())
        );
    }

    // The other way round, into a subscriber on A.
    let mut stream_a = subscribe(&mut on_a, &s, "p3", 0).await.unwrap();
    for seq in 1..=3 {
        assert_eq!(next(&mut stream_a).await.seq, seq); // the broadcasts above
    }
    route(
        &mut on_b,
        &s.token("p2"),
        s.envelope("p2", "p3", 9, b"via B"),
    )
    .await
    .unwrap();
    let m = next(&mut stream_a).await;
    assert_eq!((m.seq, m.payload.as_slice()), (4, b"via B".as_slice()));
    a.stop().await;
    b.stop().await;
}
