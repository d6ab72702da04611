//! One instance's detail view read in one statement: the row, its WAL timelines and restorable
//! backups (its recoverable window) and the retention default, so `GET /instances/{id}` costs
//! the control database a single round trip.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use trove_common::{
    recovery::WalTimeline,
    retention::Policy,
    status::{BackupState, RecoveryState},
};
use uuid::Uuid;

use super::{
    instances::{COLUMNS, FROM, InstanceRow},
    wal::TimelineRow,
};
use crate::recovery_window::{BackupPoint, Window, timeline_number, window};

/// A completed backup that recorded where it stops, as the JSON aggregate carries it.
#[derive(serde::Deserialize)]
struct PointRow {
    id: Uuid,
    stop_time: DateTime<Utc>,
    timeline: Option<i32>,
    start_lsn: Option<String>,
    stop_lsn: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    row: InstanceRow,
    current_timeline: Option<i32>,
    wal_timelines: Json<Vec<TimelineRow>>,
    backup_points: Json<Vec<PointRow>>,
    default_window_secs: Option<i64>,
    default_min_backups: Option<i32>,
}

/// What the detail view shows beyond the row.
pub struct Detail {
    pub row: InstanceRow,
    /// None until the instance has reported WAL.
    pub window: Option<Window>,
    pub default_retention: Policy,
}

const EXTRA: &str = r#",
       i.timeline AS current_timeline,
       (SELECT coalesce(json_agg(json_build_object(
                   'timeline', w.timeline, 'parent_timeline', w.parent_timeline,
                   'switch_lsn', w.switch_lsn, 'first_segment', w.first_segment,
                   'last_segment', w.last_segment, 'gaps', w.gaps,
                   'latest_commit', w.latest_commit, 'latest_lsn', w.latest_lsn)
                   ORDER BY w.timeline), '[]'::json)
        FROM wal_timelines w WHERE w.instance_id = i.id) AS wal_timelines,
       (SELECT coalesce(json_agg(json_build_object(
                   'id', b.id, 'stop_time', b.stop_time, 'timeline', b.timeline,
                   'start_lsn', b.start_lsn, 'stop_lsn', b.stop_lsn)
                   ORDER BY b.stop_time), '[]'::json)
        FROM backups b WHERE b.instance_id = i.id AND NOT b.deleted AND b.state = $5
        AND b.stop_time IS NOT NULL) AS backup_points,
       rd.window_secs AS default_window_secs, rd.min_backups AS default_min_backups
"#;

/// A visible instance of `tenant` (any tenant when None) with its window and the retention
/// default, in one statement.
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&str>,
) -> sqlx::Result<Option<Detail>> {
    let sql = format!(
        "{COLUMNS}{EXTRA}{FROM} LEFT JOIN retention_default rd ON true \
         WHERE NOT i.deleted AND i.id = $3 AND ($4::text IS NULL OR i.tenant_id = $4)"
    );
    let row: Option<DetailRow> = sqlx::query_as(&sql)
        .bind(BackupState::RUNNING)
        .bind(RecoveryState::ACTIVE)
        .bind(id)
        .bind(tenant)
        .bind(BackupState::Completed)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(DetailRow::into_detail))
}

impl DetailRow {
    fn into_detail(self) -> Detail {
        let id = self.row.id;
        let default_retention = match (self.default_window_secs, self.default_min_backups) {
            (Some(window_secs), Some(min_backups)) => Policy {
                window_secs,
                min_backups,
            },
            _ => Policy::default(),
        };
        let window = self
            .current_timeline
            .and_then(|t| timeline_number(t.into()))
            .map(|tl| {
                let timelines: Vec<WalTimeline> = self
                    .wal_timelines
                    .0
                    .into_iter()
                    .filter_map(TimelineRow::into_timeline)
                    .collect();
                let points: Vec<BackupPoint> = self
                    .backup_points
                    .0
                    .into_iter()
                    .map(|b| BackupPoint {
                        id: b.id,
                        stop_time: b.stop_time,
                        timeline: b.timeline.and_then(|t| timeline_number(t.into())),
                        start_lsn: b.start_lsn,
                        stop_lsn: b.stop_lsn,
                    })
                    .collect();
                window(id, tl, &timelines, &points)
            });
        Detail {
            row: self.row,
            window,
            default_retention,
        }
    }
}
