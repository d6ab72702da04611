//! The taskmanager's shared handle and the glue between handlers and the bus.

use std::sync::Arc;

use anyhow::Result;
use sqlx::{PgPool, Postgres, Transaction};
use trove_common::{
    amqp::{Bus, Outcome},
    outbox,
    rpc::{Method, RequestContext, RpcMessage, guest::GuestMethod, topics},
    secrets::SecretKey,
    store::BlobStore,
};
use uuid::Uuid;

use crate::config::TaskManagerConfig;

#[derive(Clone)]
pub struct TaskManager {
    pub pool: PgPool,
    pub bus: Arc<Bus>,
    pub config: Arc<TaskManagerConfig>,
    /// Opens what trove-api sealed for the taskmanager (`config.secret_key_file`).
    pub secret_key: Arc<SecretKey>,
    /// The object store holding backups and WAL (`config.store`).
    pub store: BlobStore,
}

/// What a handler returns: an error is retried (a bounded number of times, unless the control
/// database is down); a message that can never succeed is acknowledged with a log line instead,
/// since retrying it would only loop.
pub type HandlerResult = Result<()>;

pub fn outcome(method: &str, r: HandlerResult) -> Outcome {
    match r {
        Ok(()) => Outcome::Ack,
        Err(e) if is_outage(&e) => {
            tracing::warn!(method, error = %format!("{e:#}"), "control database unavailable, will retry");
            Outcome::Outage
        }
        Err(e) => {
            tracing::warn!(method, error = %format!("{e:#}"), "handler failed, will retry");
            Outcome::Retry
        }
    }
}

/// Whether `e` says the control database cannot be reached right now, which is no fault of the
/// message being handled: such failures do not count towards dead-lettering it.
pub fn is_outage(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            // Connection exceptions, too many connections, and a server shutting down or starting.
            Some(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
                code.starts_with("08") || matches!(&*code, "53300" | "57P01" | "57P02" | "57P03")
            }),
            _ => false,
        })
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

    /// As [`TaskManager::commit_with_cast`], to the guest of an instance placed on `host`, after
    /// making sure the instance's queue on that host receives it.
    pub async fn commit_with_instance_cast(
        &self,
        tx: Transaction<'_, Postgres>,
        instance_id: Uuid,
        host: &str,
        method: &GuestMethod,
        context: RequestContext,
    ) -> Result<()> {
        self.ensure_instance_queue(host, instance_id).await?;
        self.commit_with_cast(tx, &topics::guest(instance_id), method, context)
            .await
    }

    /// Declares `guesthost.<host>.<instance_id>`, bound to Trove's topic `guestagent.<id>`. Only
    /// the control plane binds queues, so a host can never bind another instance's topic to a
    /// queue it reads. Idempotent and cached.
    pub async fn ensure_instance_queue(&self, host: &str, instance_id: Uuid) -> Result<()> {
        self.bus
            .declare_route(
                &topics::guest_instance_queue(host, instance_id),
                &topics::guest(instance_id),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_an_outage_and_a_failing_query_is_not() {
        assert!(is_outage(&anyhow::Error::new(sqlx::Error::PoolTimedOut)));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(is_outage(
            &anyhow::Error::new(sqlx::Error::Io(io)).context("locking the instance")
        ));
        assert!(!is_outage(&anyhow::Error::new(sqlx::Error::RowNotFound)));
        assert!(!is_outage(&anyhow::anyhow!("the guest sent nonsense")));
        assert_eq!(
            outcome("heartbeat", Err(sqlx::Error::PoolClosed.into())),
            Outcome::Outage
        );
        assert_eq!(
            outcome("heartbeat", Err(anyhow::anyhow!("boom"))),
            Outcome::Retry
        );
    }
}
