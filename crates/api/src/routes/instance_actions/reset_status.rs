//! `{"reset_status": {}}` (admin): clears a stuck instance so it can be deleted
//! (`openstack database instance reset status`, and the first half of `force delete`).
//!
//! As Trove: the task becomes NONE and the service status UNKNOWN (shown as ERROR until the guest
//! reports again), running backups become FAILED; no message is sent. Ours besides: an active
//! recovery is closed as failed, and the task's deadline is cleared. Nothing in flight can bring
//! the old task back: every taskmanager handler acts only while the instance is still in the
//! task it was sent for, and the conductor moves only running backups and unfinished recoveries.

use axum::http::StatusCode;
use serde_json::Value;
use sqlx::PgConnection;
use trove_common::status::{
    BackupState, InstanceTask, RecoveryPhase, RecoveryState, ServiceStatus,
};
use uuid::Uuid;

use crate::{
    auth::Caller,
    db::instances,
    error::{ApiError, ApiResult},
    state::AppState,
    validate::bad,
};

/// What a reset writes into the rows it closes, for operators reading them later.
const REASON: &str = "reset by an administrator (reset_status)";

pub(super) async fn reset_status(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    id: Uuid,
    body: Option<&Value>,
) -> ApiResult<StatusCode> {
    caller.require_admin("instance:reset_status")?;
    if !matches!(body, Some(Value::Object(_)) | Some(Value::Null)) {
        return Err(bad(
            "Validation error: reset_status must be an object, e.g. {\"reset_status\": {}}.",
        ));
    }
    let mut tx = state.pool.begin().await?;
    // Admins reach any project's instance by id, as the CLI's lookup before the action does.
    let inst = instances::lock(&mut tx, id, caller.scope(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    instances::set_task(&mut tx, id, InstanceTask::None, None).await?;
    set_service_unknown(&mut tx, id).await?;
    let backups = fail_running_backups(&mut tx, id).await?;
    let recoveries = fail_active_recoveries(&mut tx, id).await?;
    tx.commit().await?;
    tracing::warn!(
        instance.id = %id,
        task = InstanceTask::from_code(inst.task_id).map_or("unknown", InstanceTask::description),
        backups, recoveries, "instance status reset"
    );
    Ok(StatusCode::ACCEPTED)
}

async fn set_service_unknown(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE service_statuses SET status_id = $2, status_description = $3, updated_at = now() \
         WHERE instance_id = $1",
    )
    .bind(id)
    .bind(ServiceStatus::Unknown.code())
    .bind(ServiceStatus::Unknown.description())
    .execute(conn)
    .await?;
    Ok(())
}

/// Trove's `fail_for_instance`; a late report of the guest no longer moves them.
async fn fail_running_backups(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "UPDATE backups SET state = $2, error = $3, deadline = NULL, updated = now() \
         WHERE instance_id = $1 AND NOT deleted AND state = ANY($4)",
    )
    .bind(id)
    .bind(BackupState::Failed)
    .bind(REASON)
    .bind(BackupState::RUNNING)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// Closed with phase `failed`, not `timed out`: only a timed-out recovery may still be settled
/// by the guest's late outcome.
async fn fail_active_recoveries(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "UPDATE recoveries SET state = $2, phase = $3, error = $4, finished = now(), \
         updated = now() \
         WHERE instance_id = $1 AND state = ANY($5)",
    )
    .bind(id)
    .bind(RecoveryState::Failed)
    .bind(RecoveryPhase::Failed)
    .bind(REASON)
    .bind(RecoveryState::ACTIVE)
    .execute(&mut *conn)
    .await?;
    // Their history ends here too: no phase stays open.
    sqlx::query(
        "UPDATE recovery_phases p SET ended_at = now() FROM recoveries r \
         WHERE p.recovery_id = r.id AND r.instance_id = $1 AND p.ended_at IS NULL",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}
