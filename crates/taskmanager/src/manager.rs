//! The taskmanager's shared handle and the glue between handlers and the bus.

use std::sync::Arc;

use anyhow::Result;
use sqlx::{PgPool, Postgres, Transaction};
use trove_common::{
    amqp::{Bus, Outcome},
    outbox,
    rpc::{RequestContext, RpcMessage, guest::GuestMethod},
};

use crate::config::TaskManagerConfig;

#[derive(Clone)]
pub struct TaskManager {
    pub pool: PgPool,
    pub bus: Arc<Bus>,
    pub config: Arc<TaskManagerConfig>,
}

/// What a handler returns: an error is transient (retry); a message that can never succeed is
/// acknowledged with a log line instead, since retrying it would only loop.
pub type HandlerResult = Result<()>;

pub fn outcome(method: &str, r: HandlerResult) -> Outcome {
    match r {
        Ok(()) => Outcome::Ack,
        Err(e) => {
            tracing::warn!(method, error = %format!("{e:#}"), "handler failed, will retry");
            Outcome::Retry
        }
    }
}

impl TaskManager {
    /// Stores a cast to a guest in the caller's transaction (sent after commit).
    pub async fn enqueue_guest(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        topic: &str,
        method: &GuestMethod,
        context: RequestContext,
    ) -> Result<i64> {
        let msg = RpcMessage::new(method, context);
        outbox::enqueue(tx, topic, &msg).await
    }

    /// Commits, then publishes what the transaction enqueued.
    pub async fn commit_and_send(
        &self,
        tx: Transaction<'_, Postgres>,
        ids: Vec<i64>,
    ) -> Result<()> {
        tx.commit().await?;
        outbox::flush(&self.pool, &self.bus, &ids).await;
        Ok(())
    }
}
