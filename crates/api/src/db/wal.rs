//! What the API reads to compute an instance's recoverable window.

use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    recovery_window::{BackupPoint, TimelineInfo, Window, window},
};

#[derive(sqlx::FromRow)]
struct TimelineRow {
    timeline: i32,
    parent_timeline: Option<i32>,
    switch_lsn: Option<String>,
    first_segment: Option<String>,
    last_segment: Option<String>,
    gaps: Json<Vec<(String, String)>>,
    latest_commit: Option<chrono::DateTime<chrono::Utc>>,
    latest_lsn: Option<String>,
}

pub async fn timelines(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<TimelineInfo>> {
    let rows: Vec<TimelineRow> = sqlx::query_as(
        "SELECT timeline, parent_timeline, switch_lsn, first_segment, last_segment, gaps, \
         latest_commit, latest_lsn FROM wal_timelines WHERE instance_id = $1 ORDER BY timeline",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TimelineInfo {
            timeline: r.timeline,
            parent: r.parent_timeline,
            switch_lsn: r.switch_lsn,
            first_segment: r.first_segment,
            last_segment: r.last_segment,
            gaps: r.gaps.0,
            latest_commit: r.latest_commit,
            latest_lsn: r.latest_lsn,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct BackupRow {
    id: Uuid,
    stop_time: chrono::DateTime<chrono::Utc>,
    timeline: Option<i32>,
    start_lsn: Option<String>,
    stop_lsn: Option<String>,
}

pub async fn backup_points(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<BackupPoint>> {
    let rows: Vec<BackupRow> = sqlx::query_as(
        "SELECT id, stop_time, timeline, start_lsn, stop_lsn FROM backups WHERE instance_id = $1 \
         AND NOT deleted AND state = 'COMPLETED' AND stop_time IS NOT NULL ORDER BY stop_time",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| BackupPoint {
            id: r.id,
            stop_time: r.stop_time,
            timeline: r.timeline,
            start_lsn: r.start_lsn,
            stop_lsn: r.stop_lsn,
        })
        .collect())
}

/// The instance's window on `timeline` (its current one when None); None when the instance has
/// reported no WAL yet.
pub async fn window_of(
    conn: &mut PgConnection,
    instance_id: Uuid,
    timeline: Option<i32>,
) -> sqlx::Result<Option<(Window, Vec<TimelineInfo>)>> {
    let current: Option<i32> = sqlx::query_scalar("SELECT timeline FROM instances WHERE id = $1")
        .bind(instance_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    let Some(tl) = timeline.or(current) else {
        return Ok(None);
    };
    let timelines = timelines(conn, instance_id).await?;
    let backups = backup_points(conn, instance_id).await?;
    Ok(Some((window(tl, &timelines, &backups), timelines)))
}

/// The window a point-in-time request is planned against, read once: 422 when the instance has
/// reported no WAL yet, 400 for a timeline it never had.
pub async fn planning_window(
    conn: &mut PgConnection,
    instance_id: Uuid,
    timeline: Option<i32>,
) -> ApiResult<Window> {
    let Some((w, known)) = window_of(conn, instance_id, timeline).await? else {
        return Err(ApiError::Unprocessable(format!(
            "Instance {instance_id} has no archived WAL yet, so it cannot be brought to a point in time."
        )));
    };
    if let Some(t) = timeline
        && !known.iter().any(|k| k.timeline == t)
    {
        return Err(ApiError::BadRequest(format!(
            "Instance {instance_id} never had timeline {t}; its timelines are {:?}.",
            known.iter().map(|k| k.timeline).collect::<Vec<_>>()
        )));
    }
    Ok(w)
}
