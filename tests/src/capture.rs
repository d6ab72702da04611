//! What travels: every row the control plane writes to the `outbox`, and the messages sitting in
//! a queue on the broker, read without taking them away.

use anyhow::{Context, Result};
use futures_util::future::try_join_all;
use lapin::{
    Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicNackOptions},
};
use sqlx::PgPool;
use trove_common::config::AmqpConfig;

/// A trigger that copies every row inserted into `outbox`: the daemons delete a row as soon as
/// it is published, so a test reads what was written from the copy.
const OUTBOX_LOG: &str = "
CREATE TABLE test_outbox_log (id bigint PRIMARY KEY, topic text NOT NULL, method text, body bytea NOT NULL);
CREATE FUNCTION test_outbox_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_outbox_log (id, topic, method, body) VALUES (NEW.id, NEW.topic, NEW.method, NEW.body);
    RETURN NEW;
END $$;
CREATE TRIGGER test_outbox_log AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION test_outbox_log();
";

/// One row as it was written to the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub topic: String,
    pub method: Option<String>,
    pub body: Vec<u8>,
}

/// Starts copying outbox rows (see [`outbox_log`]).
pub async fn log_outbox(pool: &PgPool) -> Result<()> {
    sqlx::raw_sql(OUTBOX_LOG).execute(pool).await?;
    Ok(())
}

/// Every row written to the outbox since [`log_outbox`], oldest first.
pub async fn outbox_log(pool: &PgPool) -> Result<Vec<OutboxRow>> {
    Ok(
        sqlx::query_as("SELECT topic, method, body FROM test_outbox_log ORDER BY id")
            .fetch_all(pool)
            .await?,
    )
}

/// The bodies of every message now in `queue`, in queue order. They are taken with `basic_get`
/// and all put back (`nack` with requeue), so the consumer that starts later still gets them.
pub async fn peek_queue(amqp: &AmqpConfig, queue: &str) -> Result<Vec<Vec<u8>>> {
    let conn = Connection::connect(&amqp.url, ConnectionProperties::default())
        .await
        .context("connecting to the test vhost")?;
    let ch = conn.create_channel().await?;
    let mut taken = Vec::new();
    // Unacked messages are not handed out again on this channel, so this ends at the queue's end.
    while let Some(got) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .with_context(|| format!("basic_get from {queue}"))?
    {
        taken.push(got.delivery);
    }
    let bodies = taken.iter().map(|d| d.data.clone()).collect();
    try_join_all(taken.iter().map(|d| {
        d.acker.nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
    }))
    .await
    .context("putting the messages back")?;
    let _ = ch.close(200, "peeked".into()).await;
    let _ = conn.close(200, "peeked".into()).await;
    Ok(bodies)
}
