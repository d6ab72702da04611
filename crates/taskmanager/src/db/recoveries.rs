//! Recovery rows: dispatch, progress, outcome and deadlines.

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recovery {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub backup_id: Uuid,
    pub state: String,
    pub phase: String,
    pub target_kind: String,
    pub target_time: Option<chrono::DateTime<chrono::Utc>>,
    pub target_timeline: Option<i32>,
}

/// The phase the sweeper writes when it gives up on a recovery.
pub const TIMED_OUT: &str = "timed out";

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Recovery>> {
    sqlx::query_as(
        "SELECT id, instance_id, backup_id, state, phase, target_kind, target_time, target_timeline FROM recoveries WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn set_running(conn: &mut PgConnection, id: Uuid, phase: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recoveries SET state = 'RUNNING', phase = $2, updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(phase)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_progress(
    conn: &mut PgConnection,
    id: Uuid,
    phase: &str,
    progress: Option<&serde_json::Value>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recoveries SET phase = $2, progress = coalesce($3, progress), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(phase)
    .bind(progress.map(sqlx::types::Json))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn finish(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    phase: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recoveries SET state = $2, phase = $3, error = $4, finished = now(), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(phase)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Unfinished recoveries past their deadline, locked.
pub async fn overdue(conn: &mut PgConnection) -> sqlx::Result<Vec<Recovery>> {
    sqlx::query_as(
        "SELECT id, instance_id, backup_id, state, phase, target_kind, target_time, target_timeline FROM recoveries WHERE state IN ('NEW', 'RUNNING') \
         AND deadline < now() ORDER BY deadline LIMIT 50 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(conn)
    .await
}
