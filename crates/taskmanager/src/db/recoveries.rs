//! Recovery rows: dispatch, progress, outcome and deadlines.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use trove_common::{
    fault::FaultCode,
    recovery::{RecoveryOutcome, RecoveryProgress},
    status::{RecoveryPhase, RecoveryState},
};
use uuid::Uuid;

use super::recovery_phases;

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
        .execute(&mut *conn)
        .await?;
    recovery_phases::enter(conn, id, phase, None).await
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
    .execute(&mut *conn)
    .await?;
    recovery_phases::enter(conn, id, phase, progress).await
}

/// How a recovery ended.
pub struct Finish<'a> {
    pub state: RecoveryState,
    pub phase: RecoveryPhase,
    pub error: Option<&'a str>,
    /// What the guest reported it reached; kept when it reported nothing (the sweeper's timeout).
    pub outcome: Option<&'a RecoveryOutcome>,
    /// The stable code of a failure, as the instance's fault carries it.
    pub error_code: Option<FaultCode>,
}

/// Ends a recovery: the phase it failed in is recorded in its history (a guest may fail before
/// reporting it), and whatever phase was open is closed.
pub async fn finish(conn: &mut PgConnection, id: Uuid, f: Finish<'_>) -> sqlx::Result<()> {
    if f.state == RecoveryState::Failed {
        recovery_phases::enter(conn, id, f.phase, None).await?;
    }
    recovery_phases::close_open(conn, id).await?;
    sqlx::query(
        "UPDATE recoveries SET state = $2, phase = $3, error = $4, outcome = coalesce($5, outcome), \
         error_code = coalesce($6, error_code), finished = now(), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(f.state)
    .bind(f.phase)
    .bind(f.error)
    .bind(f.outcome.map(Json))
    .bind(f.error_code)
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
