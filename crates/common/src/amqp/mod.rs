//! The one AMQP wrapper: durable topology declared idempotently, persistent messages with
//! publisher confirms and a broker-validated sender (`user_id`), manual acks, bounded prefetch,
//! reconnect with backoff, bounded retries, and a dead-letter queue for messages no handler can
//! ever accept.

mod consumer;
mod delivery;

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};
use tokio::sync::Mutex;

pub use delivery::Delivered;

use crate::{
    config::AmqpConfig,
    rpc::{RpcMessage, topics},
};

/// A boxed handler future: boxing at the consumer boundary lets the compiler check `Send` on
/// the concrete future, which it cannot do through some higher-ranked lifetimes (sqlx executors).
pub type HandlerFuture = std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What a handler wants done with a delivery once it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect is persisted (or the message was a harmless duplicate).
    Ack,
    /// The message can never be handled, or was refused: park it in the dead-letter queue.
    DeadLetter,
    /// The handler failed on this message: deliver it again behind the messages queued after it,
    /// and dead-letter it once `amqp.max_attempts` deliveries have failed.
    Retry,
    /// A dependency (the control database) is down, which is no fault of this message: deliver
    /// it again after a pause, without counting an attempt.
    Outage,
}

/// Who this process is on the broker, which decides what it declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// trove-api and trove-taskmanager: they declare the exchanges and every queue.
    ControlPlane,
    /// A guest host: its broker user may only consume its own queues and publish to the
    /// conductor, so it declares nothing and cannot requeue a message behind others.
    GuestHost,
}

pub struct Bus {
    cfg: AmqpConfig,
    role: Role,
    /// The broker user this process authenticates as; stamped as `user_id` on every publish.
    user: String,
    conn: Mutex<Option<Connection>>,
    publisher: Mutex<Option<Channel>>,
    /// Queues this process already declared, so a publish does not re-declare every time.
    declared: Mutex<HashSet<String>>,
}

impl Bus {
    /// Connects as the control plane (see [`Bus::connect_as`]).
    pub async fn connect(cfg: &AmqpConfig) -> Result<Arc<Self>> {
        Self::connect_as(cfg, Role::ControlPlane).await
    }

    /// Connects, retrying with backoff for `connect_timeout_secs`; the control plane also
    /// declares the exchanges and the dead-letter queue.
    pub async fn connect_as(cfg: &AmqpConfig, role: Role) -> Result<Arc<Self>> {
        cfg.validate()?;
        let user = cfg.uri()?.authority.userinfo.username;
        let bus = Arc::new(Self {
            cfg: cfg.clone(),
            role,
            user,
            conn: Mutex::new(None),
            publisher: Mutex::new(None),
            declared: Mutex::new(HashSet::new()),
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.connect_timeout_secs);
        let mut delay = Duration::from_millis(200);
        loop {
            match bus.channel().await {
                Ok(ch) => {
                    let _ = ch.close(200, "connected".into()).await;
                    return Ok(bus);
                }
                Err(e) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::warn!(error = %format!("{e:#}"), "broker not reachable yet, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e.context("connecting to RabbitMQ")),
            }
        }
    }

    pub fn exchange(&self) -> &str {
        &self.cfg.exchange
    }

    /// The broker user this process publishes as.
    pub fn user(&self) -> &str {
        &self.user
    }

    fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.cfg.exchange)
    }

