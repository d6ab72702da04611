//! Recovery rows as the API writes them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use trove_common::{
    recovery::{StopPoint, TargetKind, format_lsn},
    status::{RecoveryPhase, RecoveryState},
};
use uuid::Uuid;

pub async fn active_exists(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM recoveries WHERE instance_id = $1 AND state = ANY($2))",
    )
    .bind(instance_id)
    .bind(RecoveryState::ACTIVE)
    .fetch_one(conn)
    .await
}

pub struct NewRecovery {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub backup_id: Uuid,
    pub target_kind: TargetKind,
    pub target_time: Option<DateTime<Utc>>,
    pub target_timeline: Option<u32>,
    pub target_lsn: Option<u64>,
    /// The transaction and whether the target includes it.
    pub target_xid: Option<(u32, bool)>,
    pub target_name: Option<trove_common::restore_point::RestorePointName>,
    pub deadline: DateTime<Utc>,
    /// Stop before the cut-over and wait as a preview.
    pub preview: bool,
}

/// Records a recovery as accepted: `NEW`, `queued`.
pub async fn insert(conn: &mut PgConnection, r: &NewRecovery) -> sqlx::Result<()> {
    // The column is `integer`; a timeline beyond it is refused, not wrapped.
    let timeline = r
        .target_timeline
        .map(i32::try_from)
        .transpose()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO recoveries (id, instance_id, backup_id, target_time, target_kind, \
         target_timeline, state, phase, deadline, target_lsn, target_xid, target_inclusive, \
         target_name, preview) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(r.id)
    .bind(r.instance_id)
    .bind(r.backup_id)
    .bind(r.target_time)
    .bind(r.target_kind)
    .bind(timeline)
    .bind(RecoveryState::New)
    .bind(RecoveryPhase::Queued)
    .bind(r.deadline)
    .bind(r.target_lsn.map(format_lsn))
    .bind(r.target_xid.map(|(x, _)| i64::from(x)))
    .bind(r.target_xid.map(|(_, i)| i))
    .bind(r.target_name.map(|n| n.to_string()))
    .bind(r.preview)
    .execute(&mut *conn)
    .await?;
    // The history starts with the wait for the taskmanager.
    sqlx::query("INSERT INTO recovery_phases (recovery_id, phase, rank) VALUES ($1, $2, $3)")
        .bind(r.id)
        .bind(RecoveryPhase::Queued)
        .bind(RecoveryPhase::Queued.rank())
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the host of `instance_id` has a free slot for a preview's second server: its
/// capacity above its instances not deleted and its unfinished previews (the taskmanager counts
/// the same way when it places an instance). The host row is locked, so a placement and a
/// preview cannot both take its last slot. An instance without a host has no room.
pub async fn host_has_room_for_preview(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<bool> {
    let capacity: Option<(i32, i64)> = sqlx::query_as(
        "SELECT h.capacity, \
         (SELECT count(*) FROM instances i WHERE i.host = h.id AND NOT i.deleted) \
         + (SELECT count(*) FROM recoveries r JOIN instances i ON i.id = r.instance_id \
            WHERE i.host = h.id AND r.preview AND r.state IN ('NEW', 'RUNNING', 'PREVIEW')) \
         FROM guest_hosts h WHERE h.id = (SELECT host FROM instances WHERE id = $1) \
         FOR UPDATE OF h",
    )
    .bind(instance_id)
    .fetch_optional(conn)
    .await?;
    Ok(capacity.is_some_and(|(capacity, used)| i64::from(capacity) > used))
}

/// The state of recovery `id` of `instance_id`, locked (kept as text: a state this build does
/// not know is refused as "not a waiting preview", not a failed read).
pub async fn lock_of(
    conn: &mut PgConnection,
    instance_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT state FROM recoveries WHERE id = $1 AND instance_id = $2 FOR UPDATE")
        .bind(id)
        .bind(instance_id)
        .fetch_optional(conn)
        .await
}

/// What a waiting preview becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Confirm,
    Cancel,
}

impl Settle {
    /// The row's `preview_action`, as the taskmanager reads it.
    pub fn action(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Cancel => "cancel",
        }
    }

    /// The phase the recovery moves to until the guest reports the end.
    pub fn phase(self) -> RecoveryPhase {
        match self {
            Self::Confirm => RecoveryPhase::Promoting,
            Self::Cancel => RecoveryPhase::Cancelling,
        }
    }
}

