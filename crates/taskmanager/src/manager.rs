//! The taskmanager's shared handle and the glue between handlers and the bus.

use std::sync::Arc;

use anyhow::Result;
use sqlx::{PgPool, Postgres, Transaction};
use trove_common::{
    amqp::{Bus, Outcome},
    outbox,
    rpc::{Method, RequestContext, RpcMessage, guest::GuestMethod},
    secrets::SecretKey,
};

use crate::config::TaskManagerConfig;

#[derive(Clone)]
pub struct TaskManager {
    pub pool: PgPool,
    pub bus: Arc<Bus>,
    pub config: Arc<TaskManagerConfig>,
    /// Opens what trove-api sealed for the taskmanager (`config.secret_key_file`).
    pub secret_key: Arc<SecretKey>,
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

/// Matches a delivery against `topic`'s message set; one no handler can ever accept is parked in
/// the dead-letter queue rather than retried.
pub fn parse_or_dead_letter<M: Method>(msg: &RpcMessage, topic: &str) -> Result<M, Outcome> {
    msg.parse::<M>().map_err(|e| {
        tracing::warn!(topic, error = %e, "unknown or malformed message");
        Outcome::DeadLetter
    })
}

impl TaskManager {
    /// Stores a cast to a guest in `tx` with the state change it belongs to, commits, then
    /// publishes it (the sweeper sends it again if that publish fails).
    pub async fn commit_with_cast(
        &self,
        mut tx: Transaction<'_, Postgres>,
        topic: &str,
        method: &GuestMethod,
        context: RequestContext,
    ) -> Result<()> {
        let id = outbox::enqueue(&mut tx, topic, &RpcMessage::new(method, context)).await?;
        tx.commit().await?;
        outbox::flush(&self.pool, &self.bus, &[id]).await;
        Ok(())
    }
}
