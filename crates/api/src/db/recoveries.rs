//! Recovery rows as the API writes them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use trove_common::{
    recovery::{TargetKind, format_lsn},
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
         target_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
