//! One test suite for every `EventBus` backend: each test takes a [`Backend`] that makes buses
//! sharing one exchange (the same broker, as separate processes would) and unique queue names.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use mpc_bus::testing::sample_event;
use mpc_bus::{Delivery, EventBus, EventKind, SessionEvent, Subscription};
use uuid::Uuid;

/// How long "nothing arrives" is watched for. A deadline, not a timing assertion: every
/// publish before it was confirmed, so a delivery that should come is already queued.
pub const QUIET: Duration = Duration::from_millis(300);
/// How long a delivery that must come may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

#[async_trait]
pub trait Backend: Send + Sync {
    type Bus: EventBus + Clone;

    /// A bus on the shared exchange. Backends with connections open a new one each time.
    async fn bus(&self) -> Self::Bus;
    /// A queue name unique to this test run.
    fn queue(&self, name: &str) -> String;
    /// Closes `bus`; its subscriptions end.
    async fn close(&self, bus: &Self::Bus);
}

pub async fn next(sub: &mut Box<dyn Subscription>) -> Delivery {
    tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("no delivery before the deadline")
        .expect("subscription ended")
        .expect("delivery failed")
}

pub async fn assert_quiet(sub: &mut Box<dyn Subscription>) {
    if let Ok(Some(item)) = tokio::time::timeout(QUIET, sub.next()).await {
        panic!("expected no delivery, got {:?}", item.map(|d| d.event));
    }
}

/// Acknowledges everything that arrives until the queue is quiet; returns the event ids.
async fn drain(sub: &mut Box<dyn Subscription>) -> Vec<Uuid> {
    let mut ids = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(QUIET, sub.next()).await {
        let delivery = item.unwrap();
        ids.push(delivery.event.event_id);
        delivery.ack().await.unwrap();
    }
    ids
}

async fn publish(bus: &impl EventBus, kind: EventKind) -> SessionEvent {
    let event = sample_event(kind);
    bus.publish(&event).await.unwrap();
    event
}

pub async fn routes_by_topic_pattern(b: &impl Backend) {
    let bus = b.bus().await;
    let mut exact = bus
        .subscribe(&b.queue("exact"), &["session.created"])
        .await
        .unwrap();
    let mut star = bus
        .subscribe(&b.queue("star"), &["session.*"])
        .await
        .unwrap();
    let mut all = bus.subscribe(&b.queue("all"), &["#"]).await.unwrap();
    let mut two = bus
        .subscribe(&b.queue("two"), &["session.completed", "session.failed"])
        .await
        .unwrap();
    let mut other = bus
        .subscribe(&b.queue("other"), &["session.expired"])
        .await
        .unwrap();

    let created = publish(&bus, EventKind::Created).await;
    let failed = publish(&bus, EventKind::Failed).await;
    let completed = publish(&bus, EventKind::Completed).await;

    let set = |ids: Vec<Uuid>| ids.into_iter().collect::<BTreeSet<_>>();
    let ids = |events: &[&SessionEvent]| events.iter().map(|e| e.event_id).collect::<BTreeSet<_>>();
    assert_eq!(set(drain(&mut exact).await), ids(&[&created]));
    assert_eq!(
        set(drain(&mut star).await),
        ids(&[&created, &failed, &completed])
    );
    assert_eq!(
        set(drain(&mut all).await),
        ids(&[&created, &failed, &completed])
    );
    assert_eq!(set(drain(&mut two).await), ids(&[&failed, &completed]));
    assert_eq!(drain(&mut other).await, Vec::<Uuid>::new());
}

pub async fn delivers_the_event_intact(b: &impl Backend) {
    let bus = b.bus().await;
    let mut sub = bus
        .subscribe(&b.queue("intact"), &["session.*"])
        .await
        .unwrap();
    let mut event = sample_event(EventKind::Created);
    event.join_tokens.insert(
        event.participants[0].party_id.clone(),
        "token-for-party-0".into(),
    );
    event.message_hash = Some("ab".repeat(32));
    bus.publish(&event).await.unwrap();
    let delivery = next(&mut sub).await;
    assert_eq!(delivery.event, event);
    assert!(!delivery.redelivered);
    delivery.ack().await.unwrap();
}

pub async fn events_wait_in_a_queue_without_consumer(b: &impl Backend) {
    let queue = b.queue("waiting");
    let bus = b.bus().await;
    drop(bus.subscribe(&queue, &["session.*"]).await.unwrap());

    let publisher = b.bus().await;
    let first = publish(&publisher, EventKind::Created).await;
    let second = publish(&publisher, EventKind::Started).await;

    let consumer = b.bus().await;
    let mut sub = consumer.subscribe(&queue, &["session.*"]).await.unwrap();
    let got: Vec<Uuid> = drain(&mut sub).await;
    assert_eq!(got, vec![first.event_id, second.event_id]);
}