    /// The queue every dead-lettered message ends in.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letter", self.cfg.exchange)
    }

    /// A fresh channel on a live connection; reconnects (and re-declares the exchanges) if needed.
    async fn channel(&self) -> Result<Channel> {
        let mut guard = self.conn.lock().await;
        let alive = guard
            .as_ref()
            .map(|c| c.status().connected())
            .unwrap_or(false);
        if !alive {
            let props = ConnectionProperties::default()
                .with_connection_name(format!("trove-rs pid {}", std::process::id()).into());
            let conn = Connection::connect_uri(self.cfg.uri()?, props)
                .await
                .with_context(|| format!("connecting to {}", crate::db::redact(&self.cfg.url)))?;
            if self.role == Role::ControlPlane {
                self.declare_exchanges(&conn).await?;
            }
            // A new connection means channels and the declared cache are stale.
            self.declared.lock().await.clear();
            *self.publisher.lock().await = None;
            *guard = Some(conn);
        }
        let conn = guard.as_ref().expect("connection set just above");
        Ok(conn.create_channel().await?)
    }

    async fn declare_exchanges(&self, conn: &Connection) -> Result<()> {
        let ch = conn.create_channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            self.cfg.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .context("declaring the RPC exchange")?;
        let dlx = self.dead_letter_exchange();
        ch.exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        let dead = self.dead_letter_queue();
        ch.queue_declare(
            dead.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
        ch.queue_bind(
            dead.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let _ = ch.close(200, "topology declared".into()).await;
        Ok(())
    }

    /// Declares the durable queue `queue` (dead-lettering into the DLX) and binds it to the
    /// exchange with `routing_key`. Only the control plane declares: a guest host's broker user
    /// may not, so a host cannot route another instance's messages to itself.
    async fn declare_on(&self, ch: &Channel, queue: &str, routing_key: &str) -> Result<()> {
        if self.role != Role::ControlPlane {
            bail!("a guest host does not declare queues ({queue})");
        }
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_letter_exchange().into()),
        );
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .with_context(|| format!("declaring queue {queue}"))?;
        ch.queue_bind(
            queue.into(),
            self.cfg.exchange.as_str().into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("binding queue {queue} to {routing_key}"))?;
        Ok(())
    }

    /// Makes sure `queue` exists and receives what is published with `routing_key` (cached:
    /// cheap to call before every cast).
    pub async fn declare_route(&self, queue: &str, routing_key: &str) -> Result<()> {
        if self.declared.lock().await.contains(queue) {
            return Ok(());
        }
        let ch = self.publisher().await?;
        self.declare_on(&ch, queue, routing_key).await?;
        self.declared.lock().await.insert(queue.to_string());
        Ok(())
    }

    async fn publisher(&self) -> Result<Channel> {
        {
            let guard = self.publisher.lock().await;
            if let Some(ch) = guard.as_ref().filter(|c| c.status().connected()) {
                return Ok(ch.clone());
            }
        }
        let ch = self.channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *self.publisher.lock().await = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes a persistent message to `topic` and waits for the broker's confirm. The
    /// message carries this process's broker user as `user_id`, which the broker checks.
    pub async fn publish(&self, topic: &str, msg: &RpcMessage) -> Result<()> {
        if self.role == Role::ControlPlane && topics::declared_on_publish(topic) {
            self.declare_route(topic, topic).await?;
        }
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let exchange = self.cfg.exchange.clone();
        self.publish_raw(&exchange, topic, &msg.encode(), props)
            .await
            .with_context(|| format!("publishing {} to {topic}", msg.method))
    }

    /// Publishes `body` with `props` (plus this process's `user_id`) and waits for the confirm;
    /// a nack or a return (nothing bound) is an error.
    async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<()> {
        let ch = self.publisher().await?;
        let props = props.with_user_id(self.user.as_str().into());
        let confirm = ch
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                props,
            )
            .await?
            .await
            .context("waiting for the publisher confirm")?;
        if confirm.is_nack() {
            bail!("the broker refused the message");
        }
        if confirm.take_message().is_some() {
            // The queue may have been deleted behind our back: declare it again next time.
            self.declared.lock().await.remove(routing_key);
            bail!("no queue is bound for {routing_key}; the message was returned");
        }
        Ok(())
    }

    /// Deletes a queue (an instance that is gone no longer needs its guest queue).
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        let ch = self.channel().await?;
        ch.queue_delete(name.into(), Default::default()).await?;
        self.declared.lock().await.remove(name);
        let _ = ch.close(200, "done".into()).await;
        Ok(())
    }

    /// How many messages wait in `queue` (ready, not counting unacked deliveries).
    pub async fn queue_depth(&self, queue: &str) -> Result<u32> {
        let ch = self.channel().await?;
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("looking up queue {queue}"))?;
        let _ = ch.close(200, "done".into()).await;
        Ok(q.message_count())
    }
}

/// The AMQP reply code (403 ACCESS_REFUSED, 404 NOT_FOUND, 406 PRECONDITION_FAILED, …) the
/// broker closed a channel or connection with, if that is what `err` comes from.
pub fn reply_code(err: &anyhow::Error) -> Option<u16> {
    err.chain().find_map(|cause| {
        let lapin_err = cause.downcast_ref::<lapin::Error>()?;
        match lapin_err.kind() {
            lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
            _ => None,
        }
    })
}