/// Records the user's decision on a waiting preview before the taskmanager is asked to carry it
/// out: `RUNNING` again in the decision's phase, with a new deadline for the guest.
pub async fn settle_preview(
    conn: &mut PgConnection,
    id: Uuid,
    settle: Settle,
    deadline: DateTime<Utc>,
) -> sqlx::Result<()> {
    let reason = (settle == Settle::Cancel).then_some("cancelled by request");
    sqlx::query(
        "UPDATE recoveries SET state = $2, phase = $3, preview_action = $4, cancel_reason = $5, \
         deadline = $6, updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(RecoveryState::Running)
    .bind(settle.phase())
    .bind(settle.action())
    .bind(reason)
    .bind(deadline)
    .execute(&mut *conn)
    .await?;
    // The preview's wait ends in the history; the decision's phase starts.
    sqlx::query(
        "UPDATE recovery_phases SET ended_at = now() WHERE recovery_id = $1 AND ended_at IS NULL",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    // In the round of the last move, if any: the settle follows the preview it settles.
    sqlx::query(
        "INSERT INTO recovery_phases (recovery_id, phase, rank, round) VALUES ($1, $2, $3, \
         (SELECT preview_moves FROM recoveries WHERE id = $1)) \
         ON CONFLICT (recovery_id, round, phase) DO NOTHING",
    )
    .bind(id)
    .bind(settle.phase())
    .bind(settle.phase().rank())
    .execute(conn)
    .await?;
    Ok(())
}

/// A waiting preview as a move reads it: where it stands, and what a later target must pass.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PreviewStop {
    /// Kept as text: a state this build does not know is refused as "not a waiting preview".
    pub state: String,
    pub backup_id: Uuid,
    pub target_kind: String,
    pub target_time: Option<DateTime<Utc>>,
    pub target_timeline: Option<i32>,
    pub target_lsn: Option<String>,
    /// Where the guest reported replay paused, and the last commit replayed before it.
    pub preview_lsn: Option<String>,
    pub preview_commit_at: Option<DateTime<Utc>>,
}

/// Recovery `id` of `instance_id` as a move reads it, locked.
pub async fn lock_preview_stop(
    conn: &mut PgConnection,
    instance_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<PreviewStop>> {
    sqlx::query_as(
        "SELECT state, backup_id, target_kind, target_time, target_timeline, target_lsn, \
         preview_lsn, preview_commit_at FROM recoveries WHERE id = $1 AND instance_id = $2 \
         FOR UPDATE",
    )
    .bind(id)
    .bind(instance_id)
    .fetch_optional(conn)
    .await
}

/// Records a waiting preview's move to `stop` on `timeline` before the taskmanager is asked to
/// carry it out: the target before it kept in `moved_from` (put back if the move fails with the
/// preview kept), `RUNNING` again in phase `replaying` of the move's own round of the history,
/// with a new deadline for the guest. Returns the move's number.
pub async fn move_preview(
    conn: &mut PgConnection,
    id: Uuid,
    stop: StopPoint,
    timeline: u32,
    deadline: DateTime<Utc>,
) -> sqlx::Result<i32> {
    let timeline = i32::try_from(timeline).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    // The history's phases of the wait end; the move's round begins at `replaying`.
    sqlx::query(
        "UPDATE recovery_phases SET ended_at = now() WHERE recovery_id = $1 AND ended_at IS NULL",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    let moves: i32 = sqlx::query_scalar(
        "UPDATE recoveries SET moved_from = json_build_object('kind', target_kind, \
         'time', target_time, 'timeline', target_timeline, 'lsn', target_lsn, \
         'xid', target_xid, 'inclusive', target_inclusive, 'restore_point', target_name), \
         target_kind = $2, target_time = $3, target_timeline = $4, target_lsn = $5, \
         target_xid = $6, target_inclusive = $7, target_name = $8, state = $9, phase = $10, \
         preview_action = 'move', preview_moves = preview_moves + 1, error = NULL, \
         error_code = NULL, deadline = $11, progress = NULL, updated = now() WHERE id = $1 \
         RETURNING preview_moves",
    )
    .bind(id)
    .bind(stop.kind())
    .bind(stop.time())
    .bind(timeline)
    .bind(stop.lsn().map(format_lsn))
    .bind(stop.xid().map(|(x, _)| i64::from(x)))
    .bind(stop.xid().map(|(_, i)| i))
    .bind(stop.restore_point().map(|n| n.to_string()))
    .bind(RecoveryState::Running)
    .bind(RecoveryPhase::Replaying)
    .bind(deadline)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO recovery_phases (recovery_id, phase, rank, round) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (recovery_id, round, phase) DO NOTHING",
    )
    .bind(id)
    .bind(RecoveryPhase::Replaying)
    .bind(RecoveryPhase::Replaying.rank())
    .bind(moves)
    .execute(conn)
    .await?;
    Ok(moves)
}
