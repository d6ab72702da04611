//! The one AMQP wrapper: durable topology declared idempotently, persistent messages with
//! publisher confirms, manual acks, bounded prefetch, reconnect with backoff, and a dead-letter
//! queue for messages no handler can ever accept.

use std::{collections::HashSet, future::Future, sync::Arc, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
        BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{config::AmqpConfig, rpc::RpcMessage};

/// A boxed handler future: boxing at the consumer boundary lets the compiler check `Send` on
/// the concrete future, which it cannot do through some higher-ranked lifetimes (sqlx executors).
pub type HandlerFuture = std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// What a handler wants done with a delivery once it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The effect is persisted (or the message was a harmless duplicate).
    Ack,
    /// The message can never be handled: park it in the dead-letter queue.
    DeadLetter,
    /// A transient failure (database or broker down): deliver it again later.
    Retry,
}

pub struct Bus {
    cfg: AmqpConfig,
    conn: Mutex<Option<Connection>>,
    publisher: Mutex<Option<Channel>>,
    /// Queues this process already declared, so a publish does not re-declare every time.
    declared: Mutex<HashSet<String>>,
}

impl Bus {
    /// Connects, retrying with backoff for `connect_timeout_secs`, and declares the exchanges.
    pub async fn connect(cfg: &AmqpConfig) -> Result<Arc<Self>> {
        let bus = Arc::new(Self {
            cfg: cfg.clone(),
            conn: Mutex::new(None),
            publisher: Mutex::new(None),
            declared: Mutex::new(HashSet::new()),
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.connect_timeout_secs);
        let mut delay = Duration::from_millis(200);
        loop {
            match bus.channel().await {
                Ok(_) => return Ok(bus),
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

    fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.cfg.exchange)
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
            let conn = Connection::connect(&self.cfg.url, props)
                .await
                .with_context(|| format!("connecting to {}", crate::db::redact(&self.cfg.url)))?;
            let ch = conn.create_channel().await?;
            ch.exchange_declare(
                self.cfg.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .context("declaring the RPC exchange")?;
            let dlx = self.dead_letter_exchange();
            ch.exchange_declare(
                dlx.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
            let dead = format!("{}.dead-letter", self.cfg.exchange);
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
            // A new connection means channels and the declared cache are stale.
            self.declared.lock().await.clear();
            *self.publisher.lock().await = None;
            *guard = Some(conn);
        }
        let conn = guard.as_ref().expect("connection set just above");
        Ok(conn.create_channel().await?)
    }

    /// Declares a durable queue bound to the exchange with its own name as routing key.
    /// Declaring before the first publish means a cast to a guest that has not started
    /// consuming yet is kept, not dropped.
    async fn declare_queue(&self, ch: &Channel, name: &str) -> Result<()> {
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_letter_exchange().into()),
        );
        ch.queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .with_context(|| format!("declaring queue {name}"))?;
        ch.queue_bind(
            name.into(),
            self.cfg.exchange.as_str().into(),
            name.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("binding queue {name}"))?;
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

    /// Publishes a persistent message to `topic` and waits for the broker's confirm.
    pub async fn publish(&self, topic: &str, msg: &RpcMessage) -> Result<()> {
        let ch = self.publisher().await?;
        let known = self.declared.lock().await.contains(topic);
        if !known {
            self.declare_queue(&ch, topic).await?;
            self.declared.lock().await.insert(topic.to_string());
        }
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into());
        let confirm = ch
            .basic_publish(
                self.cfg.exchange.as_str().into(),
                topic.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &msg.encode(),
                props,
            )
            .await
            .with_context(|| format!("publishing {} to {topic}", msg.method))?
            .await
            .with_context(|| format!("waiting for the confirm of {} to {topic}", msg.method))?;
        if confirm.is_nack() {
            bail!("broker refused {} to {topic}", msg.method);
        }
        if confirm.take_message().is_some() {
            bail!("no queue bound for {topic}; {} was returned", msg.method);
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

    /// Consumes `queue` until `cancel` fires, handing each decoded message to `handler`.
    /// Survives broker restarts: the consumer is re-created with backoff.
    pub async fn serve<H, F>(
        self: Arc<Self>,
        queue: String,
        handler: H,
        cancel: CancellationToken,
    ) -> Result<()>
    where
        H: Fn(RpcMessage) -> F + Send + Sync,
        F: Future<Output = Outcome> + Send,
    {
        let mut delay = Duration::from_millis(200);
        while !cancel.is_cancelled() {
            match self.consume_once(&queue, &handler, &cancel).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(queue = %queue, error = %format!("{e:#}"), "consumer lost, reconnecting");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        Ok(())
    }

    async fn consume_once<H, F>(
        &self,
        queue: &str,
        handler: &H,
        cancel: &CancellationToken,
    ) -> Result<()>
    where
        H: Fn(RpcMessage) -> F + Send + Sync,
        F: Future<Output = Outcome> + Send,
    {
        let ch = self.channel().await?;
        self.declare_queue(&ch, queue).await?;
        ch.basic_qos(self.cfg.prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("{queue}-{}", uuid::Uuid::new_v4().simple());
        let mut consumer = ch
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions {
                    no_ack: false,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("consuming {queue}"))?;
        loop {
            let delivery = tokio::select! {
                _ = cancel.cancelled() => {
                    let _ = ch.close(200, "shutting down".into()).await;
                    return Ok(());
                }
                d = consumer.next() => d,
            };
            let delivery = match delivery {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(anyhow!(e).context("delivery error")),
                None => bail!("consumer stream ended"),
            };
            let outcome = match RpcMessage::decode(&delivery.data) {
                Ok(msg) => handler(msg).await,
                Err(e) => {
                    tracing::warn!(queue = %queue, error = %e, "undecodable message, dead-lettering");
                    Outcome::DeadLetter
                }
            };
            match outcome {
                Outcome::Ack => delivery.acker.ack(BasicAckOptions::default()).await?,
                Outcome::DeadLetter => {
                    delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await?
                }
                Outcome::Retry => {
                    // Back off before handing it back, so a dead dependency is not hammered.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await?
                }
            };
        }
    }
}
