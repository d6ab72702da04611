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

pub struct NewRecovery<'a> {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub backup_id: Uuid,
    /// `backup`, `time` or `latest`.
    pub target_kind: &'a str,
    pub target_time: Option<DateTime<Utc>>,
    pub target_timeline: Option<i32>,
    pub deadline: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, r: &NewRecovery<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO recoveries (id, instance_id, backup_id, target_time, target_kind, \
         target_timeline, state, phase, deadline) VALUES ($1, $2, $3, $4, $5, $6, 'NEW', 'queued', $7)",
    )
    .bind(r.id)
    .bind(r.instance_id)
    .bind(r.backup_id)
    .bind(r.target_time)
    .bind(r.target_kind)
    .bind(r.target_timeline)
    .bind(r.deadline)
    .execute(conn)
    .await?;
    Ok(())
}
