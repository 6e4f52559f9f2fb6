//! The production event bus: RabbitMQ over AMQP 0-9-1 (lapin).
//!
//! - One durable topic exchange (`mpc.events` by default); events are routed by
//!   `session.<kind>`.
//! - Each subscription declares its durable queue and binds it once per pattern, then consumes
//!   with manual acknowledgement and `basic.qos` prefetch. Unacknowledged deliveries go back to
//!   the queue (`redelivered`) when their channel closes: a dropped subscription, a crash.
//! - Messages are persistent (delivery mode 2) JSON with `content_type = application/json` and
//!   `message_id = event_id`; `publish` returns only after the broker confirmed the message.
//! - A message that is not a valid event is rejected without requeue and logged by its id only
//!   (its body may carry join tokens).
//! - When the connection drops, the next publish reconnects and retries once; subscriptions
//!   reconnect with exponential backoff, re-declare their queue and resume. Delivery is
//!   at least once: consumers de-duplicate on `event_id`.
//!
//! The connection is plain AMQP: the broker is an internal service (no TLS provider is built).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use tokio_util::sync::CancellationToken;

use crate::{Acker, BusError, Delivery, EventBus, SessionEvent, Subscription};

/// Connecting takes longer than this only when the broker is unreachable in a way TCP does not
/// report quickly (a black-holed address).
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// A broker that does not confirm within this is treated as unavailable.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(10);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// How to reach RabbitMQ.
#[derive(Clone)]
pub struct RabbitConfig {
    /// `amqp://user:password@host:5672/%2f` (`AMQP_URL`). Never printed: `Debug` hides it.
    pub url: String,
    /// The topic exchange events go through; `mpc.events` unless several systems share a
    /// broker.
    pub exchange: String,
    /// How many unacknowledged deliveries one subscription may hold (`basic.qos`). A server
    /// party acknowledges `session.created` only when the session is over, so this is also the
    /// most sessions it can see at once: it must not be smaller than the party's session bound
    /// (`max_concurrent_sessions`), or sessions would wait unseen in the queue.
    pub prefetch: u16,
}

impl RabbitConfig {
    pub const DEFAULT_EXCHANGE: &'static str = "mpc.events";
    pub const DEFAULT_PREFETCH: u16 = 1024;

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            exchange: Self::DEFAULT_EXCHANGE.to_owned(),
            prefetch: Self::DEFAULT_PREFETCH,
        }
    }
}

impl fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("url", &"[REDACTED]")
            .field("exchange", &self.exchange)
            .field("prefetch", &self.prefetch)
            .finish()
    }
}

/// The RabbitMQ bus. Clones share one connection.
#[derive(Clone)]
pub struct RabbitBus {
    inner: Arc<Inner>,
}

impl fmt::Debug for RabbitBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitBus")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: RabbitConfig,
    uri: AMQPUri,
    /// The current connection; replaced when it is found broken. Held across connecting, so
    /// that callers that find it broken at the same time reconnect once, not once each.
    link: tokio::sync::Mutex<Option<Link>>,
    generations: AtomicU64,
    closed: CancellationToken,
}

/// One connection with its publishing channel (in confirm mode).
#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    publisher: Channel,
    generation: u64,
}

impl Link {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }
}

fn unavailable(what: &str, e: &lapin::Error) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}

impl RabbitBus {
    /// Connects and declares the exchange; fails when the broker is unreachable.
    pub async fn connect(config: RabbitConfig) -> Result<Self, BusError> {
        // Parse here so that a bad URL is a configuration error that does not echo the URL
        // (it carries the password).
        let uri: AMQPUri = config
            .url
            .parse()
            .map_err(|_| BusError::Config("invalid AMQP URL".into()))?;
        if config.exchange.is_empty() {
            return Err(BusError::Config("exchange name must not be empty".into()));
        }
        let inner = Arc::new(Inner {
            config,
            uri,
            link: tokio::sync::Mutex::new(None),
            generations: AtomicU64::new(0),
            closed: CancellationToken::new(),
        });
        inner.link().await?;
        Ok(Self { inner })
    }

    /// Closes the connection: subscriptions end (`next()` → `None`), their unacknowledged
    /// deliveries go back to their queues, and publishing fails with [`BusError::Closed`].
    pub async fn close(&self) {
        self.inner.closed.cancel();
        if let Some(link) = self.inner.link.lock().await.take()
            && let Err(e) = link.connection.close(200, "closing".into()).await
        {
            tracing::debug!(error = %e, "closing the AMQP connection");
        }
    }

    /// Closes the current connection as a network failure would, without closing the bus:
    /// the next publish and every subscription must reconnect by themselves.
    #[cfg(feature = "testing")]
    pub async fn simulate_connection_loss(&self) {
        let link = self.inner.link.lock().await.clone();
        if let Some(link) = link {
            let _ = link
                .connection
                .close(320, "simulated connection loss".into())
                .await;
        }
    }
}

