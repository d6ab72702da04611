//! What the retention pass reads and changes in the control database.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use trove_common::{
    recovery::WalTimeline,
    retention::Policy,
    status::{BackupState, InstanceTask, RecoveryState},
};
use uuid::Uuid;

/// Writes the operator's default policy, which the API reads to show it.
pub async fn publish_default(conn: &mut PgConnection, policy: Policy) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO retention_default (singleton, window_secs, min_backups) VALUES (true, $1, $2) \
         ON CONFLICT (singleton) DO UPDATE SET window_secs = $1, min_backups = $2, updated = now() \
         WHERE retention_default.window_secs <> $1 OR retention_default.min_backups <> $2",
    )
    .bind(policy.window_secs)
    .bind(policy.min_backups)
    .execute(conn)
    .await?;
    Ok(())
}

/// An instance whose objects the store may still hold.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub id: Uuid,
    pub deleted: bool,
    /// When a deleted instance was deleted; None for a live one.
    pub deleted_at: Option<DateTime<Utc>>,
    pub retention_window_secs: Option<i64>,
    pub retention_min_backups: Option<i32>,
}

impl Candidate {
    pub fn policy(&self, default: Policy) -> Policy {
        default.overridden(self.retention_window_secs, self.retention_min_backups)
    }
}

/// Every live instance, and every deleted one whose objects have not been removed yet; with the
/// database's clock, which every time compared here comes from.
pub async fn candidates(
    conn: &mut PgConnection,
    only: Option<Uuid>,
) -> sqlx::Result<(DateTime<Utc>, Vec<Candidate>)> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await?;
    let rows = sqlx::query_as(
        "SELECT id, deleted, CASE WHEN deleted THEN coalesce(deleted_at, updated) END AS deleted_at, \
         retention_window_secs, retention_min_backups \
         FROM instances WHERE store_purged_at IS NULL AND ($1::uuid IS NULL OR id = $1) \
         ORDER BY id",
    )
    .bind(only)
    .fetch_all(conn)
    .await?;
    Ok((now, rows))
}

/// Takes the instance for this transaction, unless another taskmanager has it now.
pub async fn try_lock_instance(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('trove-retention/' || $1::text, 0))",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// A visible backup of the instance, as retention weighs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BackupFacts {
    pub id: Uuid,
    pub state: BackupState,
    /// When it stopped, or was created if it never did: its age.
    pub at: DateTime<Utc>,
    pub start_lsn: Option<String>,
    pub stop_lsn: Option<String>,
    pub timeline: Option<i32>,
}

