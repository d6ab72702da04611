//! How the API derives `status` and `operating_status`, as Trove does: the task first, then a
//! running backup, then the service status (with a stale heartbeat counting as a guest error).

use trove_common::status::{InstanceTask, ServiceStatus};

pub struct Derived {
    pub status: &'static str,
    pub operating_status: &'static str,
}

pub fn derive(
    task: InstanceTask,
    service: ServiceStatus,
    backup_running: bool,
    heartbeat_stale: bool,
) -> Derived {
    // Trove applies staleness at read time only, and only while no task runs.
    let service = if heartbeat_stale
        && task == InstanceTask::None
        && !matches!(
            service,
            ServiceStatus::RestartRequired | ServiceStatus::New | ServiceStatus::Deleted
        ) {
        ServiceStatus::FailedTimeoutGuestagent
    } else {
        service
    };
    let status = if task.is_error() {
        "ERROR"
    } else {
        match task {
            InstanceTask::Building => "BUILD",
            InstanceTask::Rebooting => "REBOOT",
            InstanceTask::Recovering => "RECOVER",
            InstanceTask::Deleting => "SHUTDOWN",
            _ if backup_running => "BACKUP",
            _ => match service {
                ServiceStatus::Running | ServiceStatus::Healthy => "ACTIVE",
                ServiceStatus::New | ServiceStatus::Building | ServiceStatus::InstanceReady => {
                    "BUILD"
                }
                ServiceStatus::Shutdown | ServiceStatus::Crashed | ServiceStatus::Paused => {
                    "SHUTDOWN"
                }
                ServiceStatus::Restarting => "REBOOT",
                ServiceStatus::RestartRequired => "RESTART_REQUIRED",
                ServiceStatus::Failed
                | ServiceStatus::Unknown
                | ServiceStatus::FailedTimeoutGuestagent => "ERROR",
                ServiceStatus::Blocked => "BLOCKED",
                ServiceStatus::Deleted => "SHUTDOWN",
            },
        }
    };
    let operating_status = if task == InstanceTask::None {
        service.api_status()
    } else {
        ""
    };
    Derived {
        status,
        operating_status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_shows_recover_and_hides_operating_status() {
        let d = derive(
            InstanceTask::Recovering,
            ServiceStatus::Healthy,
            false,
            false,
        );
        assert_eq!(d.status, "RECOVER");
        assert_eq!(d.operating_status, "");
    }

    #[test]
    fn healthy_idle_instance_is_active_and_healthy() {
        let d = derive(InstanceTask::None, ServiceStatus::Healthy, false, false);
        assert_eq!((d.status, d.operating_status), ("ACTIVE", "HEALTHY"));
    }

    #[test]
    fn running_backup_shows_backup() {
        let d = derive(InstanceTask::None, ServiceStatus::Healthy, true, false);
        assert_eq!(d.status, "BACKUP");
    }

    #[test]
    fn stale_heartbeat_is_an_error() {
        let d = derive(InstanceTask::None, ServiceStatus::Healthy, false, true);
        assert_eq!((d.status, d.operating_status), ("ERROR", "ERROR"));
    }

    #[test]
    fn error_task_wins() {
        let d = derive(
            InstanceTask::BuildingErrorTimeoutGa,
            ServiceStatus::Healthy,
            false,
            false,
        );
        assert_eq!(d.status, "ERROR");
    }
}
