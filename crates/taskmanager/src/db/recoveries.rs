//! Recovery rows: dispatch, progress, outcome and deadlines.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use trove_common::{
    fault::FaultCode,
    recovery::{RecoveryOutcome, RecoveryProgress},
    rpc::conductor::PreviewReady,
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
    /// Asked as a preview: stop before the cut-over.
    pub preview: bool,
    /// `confirm` or `cancel` once a waiting preview was settled (by the user, or on expiry);
    /// `move` while a move to a later target is under way.
    pub preview_action: Option<String>,
    /// How many moves of the preview were asked: the number of the latest one.
    pub preview_moves: i32,
}

const COLUMNS: &str = "id, instance_id, backup_id, state, phase, target_kind, target_time, \
     target_timeline, target_lsn, target_xid, target_inclusive, target_name, preview, \
     preview_action, preview_moves";

/// What a waiting preview becomes: promoted and cut over, or discarded.
pub const CONFIRM: &str = "confirm";
pub const CANCEL: &str = "cancel";
/// A waiting preview is moved on to a later target, and waits there again.
pub const MOVE: &str = "move";

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

/// Recoveries the guest works on past their deadline, locked. A waiting preview has no
/// deadline but its expiry ([`expired_previews`]).
pub async fn overdue(conn: &mut PgConnection) -> sqlx::Result<Vec<Recovery>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM recoveries WHERE state = ANY($1) \
         AND deadline < now() ORDER BY deadline LIMIT 50 FOR UPDATE SKIP LOCKED"
    ))
    .bind(&RecoveryState::IN_FLIGHT[..])
    .fetch_all(conn)
    .await
}

/// The guest's preview is ready (first staged, or moved): it waits for the user until
/// `ttl_secs` from now, the expiry restarting with each move. A pending move is done.
pub async fn set_preview(
    conn: &mut PgConnection,
    id: Uuid,
    ready: &PreviewReady,
    ttl_secs: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recoveries SET state = $2, phase = $3, preview_port = $4, \
         preview_expires_at = now() + make_interval(secs => $5), preview_lsn = $6, \
         preview_commit_at = $7, preview_action = NULL, moved_from = NULL, error = NULL, \
         error_code = NULL, updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(RecoveryState::Preview)
    .bind(RecoveryPhase::Preview)
    .bind(i32::from(ready.port))
    .bind(ttl_secs as f64)
    .bind(ready.stop_lsn.as_deref())
    .bind(ready.last_commit)
    .execute(&mut *conn)
    .await?;
    recovery_phases::enter(conn, id, RecoveryPhase::Preview, None).await
}

/// A move failed before the preview's replay went past its old target: the preview waits
/// there again (as [`set_preview`], its expiry restarting), its target is the one before the
/// move, and the recovery keeps why the move failed (`error`, `error_code`).
pub async fn keep_preview(
    conn: &mut PgConnection,
    id: Uuid,
    ready: &PreviewReady,
    ttl_secs: i64,
    error: &str,
    code: FaultCode,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recoveries SET target_kind = moved_from->>'kind', \
         target_time = (moved_from->>'time')::timestamptz, \
         target_timeline = (moved_from->>'timeline')::integer, target_lsn = moved_from->>'lsn', \
         target_xid = (moved_from->>'xid')::bigint, \
         target_inclusive = (moved_from->>'inclusive')::boolean, \
         target_name = moved_from->>'restore_point' WHERE id = $1 AND moved_from IS NOT NULL",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    set_preview(conn, id, ready, ttl_secs).await?;
    sqlx::query("UPDATE recoveries SET error = $2, error_code = $3 WHERE id = $1")
        .bind(id)
        .bind(error)
        .bind(code)
        .execute(conn)
        .await?;
    Ok(())
}

/// Waiting previews past their expiry, as (recovery, instance), not locked: the caller locks
/// the instance, then the recovery (the order trove-api locks them in), and checks again.
pub async fn expired_previews(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT id, instance_id FROM recoveries WHERE state = $1 AND preview_expires_at < now() \
         ORDER BY preview_expires_at LIMIT 50",
    )
    .bind(RecoveryState::Preview)
    .fetch_all(conn)
    .await
}

/// Whether the locked recovery `id` still waits as a preview past its expiry.
pub async fn preview_expired(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM recoveries WHERE id = $1 AND state = $2 \
         AND preview_expires_at < now())",
    )
    .bind(id)
    .bind(RecoveryState::Preview)
    .fetch_one(conn)
    .await
}

/// Records that a waiting preview is cancelled for `reason` (as the API does for a cancel by
/// request), before the guest is asked to discard it; the guest has until `deadline_secs` from
/// now.
pub async fn cancel_preview(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    deadline_secs: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recoveries SET state = $2, phase = $3, preview_action = $4, cancel_reason = $5, \
         deadline = now() + make_interval(secs => $6), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(RecoveryState::Running)
    .bind(RecoveryPhase::Cancelling)
    .bind(CANCEL)
    .bind(reason)
    .bind(deadline_secs as f64)
    .execute(&mut *conn)
    .await?;
    recovery_phases::enter(conn, id, RecoveryPhase::Cancelling, None).await
}
