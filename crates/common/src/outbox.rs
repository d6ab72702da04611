//! Transactional outbox: messages are stored with the state change they belong to and published
//! after commit, so a broker outage or a crash between commit and publish only delays work.

use std::time::Duration;

use anyhow::Result;
use sqlx::{PgConnection, PgPool};

use crate::{amqp::Bus, rpc::RpcMessage};

/// Stores `msg` for `topic` inside the caller's transaction; returns the outbox id.
pub async fn enqueue(conn: &mut PgConnection, topic: &str, msg: &RpcMessage) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO outbox (topic, body, method) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(topic)
    .bind(msg.encode())
    .bind(&msg.method)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Publishes the given (committed) outbox rows and deletes them once the broker confirmed.
/// A failure is logged, not returned: the sweeper sends the row again.
pub async fn flush(pool: &PgPool, bus: &Bus, ids: &[i64]) {
    for &id in ids {
        if let Err(e) = publish_row(pool, bus, id).await {
            tracing::warn!(outbox.id = id, error = %format!("{e:#}"), "publish failed, the sweeper will retry");
        }
    }
}

async fn publish_row(pool: &PgPool, bus: &Bus, id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
    // SKIP LOCKED: a sweeper on another replica may be sending the same row right now.
    let row: Option<(String, Vec<u8>)> =
        sqlx::query_as("SELECT topic, body FROM outbox WHERE id = $1 FOR UPDATE SKIP LOCKED")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((topic, body)) = row else {
        return Ok(());
    };
    let result = match RpcMessage::decode(&body) {
        Ok(msg) => bus.publish(&topic, &msg).await,
        Err(e) => {
            tracing::error!(outbox.id = id, error = %e, "undecodable outbox row dropped");
            Ok(())
        }
    };
    match result {
        Ok(()) => {
            sqlx::query("DELETE FROM outbox WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        Err(e) => {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, \
                 next_try = now() + least(interval '1 second' * power(2, attempts), interval '30 seconds') \
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Err(e);
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Re-sends rows whose first publish failed or whose sender died before publishing.
/// `grace` leaves fresh rows to the process that wrote them.
pub async fn sweep(pool: &PgPool, bus: &Bus, grace: Duration) -> Result<usize> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM outbox WHERE next_try <= now() AND created <= now() - make_interval(secs => $1) \
         ORDER BY id LIMIT 100",
    )
    .bind(grace.as_secs_f64())
    .fetch_all(pool)
    .await?;
    flush(pool, bus, &ids).await;
    Ok(ids.len())
}
