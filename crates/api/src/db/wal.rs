//! What the API reads to compute an instance's recoverable window. Timeline numbers are `integer`
//! columns here and `u32` in the plan; a number that cannot be a timeline is left out, never
//! planned on.

use sqlx::{PgConnection, types::Json};
use trove_common::recovery::WalTimeline;
use uuid::Uuid;

use super::backups;
use crate::{
    error::{ApiError, ApiResult},
    recovery_window::{BackupPoint, Window, timeline_number, window},
};

/// A `wal_timelines` row, read as a row or from a JSON aggregate of rows.
#[derive(sqlx::FromRow, serde::Deserialize)]
pub(crate) struct TimelineRow {
    timeline: i32,
    parent_timeline: Option<i32>,
    switch_lsn: Option<String>,
    first_segment: Option<String>,
    last_segment: Option<String>,
    gaps: Json<Vec<(String, String)>>,
    latest_commit: Option<chrono::DateTime<chrono::Utc>>,
    latest_lsn: Option<String>,
}

impl TimelineRow {
    /// None when the row's timeline or parent cannot be a timeline.
    pub(crate) fn into_timeline(self) -> Option<WalTimeline> {
        let parent = match self.parent_timeline {
            Some(p) => Some(timeline_number(p.into())?),
            None => None,
        };
        Some(WalTimeline {
            timeline: timeline_number(self.timeline.into())?,
            parent,
            switch_lsn: self.switch_lsn,
            first_segment: self.first_segment,
            last_segment: self.last_segment,
            gaps: self.gaps.0,
            latest_commit: self.latest_commit,
            latest_lsn: self.latest_lsn,
        })
    }
}

pub async fn timelines(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<WalTimeline>> {
    let rows: Vec<TimelineRow> = sqlx::query_as(
        "SELECT timeline, parent_timeline, switch_lsn, first_segment, last_segment, gaps, \
         latest_commit, latest_lsn FROM wal_timelines WHERE instance_id = $1 ORDER BY timeline",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (timeline, parent) = (row.timeline, row.parent_timeline);
        match row.into_timeline() {
            Some(t) => out.push(t),
            None => {
                tracing::warn!(instance.id = %instance_id, timeline, parent, "ignoring a wal_timelines row that names no valid timeline")
            }
        }
    }
    Ok(out)
}

/// The instance's completed backups that recorded where they stop, oldest first.
pub async fn backup_points(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<BackupPoint>> {
    Ok(backups::completed_of(conn, instance_id)
        .await?
        .into_iter()
        .filter_map(|b| {
            Some(BackupPoint {
                id: b.id,
                stop_time: b.stop_time?,
                // A backup without a valid timeline serves no lineage.
                timeline: b.timeline.and_then(|t| timeline_number(t.into())),
                start_lsn: b.start_lsn,
                stop_lsn: b.stop_lsn,
            })
        })
        .collect())
}

/// The instance's window on `timeline` (its current one when None); None when the instance has
/// reported no WAL yet.
pub async fn window_of(
    conn: &mut PgConnection,
    instance_id: Uuid,
    timeline: Option<u32>,
) -> sqlx::Result<Option<(Window, Vec<WalTimeline>)>> {
    let current: Option<i32> = sqlx::query_scalar("SELECT timeline FROM instances WHERE id = $1")
        .bind(instance_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    let current = current.and_then(|t| timeline_number(t.into()));
    let Some(tl) = timeline.or(current) else {
        return Ok(None);
    };
    let timelines = timelines(conn, instance_id).await?;
    let backups = backup_points(conn, instance_id).await?;
    Ok(Some((
        window(instance_id, tl, &timelines, &backups),
        timelines,
    )))
}

/// The window a point-in-time request is planned against, read once: 422 when the instance has
/// reported no WAL yet, 400 for a timeline it never had.
pub async fn planning_window(
    conn: &mut PgConnection,
    instance_id: Uuid,
    timeline: Option<u32>,
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