impl Inner {
    /// The current connection, reconnecting (one attempt) when it is broken.
    async fn link(&self) -> Result<Link, BusError> {
        let mut current = self.link.lock().await;
        if self.closed.is_cancelled() {
            return Err(BusError::Closed);
        }
        if let Some(link) = current.as_ref().filter(|l| l.usable()) {
            return Ok(link.clone());
        }
        if let Some(broken) = current.take() {
            // Half-broken (the publisher channel died): close the rest so that consumers on it
            // notice and move to the new connection too.
            tokio::spawn(async move {
                let _ = broken.connection.close(200, "reconnecting".into()).await;
            });
        }
        let link = tokio::time::timeout(CONNECT_DEADLINE, self.open_link())
            .await
            .map_err(|_| BusError::Unavailable("connecting to the broker timed out".into()))??;
        tracing::info!(
            generation = link.generation,
            "connected to the event broker"
        );
        *current = Some(link.clone());
        Ok(link)
    }

    /// Forgets `generation` if it is still the current link, so the next caller reconnects.
    async fn invalidate(&self, generation: u64) {
        let mut current = self.link.lock().await;
        if current.as_ref().is_some_and(|l| l.generation == generation)
            && let Some(broken) = current.take()
        {
            tokio::spawn(async move {
                let _ = broken.connection.close(200, "reconnecting".into()).await;
            });
        }
    }

    async fn open_link(&self) -> Result<Link, BusError> {
        let properties = ConnectionProperties::default().with_connection_name("mpc-bus".into());
        let connection = Connection::connect_uri(self.uri.clone(), properties)
            .await
            .map_err(|e| unavailable("connecting to the broker", &e))?;
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| unavailable("opening a channel", &e))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| unavailable("enabling publisher confirms", &e))?;
        self.declare_exchange(&publisher).await?;
        Ok(Link {
            connection: Arc::new(connection),
            publisher,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    async fn declare_exchange(&self, channel: &Channel) -> Result<(), BusError> {
        channel
            .exchange_declare(
                self.config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| unavailable("declaring the exchange", &e))
    }

    async fn publish_on(
        &self,
        link: &Link,
        event: &SessionEvent,
        body: &[u8],
    ) -> Result<(), BusError> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(event.event_id.to_string().into());
        let confirm = link
            .publisher
            .basic_publish(
                self.config.exchange.as_str().into(),
                event.routing_key().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .map_err(|e| unavailable("publishing", &e))?;
        let confirmation = tokio::time::timeout(CONFIRM_DEADLINE, confirm)
            .await
            .map_err(|_| BusError::Unavailable("the broker did not confirm the event".into()))?
            .map_err(|e| unavailable("waiting for the broker's confirmation", &e))?;
        match confirmation {
            Confirmation::Ack(_) => Ok(()),
            Confirmation::Nack(_) => {
                Err(BusError::Unavailable("the broker refused the event".into()))
            }
            Confirmation::NotRequested => Err(BusError::Unavailable(
                "publisher confirms are off on this channel".into(),
            )),
        }
    }
}

#[async_trait]
impl EventBus for RabbitBus {
    async fn publish(&self, event: &SessionEvent) -> Result<(), BusError> {
        let body =
            serde_json::to_vec(event).map_err(|e| BusError::Malformed(format!("encoding: {e}")))?;
        let link = self.inner.link().await?;
        match self.inner.publish_on(&link, event, &body).await {
            Ok(()) => Ok(()),
            Err(first) => {
                tracing::warn!(event_id = %event.event_id, error = %first,
                    "publish failed; reconnecting and retrying once");
                self.inner.invalidate(link.generation).await;
                let link = self.inner.link().await?;
                self.inner.publish_on(&link, event, &body).await
            }
        }
    }

    async fn subscribe(
        &self,
        queue: &str,
        patterns: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        if queue.is_empty() {
            return Err(BusError::Config("queue name must not be empty".into()));
        }
        let mut subscription = RabbitSubscription {
            inner: self.inner.clone(),
            queue: queue.to_owned(),
            patterns: patterns.iter().map(|p| (*p).to_owned()).collect(),
            active: None,
            backoff: BACKOFF_FIRST,
        };
        // The first open must succeed: when `subscribe` returns, the queue exists and is bound,
        // so events published from then on wait for this consumer.
        subscription.active = Some(subscription.open().await?);
        Ok(Box::new(subscription))
    }

    async fn ping(&self) -> Result<(), BusError> {
        // A channel round trip: the connection status alone can lag behind a dead socket.
        let link = self.inner.link().await?;
        let channel = link.connection.create_channel().await;
        match channel {
            Ok(channel) => {
                let _ = channel.close(200, "ping".into()).await;
                Ok(())
            }
            Err(e) => {
                self.inner.invalidate(link.generation).await;
                Err(unavailable("ping", &e))
            }
        }
    }
}

struct RabbitSubscription {
    inner: Arc<Inner>,
    queue: String,
    patterns: Vec<String>,
    active: Option<ActiveConsumer>,
    backoff: Duration,
}

struct ActiveConsumer {
    channel: Channel,
    consumer: Consumer,
}

impl RabbitSubscription {
    async fn open(&self) -> Result<ActiveConsumer, BusError> {
        let link = self.inner.link().await?;
        let result = self.open_on(&link).await;
        if result.is_err() && !link.connection.status().connected() {
            self.inner.invalidate(link.generation).await;
        }
        result
    }

    async fn open_on(&self, link: &Link) -> Result<ActiveConsumer, BusError> {
        let channel = link
            .connection
            .create_channel()
            .await
            .map_err(|e| unavailable("opening a channel", &e))?;
        channel
            .basic_qos(self.inner.config.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| unavailable("setting the prefetch", &e))?;
        // Re-declared on every (re)open: the broker may have restarted without them.
        self.inner.declare_exchange(&channel).await?;
        channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| unavailable("declaring the queue", &e))?;
        for pattern in &self.patterns {
            channel
                .queue_bind(
                    self.queue.as_str().into(),
                    self.inner.config.exchange.as_str().into(),
                    pattern.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| unavailable("binding the queue", &e))?;
        }
        let tag = format!("mpc-bus-{}", uuid::Uuid::new_v4().simple());
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| unavailable("consuming", &e))?;
        Ok(ActiveConsumer { channel, consumer })
    }

    /// Reopens the consumer after a failure, waiting `backoff` first; `Err` when the bus closed.
    async fn reopen(&mut self) -> Result<(), BusError> {
        loop {
            tokio::select! {
                () = self.inner.closed.cancelled() => return Err(BusError::Closed),
                () = tokio::time::sleep(self.backoff) => {}
            }
            match self.open().await {
                Ok(active) => {
                    tracing::info!(queue = %self.queue, "event subscription resumed");
                    self.active = Some(active);
                    self.backoff = BACKOFF_FIRST;
                    return Ok(());
                }
                Err(BusError::Closed) => return Err(BusError::Closed),
                Err(e) => {
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    tracing::warn!(queue = %self.queue, error = %e,
                        retry_in_ms = self.backoff.as_millis() as u64,
                        "event subscription cannot reconnect yet");
                }
            }
        }
    }
}

