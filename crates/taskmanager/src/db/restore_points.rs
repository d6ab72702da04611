//! Restore point rows: the guest's outcome settles a `NEW` row once.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// `state` of a row still waiting for the guest.
pub const NEW: &str = "NEW";

/// The row's instance and state, locked.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<(Uuid, String)>> {
    sqlx::query_as("SELECT instance_id, state FROM restore_points WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn complete(
    conn: &mut PgConnection,
    id: Uuid,
    lsn: &str,
    timeline: Option<i32>,
    time: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE restore_points SET state = 'COMPLETED', lsn = $2, timeline = $3, point_time = $4, \
         updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(lsn)
    .bind(timeline)
    .bind(time)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn fail(conn: &mut PgConnection, id: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE restore_points SET state = 'FAILED', error = $2, updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}
