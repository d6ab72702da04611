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
            InstanceTask::Resizing => "RESIZE",
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
    use InstanceTask as T;
    use ServiceStatus as S;

    /// (task, service, backup running, heartbeat stale) → (status, operating_status).
    fn shown(task: T, service: S, backup: bool, stale: bool) -> (&'static str, &'static str) {
        let d = derive(task, service, backup, stale);
        (d.status, d.operating_status)
    }

    #[test]
    fn recovery_shows_recover_and_hides_operating_status() {
        assert_eq!(
            shown(T::Recovering, S::Healthy, false, false),
            ("RECOVER", "")
        );
    }

    #[test]
    fn healthy_idle_instance_is_active_and_healthy() {
        assert_eq!(
            shown(T::None, S::Healthy, false, false),
            ("ACTIVE", "HEALTHY")
        );
    }

    #[test]
    fn running_backup_shows_backup() {
        assert_eq!(shown(T::None, S::Healthy, true, false).0, "BACKUP");
    }

    #[test]
    fn stale_heartbeat_is_an_error() {
        assert_eq!(shown(T::None, S::Healthy, false, true), ("ERROR", "ERROR"));
    }

    #[test]
    fn error_task_wins() {
        assert_eq!(
            shown(T::BuildingErrorTimeoutGa, S::Healthy, false, false).0,
            "ERROR"
        );
    }
}