#[async_trait]
impl Subscription for RabbitSubscription {
    async fn next(&mut self) -> Option<Result<Delivery, BusError>> {
        loop {
            if self.inner.closed.is_cancelled() {
                return None;
            }
            let Some(active) = self.active.as_mut() else {
                if self.reopen().await.is_err() {
                    return None;
                }
                continue;
            };
            let item = tokio::select! {
                () = self.inner.closed.cancelled() => return None,
                item = active.consumer.next() => item,
            };
            let delivery = match item {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => {
                    tracing::warn!(queue = %self.queue, error = %e, "event consumer failed; reconnecting");
                    self.active = None;
                    continue;
                }
                None => {
                    tracing::warn!(queue = %self.queue, "event consumer ended; reconnecting");
                    self.active = None;
                    continue;
                }
            };
            match serde_json::from_slice::<SessionEvent>(&delivery.data) {
                Ok(event) => {
                    let redelivered = delivery.redelivered;
                    let acker = RabbitAcker {
                        acker: delivery.acker,
                    };
                    return Some(Ok(Delivery::new(event, redelivered, Box::new(acker))));
                }
                Err(e) => {
                    // The body may hold join tokens: log where it broke, never what it says.
                    let message_id = delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|id| id.as_str().to_owned());
                    tracing::error!(queue = %self.queue, message_id = ?message_id,
                        category = ?e.classify(), line = e.line(), column = e.column(),
                        "malformed event rejected without requeue");
                    if let Err(e) = delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                    {
                        tracing::warn!(queue = %self.queue, error = %e, "rejecting a malformed event failed");
                    }
                }
            }
        }
    }
}

impl Drop for RabbitSubscription {
    fn drop(&mut self) {
        // Closing the channel returns its unacknowledged deliveries to the queue; the
        // connection is shared and stays open.
        if let Some(active) = self.active.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = active
                    .channel
                    .close(200, "subscription dropped".into())
                    .await;
            });
        }
    }
}

struct RabbitAcker {
    acker: lapin::Acker,
}

fn settled(outcome: lapin::Result<bool>, what: &str) -> Result<(), BusError> {
    match outcome {
        Ok(true) => Ok(()),
        // Already acknowledged, or its channel is gone (the broker redelivers it).
        Ok(false) => Err(BusError::Closed),
        Err(e) => Err(unavailable(what, &e)),
    }
}

#[async_trait]
impl Acker for RabbitAcker {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        settled(self.acker.ack(BasicAckOptions::default()).await, "ack")
    }

    async fn nack(self: Box<Self>, requeue: bool) -> Result<(), BusError> {
        let options = BasicNackOptions {
            requeue,
            ..BasicNackOptions::default()
        };
        settled(self.acker.nack(options).await, "nack")
    }
}