pub async fn ack_removes_the_event(b: &impl Backend) {
    let queue = b.queue("ack");
    let bus = b.bus().await;
    let mut sub = bus.subscribe(&queue, &["session.*"]).await.unwrap();
    let event = publish(&bus, EventKind::Created).await;
    let delivery = next(&mut sub).await;
    assert_eq!(delivery.event.event_id, event.event_id);
    delivery.ack().await.unwrap();
    drop(sub);

    let mut again = b
        .bus()
        .await
        .subscribe(&queue, &["session.*"])
        .await
        .unwrap();
    assert_quiet(&mut again).await;
}

pub async fn dropped_subscription_redelivers_unacked_events(b: &impl Backend) {
    let queue = b.queue("crash");
    let bus = b.bus().await;
    let mut sub = bus.subscribe(&queue, &["session.*"]).await.unwrap();
    let event = publish(&bus, EventKind::Created).await;
    let unacked = next(&mut sub).await;
    assert_eq!(unacked.event.event_id, event.event_id);
    assert!(!unacked.redelivered);
    drop(sub); // a consumer that dies mid-work, holding `unacked`

    let mut next_consumer = b
        .bus()
        .await
        .subscribe(&queue, &["session.*"])
        .await
        .unwrap();
    let again = next(&mut next_consumer).await;
    assert_eq!(again.event.event_id, event.event_id);
    assert!(again.redelivered, "a redelivery must say so");
    again.ack().await.unwrap();
    assert_quiet(&mut next_consumer).await;
    drop(unacked);
}

pub async fn nack_requeues_or_drops(b: &impl Backend) {
    let bus = b.bus().await;
    let mut sub = bus
        .subscribe(&b.queue("nack"), &["session.*"])
        .await
        .unwrap();
    let event = publish(&bus, EventKind::Failed).await;

    let first = next(&mut sub).await;
    assert!(!first.redelivered);
    first.nack(true).await.unwrap();

    let second = next(&mut sub).await;
    assert_eq!(second.event.event_id, event.event_id);
    assert!(second.redelivered);
    second.nack(false).await.unwrap();

    assert_quiet(&mut sub).await;
}

pub async fn competing_consumers_get_distinct_events(b: &impl Backend) {
    let queue = b.queue("compete");
    let (bus_a, bus_b) = (b.bus().await, b.bus().await);
    let mut a = bus_a.subscribe(&queue, &["session.*"]).await.unwrap();
    let mut c = bus_b.subscribe(&queue, &["session.*"]).await.unwrap();
    let mut published = BTreeSet::new();
    for _ in 0..6 {
        published.insert(publish(&bus_a, EventKind::Created).await.event_id);
    }

    // While `a` holds its first delivery unacknowledged, `c` gets a different event.
    let held_by_a = next(&mut a).await;
    let held_by_c = next(&mut c).await;
    assert_ne!(held_by_a.event.event_id, held_by_c.event.event_id);

    let mut received = vec![held_by_a.event.event_id, held_by_c.event.event_id];
    held_by_a.ack().await.unwrap();
    held_by_c.ack().await.unwrap();
    while received.len() < published.len() {
        let delivery = tokio::select! {
            d = next(&mut a) => d,
            d = next(&mut c) => d,
        };
        received.push(delivery.event.event_id);
        delivery.ack().await.unwrap();
    }
    let distinct: BTreeSet<Uuid> = received.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        received.len(),
        "an event went to two consumers"
    );
    assert_eq!(distinct, published);
    assert_quiet(&mut a).await;
    assert_quiet(&mut c).await;
}

pub async fn ping_and_close(b: &impl Backend) {
    let bus = b.bus().await;
    bus.ping().await.unwrap();
    let mut sub = bus.subscribe(&b.queue("close"), &["#"]).await.unwrap();
    b.close(&bus).await;
    let ended = tokio::time::timeout(PATIENCE, sub.next())
        .await
        .expect("subscription did not end after close");
    assert!(ended.is_none(), "expected the end of the subscription");
    assert!(bus.ping().await.is_err());
    assert!(
        bus.publish(&sample_event(EventKind::Created))
            .await
            .is_err()
    );
}

/// Generates one `#[tokio::test]` per suite test, each with a fresh backend from `$setup`
/// (an `async fn() -> Option<B>`; `None` skips) torn down with `$teardown`.
macro_rules! bus_suite {
    ($setup:path, $teardown:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(backend) = $setup(stringify!($name)).await else { return };
                suite::$name(&backend).await;
                $teardown(backend).await;
            }
        )*
    };
}