/// The instance's visible backups, locked: a recovery or restore the API records takes the same
/// lock first, so it either sees the backup deleted or is seen by [`in_use`].
pub async fn lock_backups(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<BackupFacts>> {
    sqlx::query_as(
        "SELECT id, state, coalesce(stop_time, created) AS at, start_lsn, stop_lsn, timeline \
         FROM backups \
         WHERE instance_id = $1 AND NOT deleted ORDER BY id FOR UPDATE",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await
}

/// The timeline the instance runs on now (None until known) and its timelines' history, as
/// the guest reported them: which backups serve the current lineage.
pub async fn history(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<(Option<u32>, Vec<WalTimeline>)> {
    let current: Option<i32> = sqlx::query_scalar("SELECT timeline FROM instances WHERE id = $1")
        .bind(instance_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    let rows: Vec<(i32, Option<i32>, Option<String>)> = sqlx::query_as(
        "SELECT timeline, parent_timeline, switch_lsn FROM wal_timelines WHERE instance_id = $1",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await?;
    let timelines = rows
        .into_iter()
        .filter_map(|(timeline, parent, switch_lsn)| {
            Some(WalTimeline {
                timeline: u32::try_from(timeline).ok()?,
                parent: parent.and_then(|p| u32::try_from(p).ok()),
                switch_lsn,
                ..WalTimeline::default()
            })
        })
        .collect();
    Ok((current.and_then(|t| u32::try_from(t).ok()), timelines))
}

/// The instance's backups an unfinished recovery, or an instance still being built, restores
/// (the same rule as the API's refusal to delete a backup in use).
pub async fn in_use(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT b.id FROM backups b WHERE b.instance_id = $1 AND NOT b.deleted AND ( \
         EXISTS (SELECT 1 FROM recoveries r WHERE r.backup_id = b.id AND r.state = ANY($2)) \
         OR EXISTS (SELECT 1 FROM instances i WHERE i.restored_from_backup = b.id \
                    AND NOT i.deleted AND i.task_id = $3))",
    )
    .bind(instance_id)
    .bind(RecoveryState::ACTIVE)
    .bind(InstanceTask::Building.code())
    .fetch_all(conn)
    .await
}

/// Hides expired backups exactly as a user's delete does.
pub async fn mark_deleted(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE backups SET deleted = true, deleted_at = now(), updated = now() WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// The instance's hidden backups whose objects could not be removed (`DELETE_FAILED`).
pub async fn delete_failed(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM backups WHERE instance_id = $1 AND deleted AND state = $2")
        .bind(instance_id)
        .bind(BackupState::DeleteFailed)
        .fetch_all(conn)
        .await
}

/// One `wal_timelines` row, locked.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TimelineFloor {
    pub timeline: i32,
    pub first_segment: Option<String>,
    pub gaps: Json<Vec<(String, String)>>,
}

pub async fn lock_timelines(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<TimelineFloor>> {
    sqlx::query_as(
        "SELECT timeline, first_segment, gaps FROM wal_timelines WHERE instance_id = $1 \
         ORDER BY timeline FOR UPDATE",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await
}

/// The instance's timelines as the guest last reported them (no lock): whether anything may be
/// left below a cut.
pub async fn timelines(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<TimelineFloor>> {
    sqlx::query_as(
        "SELECT timeline, first_segment, gaps FROM wal_timelines WHERE instance_id = $1 \
         ORDER BY timeline",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await
}

pub async fn set_floor(
    conn: &mut PgConnection,
    instance_id: Uuid,
    timeline: i32,
    first_segment: &str,
    gaps: &[(String, String)],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE wal_timelines SET first_segment = $3, gaps = $4, updated = now() \
         WHERE instance_id = $1 AND timeline = $2",
    )
    .bind(instance_id)
    .bind(timeline)
    .bind(first_segment)
    .bind(Json(gaps))
    .execute(conn)
    .await?;
    Ok(())
}

/// A deleted instance's objects are gone: its WAL rows go, and it is never looked at again.
pub async fn mark_purged(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM wal_timelines WHERE instance_id = $1")
        .bind(instance_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE instances SET store_purged_at = now() WHERE id = $1 AND deleted")
        .bind(instance_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// An instance as `trove-manage store-usage` lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Owner {
    pub id: Uuid,
    pub tenant_id: String,
    pub deleted: bool,
    pub purged: bool,
}

/// Every instance (or only `only`), by id.
pub async fn owners(conn: &mut PgConnection, only: Option<Uuid>) -> sqlx::Result<Vec<Owner>> {
    sqlx::query_as(
        "SELECT id, tenant_id, deleted, store_purged_at IS NOT NULL AS purged FROM instances \
         WHERE $1::uuid IS NULL OR id = $1 ORDER BY id",
    )
    .bind(only)
    .fetch_all(conn)
    .await
}

/// (backup, instance) of every backup row, hidden ones included (their objects may remain).
pub async fn backup_owners(
    conn: &mut PgConnection,
    only: Option<Uuid>,
) -> sqlx::Result<Vec<(Uuid, Option<Uuid>)>> {
    sqlx::query_as(
        "SELECT id, instance_id FROM backups WHERE $1::uuid IS NULL OR instance_id = $1 ORDER BY id",
    )
    .bind(only)
    .fetch_all(conn)
    .await
}
