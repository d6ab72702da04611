//! Recovery rows: dispatch, progress, outcome and deadlines.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use trove_common::{
    recovery::{RecoveryOutcome, RecoveryProgress},
    status::{RecoveryPhase, RecoveryState},
};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Recovery {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub backup_id: Uuid,
    pub state: RecoveryState,
    pub phase: RecoveryPhase,
    /// Kept as text so a kind this build does not know reaches
    /// [`trove_common::recovery::stored_target`] and fails the recovery with a fault, instead of
    /// failing every read of the row.
    pub target_kind: String,
    pub target_time: Option<DateTime<Utc>>,
    pub target_timeline: Option<i32>,
    pub target_lsn: Option<String>,
    pub target_xid: Option<i64>,
    pub target_inclusive: Option<bool>,
    pub target_name: Option<String>,
}

const COLUMNS: &str = "id, instance_id, backup_id, state, phase, target_kind, target_time, \
     target_timeline, target_lsn, target_xid, target_inclusive, target_name";

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Recovery>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM recoveries WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn set_running(
    conn: &mut PgConnection,
    id: Uuid,
    phase: RecoveryPhase,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE recoveries SET state = $2, phase = $3, updated = now() WHERE id = $1")
        .bind(id)
        .bind(RecoveryState::Running)
        .bind(phase)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_progress(
    conn: &mut PgConnection,
    id: Uuid,
    phase: RecoveryPhase,
    progress: Option<&RecoveryProgress>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recoveries SET phase = $2, progress = coalesce($3, progress), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(phase)
    .bind(progress.map(Json))
    .execute(conn)
    .await?;
    Ok(())
}

/// How a recovery ended.
pub struct Finish<'a> {
    pub state: RecoveryState,
    pub phase: RecoveryPhase,
    pub error: Option<&'a str>,
    /// What the guest reported it reached; kept when it reported nothing (the sweeper's timeout).
    pub outcome: Option<&'a RecoveryOutcome>,
}

pub async fn finish(conn: &mut PgConnection, id: Uuid, f: Finish<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recoveries SET state = $2, phase = $3, error = $4, outcome = coalesce($5, outcome), \
         finished = now(), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(f.state)
    .bind(f.phase)
    .bind(f.error)
    .bind(f.outcome.map(Json))
    .execute(conn)
    .await?;
    Ok(())
}

/// Unfinished recoveries past their deadline, locked.
pub async fn overdue(conn: &mut PgConnection) -> sqlx::Result<Vec<Recovery>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM recoveries WHERE state = ANY($1) \
         AND deadline < now() ORDER BY deadline LIMIT 50 FOR UPDATE SKIP LOCKED"
    ))
    .bind(&RecoveryState::ACTIVE[..])
    .fetch_all(conn)
    .await
}
