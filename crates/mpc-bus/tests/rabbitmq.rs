//! The shared bus suite on RabbitMQ (`AMQP_URL`), plus what only a broker can do: foreign
//! messages, connections that close, reconnection.
//!
//! Every test uses its own exchange and queues (deleted at the end), so tests run in parallel
//! and leave nothing behind when they pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod suite;

use std::sync::Mutex;

use async_trait::async_trait;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use mpc_bus::testing::{amqp_url, sample_event};
use mpc_bus::{EventBus, EventKind, RabbitBus, RabbitConfig};
use suite::{Backend, assert_quiet, next};

struct Rabbit {
    url: String,
    exchange: String,
    prefix: String,
    queues: Mutex<Vec<String>>,
    buses: Mutex<Vec<RabbitBus>>,
}

impl Rabbit {
    fn config(&self) -> RabbitConfig {
        RabbitConfig {
            // Prefetch 1 makes competing consumers deterministic: a consumer holding one
            // unacknowledged delivery gets nothing more until it acks.
            prefetch: 1,
            exchange: self.exchange.clone(),
            ..RabbitConfig::new(self.url.clone())
        }
    }

    async fn raw_connection(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ at AMQP_URL is unreachable")
    }
}

#[async_trait]
impl Backend for Rabbit {
    type Bus = RabbitBus;

    async fn bus(&self) -> RabbitBus {
        let bus = RabbitBus::connect(self.config())
            .await
            .unwrap_or_else(|e| panic!("RabbitMQ at AMQP_URL is unreachable: {e}"));
        self.buses.lock().unwrap().push(bus.clone());
        bus
    }

    fn queue(&self, name: &str) -> String {
        let queue = format!("{}.{name}", self.prefix);
        self.queues.lock().unwrap().push(queue.clone());
        queue
    }

    async fn close(&self, bus: &RabbitBus) {
        bus.close().await;
    }
}

async fn setup(test: &str) -> Option<Rabbit> {
    let url = amqp_url()?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("mpc-bus-test.{test}.{}", &id[..8]);
    Some(Rabbit {
        url,
        exchange: format!("{prefix}.events"),
        prefix,
        queues: Mutex::new(Vec::new()),
        buses: Mutex::new(Vec::new()),
    })
}

async fn teardown(rabbit: Rabbit) {
    let buses = std::mem::take(&mut *rabbit.buses.lock().unwrap());
    for bus in buses {
        bus.close().await;
    }
    let connection = rabbit.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let queues = std::mem::take(&mut *rabbit.queues.lock().unwrap());
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
    channel
        .exchange_delete(
            rabbit.exchange.as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();
    connection.close(200, "done".into()).await.unwrap();
}

bus_suite!(setup, teardown;
    routes_by_topic_pattern,
    delivers_the_event_intact,
    events_wait_in_a_queue_without_consumer,
    ack_removes_the_event,
    dropped_subscription_redelivers_unacked_events,
    nack_requeues_or_drops,
    competing_consumers_get_distinct_events,
    ping_and_close,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_message_is_rejected_and_the_subscription_continues() {
    let Some(rabbit) = setup("malformed").await else {
        return;
    };
    let queue = rabbit.queue("q");
    let bus = rabbit.bus().await;
    let mut sub = bus.subscribe(&queue, &["session.*"]).await.unwrap();

    // Someone else's message on our exchange: not an event.
    let connection = rabbit.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    channel
        .basic_publish(
            rabbit.exchange.as_str().into(),
            "session.created".into(),
            BasicPublishOptions::default(),
            br#"{"not":"an event"}"#,
            BasicProperties::default().with_message_id("foreign-1".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let event = sample_event(EventKind::Created);
    bus.publish(&event).await.unwrap();

    let delivery = next(&mut sub).await;
    assert_eq!(delivery.event.event_id, event.event_id);
    delivery.ack().await.unwrap();
    assert_quiet(&mut sub).await;
    // Closing the consumer's connection returns whatever it still held to the queue before
    // `close` returns, so a requeued malformed message would now be counted as ready.
    bus.close().await;
    drop(sub);

    // Rejected without requeue: nothing is left in the queue.
    let remaining = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count();
    assert_eq!(remaining, 0, "the malformed message is still queued");
    connection.close(200, "done".into()).await.unwrap();
    teardown(rabbit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_consumer_connection_without_ack_redelivers_to_a_new_consumer() {
    let Some(rabbit) = setup("conn-closed").await else {
        return;
    };
    let queue = rabbit.queue("q");
    let consumer_bus = rabbit.bus().await;
    let mut sub = consumer_bus
        .subscribe(&queue, &["session.*"])
        .await
        .unwrap();
    let event = sample_event(EventKind::Started);
    rabbit.bus().await.publish(&event).await.unwrap();
    let unacked = next(&mut sub).await;
    assert_eq!(unacked.event.event_id, event.event_id);

    consumer_bus.close().await; // the consumer process goes away mid-work
    assert!(sub.next().await.is_none());

    let mut successor = rabbit
        .bus()
        .await
        .subscribe(&queue, &["session.*"])
        .await
        .unwrap();
    let again = next(&mut successor).await;
    assert_eq!(again.event.event_id, event.event_id);
    assert!(again.redelivered);
    again.ack().await.unwrap();
    drop(unacked);
    teardown(rabbit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_subscriptions_recover_after_the_connection_drops() {
    let Some(rabbit) = setup("reconnect").await else {
        return;
    };
    let queue = rabbit.queue("q");
    let bus = rabbit.bus().await;
    let mut sub = bus.subscribe(&queue, &["session.*"]).await.unwrap();

    bus.simulate_connection_loss().await;
    // The publish finds the connection gone, reconnects and goes through.
    let event = sample_event(EventKind::Completed);
    bus.publish(&event).await.unwrap();
    // The subscription re-declares its queue on the new connection and resumes.
    let delivery = next(&mut sub).await;
    assert_eq!(delivery.event.event_id, event.event_id);
    delivery.ack().await.unwrap();
    bus.ping().await.unwrap();
    teardown(rabbit).await;
}

#[tokio::test]
async fn connect_reports_an_unreachable_broker_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let config = RabbitConfig::new("amqp://user:hunter2@127.0.0.1:1/%2f");
    let err = RabbitBus::connect(config.clone()).await.unwrap_err();
    assert!(matches!(err, mpc_bus::BusError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{config:?}").contains("hunter2"));

    let bad = RabbitBus::connect(RabbitConfig::new("not a url :hunter2"))
        .await
        .unwrap_err();
    assert!(matches!(bad, mpc_bus::BusError::Config(_)), "{bad}");
    assert!(!bad.to_string().contains("hunter2"), "{bad}");
}
