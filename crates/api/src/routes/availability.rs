//! Whether an instance can take a user action now: the check restart, backup create and recover
//! share, made on the locked instance row.

use sqlx::PgConnection;
use trove_common::status::{InstanceTask, ServiceStatus};

use crate::{
    db::{backups, instances::LockedInstance, recoveries},
    error::{ApiError, ApiResult},
};

/// Trove's `validate_can_perform_action`: no task, a service that can take an action, no
/// running backup, and (ours) no recovery. Anything else is 422.
pub async fn ensure_available(conn: &mut PgConnection, inst: &LockedInstance) -> ApiResult<()> {
    let task = InstanceTask::from_code(inst.task_id).unwrap_or(InstanceTask::None);
    let service = ServiceStatus::from_code(inst.status_id).unwrap_or(ServiceStatus::Unknown);
    let busy_reason = if task != InstanceTask::None {
        Some(format!("task status was {}", task.description()))
    } else if !service.action_is_allowed() {
        Some(format!("service status was {}", service.description()))
    } else if backups::running_exists(conn, inst.id).await? {
        Some("a backup is running".to_string())
    } else if recoveries::active_exists(conn, inst.id).await? {
        Some("a recovery is running".to_string())
    } else {
        None
    };
    match busy_reason {
        Some(r) => Err(ApiError::Unprocessable(format!(
            "Instance {} is not currently available for an action to be performed ({r}).",
            inst.id
        ))),
        None => Ok(()),
    }
}
