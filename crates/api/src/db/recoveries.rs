//! Recovery rows as the API writes them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub async fn active_exists(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM recoveries WHERE instance_id = $1 AND state IN ('NEW', 'RUNNING'))",
    )
    .bind(instance_id)
    .fetch_one(conn)
    .await
}

pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    instance_id: Uuid,
    backup_id: Uuid,
    target_time: Option<DateTime<Utc>>,
    deadline: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO recoveries (id, instance_id, backup_id, target_time, state, phase, deadline) \
         VALUES ($1, $2, $3, $4, 'NEW', 'queued', $5)",
    )
    .bind(id)
    .bind(instance_id)
    .bind(backup_id)
    .bind(target_time)
    .bind(deadline)
    .execute(conn)
    .await?;
    Ok(())
}
