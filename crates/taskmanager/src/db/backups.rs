//! Backup state transitions driven by the taskmanager and its conductor role.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Backup {
    pub id: Uuid,
    pub name: String,
    pub state: String,
    pub instance_id: Option<Uuid>,
    pub location: Option<String>,
    pub checksum: Option<String>,
    pub backup_type: String,
    pub deleted: bool,
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Backup>> {
    sqlx::query_as(
        "SELECT id, name, state, instance_id, location, checksum, backup_type, deleted \
         FROM backups WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE backups SET state = $2, error = coalesce($3, error), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct Completed<'a> {
    pub location: &'a str,
    pub checksum: &'a str,
    pub size: Option<f64>,
    pub start_lsn: Option<&'a str>,
    pub stop_lsn: Option<&'a str>,
    pub stop_time: Option<DateTime<Utc>>,
    pub timeline: Option<i32>,
}

pub async fn complete(conn: &mut PgConnection, id: Uuid, c: &Completed<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE backups SET state = 'COMPLETED', location = $2, checksum = $3, size = $4, \
         start_lsn = $5, stop_lsn = $6, stop_time = $7, timeline = $8, deadline = NULL, \
         updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(c.location)
    .bind(c.checksum)
    .bind(c.size)
    .bind(c.start_lsn)
    .bind(c.stop_lsn)
    .bind(c.stop_time)
    .bind(c.timeline)
    .execute(conn)
    .await?;
    Ok(())
}

/// Running backups past their deadline: they fail, so the instance is free again.
pub async fn fail_overdue(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, Option<Uuid>)>> {
    sqlx::query_as(
        "UPDATE backups SET state = 'FAILED', error = 'the guest agent did not finish the backup in time', \
         updated = now() WHERE id IN (SELECT id FROM backups WHERE NOT deleted \
         AND state IN ('NEW', 'BUILDING', 'SAVING') AND deadline < now() FOR UPDATE SKIP LOCKED) \
         RETURNING id, instance_id",
    )
    .fetch_all(conn)
    .await
}
