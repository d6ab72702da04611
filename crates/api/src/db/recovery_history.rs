//! An instance's recoveries as its history shows them, each with its phases, newest first.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

/// One phase a recovery went through; `ended_at` is null while it runs.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PhaseRow {
    pub phase: String,
    /// 0 for the first pass, then the number of the preview's move the phase belongs to.
    #[serde(default)]
    pub round: i32,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The first progress reported in the phase and when: the base of the time-left estimate.
    pub first_progress: Option<serde_json::Value>,
    pub first_progress_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HistoryRow {
    pub id: Uuid,
    pub backup_id: Uuid,
    /// Kept as text: a kind this build does not know is shown, not a failed read.
    pub target_kind: String,
    pub target_time: Option<DateTime<Utc>>,
    pub target_timeline: Option<i32>,
    /// The targets beyond a time: an LSN (`X/Y`), a transaction (and whether it is included),
    /// a restore point's name.
    pub target_lsn: Option<String>,
    pub target_xid: Option<i64>,
    pub target_inclusive: Option<bool>,
    pub target_name: Option<String>,
    pub state: String,
    pub phase: String,
    pub progress: Option<Json<serde_json::Value>>,
    pub outcome: Option<Json<serde_json::Value>>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub created: DateTime<Utc>,
    /// When the last report arrived: the time of the latest progress sample.
    pub updated: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub phases: Json<Vec<PhaseRow>>,
    /// Asked as a preview; while one waits, where it listens (the instance's own address, its
    /// own port) and until when.
    pub preview: bool,
    pub preview_port: Option<i32>,
    pub preview_expires_at: Option<DateTime<Utc>>,
    pub instance_address: Option<String>,
    /// Why a preview was cancelled.
    pub cancel_reason: Option<String>,
    /// How many times the preview was moved on to a later target.
    pub preview_moves: i32,
    /// While a move is under way: the target before it.
    pub moved_from: Option<Json<serde_json::Value>>,
}

const SELECT: &str = r#"
SELECT r.id, r.backup_id, r.target_kind, r.target_time, r.target_timeline,
       r.target_lsn, r.target_xid, r.target_inclusive, r.target_name, r.state, r.phase,
       r.progress, r.outcome, r.error, r.error_code, r.created, r.updated, r.finished,
       (SELECT coalesce(json_agg(json_build_object(
                   'phase', p.phase, 'round', p.round, 'started_at', p.started_at,
                   'ended_at', p.ended_at, 'first_progress', p.first_progress,
                   'first_progress_at', p.first_progress_at)
                   ORDER BY p.round, p.rank), '[]'::json)
        FROM recovery_phases p WHERE p.recovery_id = r.id) AS phases,
       r.preview, r.preview_port, r.preview_expires_at, r.cancel_reason, r.preview_moves,
       r.moved_from,
       (SELECT i.address FROM instances i WHERE i.id = r.instance_id) AS instance_address
FROM recoveries r
"#;

/// A page of `instance`'s recoveries, newest first, after `marker` (the last id seen).
pub async fn list(
    conn: &mut PgConnection,
    instance: Uuid,
    marker: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<HistoryRow>> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE r.instance_id = $1 AND ($2::uuid IS NULL OR (r.created, r.id) < \
         (SELECT m.created, m.id FROM recoveries m WHERE m.id = $2)) \
         ORDER BY r.created DESC, r.id DESC LIMIT $3"
    ))
    .bind(instance)
    .bind(marker)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Whether `id` is one of `instance`'s recoveries.
pub async fn exists(conn: &mut PgConnection, instance: Uuid, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM recoveries WHERE id = $1 AND instance_id = $2)",
    )
    .bind(id)
    .bind(instance)
    .fetch_one(conn)
    .await
}

/// One of `instance`'s recoveries; another instance's is not found.
pub async fn find(
    conn: &mut PgConnection,
    instance: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<HistoryRow>> {
    sqlx::query_as(&format!("{SELECT} WHERE r.instance_id = $1 AND r.id = $2"))
        .bind(instance)
        .bind(id)
        .fetch_optional(conn)
        .await
}
