//! Consuming a queue: manual acks, reconnect with backoff, and what each handler outcome does to
//! the delivery, including bounded retries so one failing message cannot hold up the queue.

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{FutureExt, StreamExt};
use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    },
    types::FieldTable,
};
use tokio_util::sync::CancellationToken;

use super::{
    Bus, Outcome, Role,
    delivery::{Delivered, Meta},
};
use crate::rpc::RpcMessage;

/// Pause before a failed message is put back: long enough not to spin on a message that fails
/// at once, short enough that the messages queued behind it are barely delayed.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Pause before a delivery is handed back while a dependency is down, so it is not hammered.
const OUTAGE_PAUSE: Duration = Duration::from_millis(500);

impl Bus {
    /// Consumes `queue` until `cancel` fires, handing each decoded message and its
    /// broker-validated sender to `handler`. Survives broker restarts: the consumer is re-created
    /// with backoff. The control plane declares the queue (bound with its own name) first; a
    /// guest host consumes a queue the control plane declared.
    pub async fn serve<H, F>(
        self: Arc<Self>,
        queue: String,
        handler: H,
        cancel: CancellationToken,
    ) -> Result<()>
    where
        H: Fn(Delivered) -> F + Send + Sync,
        F: Future<Output = Outcome> + Send,
    {
        let mut delay = Duration::from_millis(200);
        while !cancel.is_cancelled() {
            match self.consume_once(&queue, &handler, &cancel).await {
                Ok(()) => break,
                Err(e) => {
                    let code = super::reply_code(&e);
                    if self.role == Role::GuestHost && code == Some(404) {
                        // The control plane declares a host's queues (the provisioning queue
                        // on the host's first heartbeat); until then there is nothing to consume.
                        tracing::info!(queue = %queue, "queue not declared by the control plane yet; waiting");
                    } else if self.role == Role::GuestHost && code == Some(403) {
                        tracing::error!(
                            queue = %queue, broker.user = %self.user,
                            "the broker refuses this user the host's queue: amqp.url must name the user trove-manage host-add issued for this host id"
                        );
                    } else {
                        tracing::warn!(queue = %queue, error = %format!("{e:#}"), "consumer lost, reconnecting");
                    }
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
        H: Fn(Delivered) -> F + Send + Sync,
        F: Future<Output = Outcome> + Send,
    {
        let ch = self.channel().await?;
        if self.role == Role::ControlPlane {
            self.declare_on(&ch, queue, queue).await?;
        }
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
            let meta = Meta::read(&delivery.properties, &self.user);
            let (method, outcome) = match RpcMessage::decode(&delivery.data) {
                Ok(message) => {
                    let method = message.method.clone();
                    let delivered = Delivered {
                        message,
                        sender: meta.sender.clone(),
                    };
                    (method, run_handler(queue, handler, delivered).await)
                }
                Err(e) => {
                    tracing::warn!(queue = %queue, error = %e, "undecodable message, dead-lettering");
                    (String::new(), Outcome::DeadLetter)
                }
            };
            self.settle(queue, &method, delivery, &meta, outcome)
                .await?;
        }
    }

    /// Acks, dead-letters or puts back one delivery as its handler asked.
    async fn settle(
        &self,
        queue: &str,
        method: &str,
        delivery: Delivery,
        meta: &Meta,
        outcome: Outcome,
    ) -> Result<()> {
        match outcome {
            Outcome::Ack => ack(&delivery).await?,
            Outcome::DeadLetter => dead_letter(&delivery).await?,
            Outcome::Outage => {
                tokio::time::sleep(OUTAGE_PAUSE).await;
                requeue(&delivery).await?
            }
            Outcome::Retry => {
                let failed = meta.attempts.saturating_add(1);
                if failed >= self.cfg.max_attempts {
                    // The one log line a poison message gets when it leaves the queue.
                    tracing::error!(
                        queue,
                        method,
                        attempts = failed,
                        sender = meta.sender.as_deref().unwrap_or(""),
                        "message failed on every delivery; dead-lettered"
                    );
                    return dead_letter(&delivery).await;
                }
                if self.role != Role::ControlPlane {
                    // A guest host may not publish into its own queues, so it cannot count.
                    tracing::error!(
                        queue,
                        method,
                        "message failed on a guest host; dead-lettered"
                    );
                    return dead_letter(&delivery).await;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                let props = meta.retry_properties(&delivery.properties);
                // Through the default exchange, straight to this queue only, behind what waits.
                match self.publish_raw("", queue, &delivery.data, props).await {
                    Ok(()) => ack(&delivery).await?,
                    Err(e) => {
                        tracing::warn!(queue, method, error = %format!("{e:#}"), "could not put a failed message back; requeueing it in place");
                        requeue(&delivery).await?
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs the handler; a panic counts as a failed delivery instead of killing the consumer.
async fn run_handler<H, F>(queue: &str, handler: &H, delivered: Delivered) -> Outcome
where
    H: Fn(Delivered) -> F + Send + Sync,
    F: Future<Output = Outcome> + Send,
{
    let method = delivered.message.method.clone();
    match AssertUnwindSafe(handler(delivered)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!(
                queue,
                method,
                "handler panicked; the message counts as failed"
            );
            Outcome::Retry
        }
    }
}

async fn ack(delivery: &Delivery) -> Result<()> {
    delivery.acker.ack(BasicAckOptions::default()).await?;
    Ok(())
}

async fn dead_letter(delivery: &Delivery) -> Result<()> {
    delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await?;
    Ok(())
}

async fn requeue(delivery: &Delivery) -> Result<()> {
    delivery
        .acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await?;
    Ok(())
}
