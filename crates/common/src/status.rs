//! Status vocabularies with Trove's numeric codes, so operators and Trove tooling recognise them.

use serde::{Deserialize, Serialize};

/// Health of the database service on an instance (`service_statuses.status_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceStatus {
    Running,
    Blocked,
    Paused,
    Shutdown,
    Deleted,
    Crashed,
    Failed,
    Building,
    Unknown,
    New,
    FailedTimeoutGuestagent,
    InstanceReady,
    RestartRequired,
    Healthy,
    Restarting,
}

impl ServiceStatus {
    const ALL: [ServiceStatus; 15] = [
        Self::Running,
        Self::Blocked,
        Self::Paused,
        Self::Shutdown,
        Self::Deleted,
        Self::Crashed,
        Self::Failed,
        Self::Building,
        Self::Unknown,
        Self::New,
        Self::FailedTimeoutGuestagent,
        Self::InstanceReady,
        Self::RestartRequired,
        Self::Healthy,
        Self::Restarting,
    ];

    pub fn code(self) -> i32 {
        match self {
            Self::Running => 0x01,
            Self::Blocked => 0x02,
            Self::Paused => 0x03,
            Self::Shutdown => 0x04,
            Self::Deleted => 0x05,
            Self::Crashed => 0x06,
            Self::Failed => 0x08,
            Self::Building => 0x09,
            Self::Unknown => 0x16,
            Self::New => 0x17,
            Self::FailedTimeoutGuestagent => 0x18,
            Self::InstanceReady => 0x19,
            Self::RestartRequired => 0x20,
            Self::Healthy => 0x21,
            Self::Restarting => 0x22,
        }
    }

    /// The text stored in `status_description` and sent in heartbeats.
    pub fn description(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Blocked => "blocked",
            Self::Paused => "paused",
            Self::Shutdown => "shutdown",
            Self::Deleted => "deleted",
            Self::Crashed => "crashed",
            Self::Failed => "failed to spawn",
            Self::Building => "building",
            Self::Unknown => "unknown",
            Self::New => "new",
            Self::FailedTimeoutGuestagent => "guestagent error",
            Self::InstanceReady => "instance ready",
            Self::RestartRequired => "restart required",
            Self::Healthy => "healthy",
            Self::Restarting => "restarting",
        }
    }

    /// What the API shows as `operating_status`.
    pub fn api_status(self) -> &'static str {
        match self {
            Self::Running => "ACTIVE",
            Self::Blocked => "BLOCKED",
            Self::Paused | Self::Shutdown | Self::Crashed => "SHUTDOWN",
            Self::Deleted => "DELETED",
            Self::Failed => "FAILED",
            Self::Building | Self::InstanceReady => "BUILD",
            Self::Unknown | Self::FailedTimeoutGuestagent => "ERROR",
            Self::New => "NEW",
            Self::RestartRequired => "RESTART_REQUIRED",
            Self::Healthy => "HEALTHY",
            Self::Restarting => "RESTARTING",
        }
    }

    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn from_description(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.description() == text)
    }

    /// The database answers: the instance counts as up.
    pub fn is_up(self) -> bool {
        matches!(self, Self::Running | Self::Healthy)
    }

    /// Trove's `action_is_allowed`: statuses in which a user action may start.
    pub fn action_is_allowed(self) -> bool {
        matches!(
            self,
            Self::Running
                | Self::Shutdown
                | Self::Crashed
                | Self::Blocked
                | Self::Healthy
                | Self::RestartRequired
        )
    }
}

/// The task running on an instance (`instances.task_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceTask {
    None,
    Deleting,
    Rebooting,
    Building,
    BuildingErrorServer,
    BuildingErrorTimeoutGa,
    /// Ours: an in-place recovery runs.
    Recovering,
    /// Ours: a recovery failed in a way that left the instance in doubt.
    RecoveryError,
    /// Ours: a delete did not finish in time.
    DeletingError,
    /// New network access rules are being applied (Trove's UPDATING).
    Updating,
    /// The access rules could not be applied (Trove's UPDATING_ERROR_ACCESS).
    UpdatingErrorAccess,
    /// A flavor or volume resize runs (Trove's RESIZING).
    Resizing,
}

impl InstanceTask {
    const ALL: [InstanceTask; 12] = [
        Self::None,
        Self::Deleting,
        Self::Rebooting,
        Self::Building,
        Self::BuildingErrorServer,
        Self::BuildingErrorTimeoutGa,
        Self::Recovering,
        Self::RecoveryError,
        Self::DeletingError,
        Self::Updating,
        Self::UpdatingErrorAccess,
        Self::Resizing,
    ];

    pub fn code(self) -> i32 {
        match self {
            Self::None => 1,
            Self::Deleting => 2,
            Self::Rebooting => 3,
            Self::Building => 5,
            Self::BuildingErrorServer => 0x51,
            Self::BuildingErrorTimeoutGa => 0x5b,
            // Trove's codes stop at 0x5d; ours start at 0x70 so they never collide.
            Self::Recovering => 0x70,
            Self::RecoveryError => 0x71,
            Self::DeletingError => 0x72,
            Self::Updating => 12,
            Self::UpdatingErrorAccess => 93,
            Self::Resizing => 4,
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::None => "No tasks for the instance.",
            Self::Deleting => "Deleting the instance.",
            Self::Rebooting => "Rebooting the instance.",
            Self::Building => "The instance is building.",
            Self::BuildingErrorServer => "Build error: Server.",
            Self::BuildingErrorTimeoutGa => "Build error: guestagent timeout.",
            Self::Recovering => "Recovering the instance from a backup.",
            Self::RecoveryError => "Recovery error.",
            Self::DeletingError => "Delete error.",
            Self::Updating => "Updating the instance.",
            Self::UpdatingErrorAccess => "Update error: Access.",
            Self::Resizing => "Resizing the instance.",
        }
    }

    pub fn is_error(self) -> bool {
        matches!(
            self,
            Self::BuildingErrorServer
                | Self::BuildingErrorTimeoutGa
                | Self::RecoveryError
                | Self::DeletingError
                | Self::UpdatingErrorAccess
        )
    }

    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }
}

crate::text_enum! {
    /// Backup states as Trove names them (`backups.state`).
    pub enum BackupState {
        New => "NEW",
        Building => "BUILDING",
        Saving => "SAVING",
        Completed => "COMPLETED",
        Failed => "FAILED",
        DeleteFailed => "DELETE_FAILED",
    }
}

impl BackupState {
    /// States of a backup still being taken.
    pub const RUNNING: [Self; 3] = [Self::New, Self::Building, Self::Saving];

    pub fn is_running(self) -> bool {
        Self::RUNNING.contains(&self)
    }
}

crate::text_enum! {
    /// Where a recovery stands (`recoveries.state`, and `state` in `update_recovery`).
    pub enum RecoveryState {
        New => "NEW",
        Running => "RUNNING",
        Completed => "COMPLETED",
        Failed => "FAILED",
        /// A preview: the staged copy waits, paused at the target and readable on its own port,
        /// for a confirm, a cancel or a move; the instance still serves its current data.
        Preview => "PREVIEW",
        /// A preview cancelled (by request or on expiry); the instance kept its data.
        Cancelled => "CANCELLED",
    }
}

impl RecoveryState {
    /// States of a recovery not finished yet (at most one per instance). A preview holds the
    /// instance like a running recovery does.
    pub const ACTIVE: [Self; 3] = [Self::New, Self::Running, Self::Preview];
    /// States in which the guest works on the recovery, bound by the recovery's deadline; a
    /// preview waits for the user instead, until it expires.
    pub const IN_FLIGHT: [Self; 2] = [Self::New, Self::Running];

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

crate::text_enum! {
    /// The step a recovery is in (`recoveries.phase`, and `phase` in `update_recovery`). The
    /// control plane writes `queued`, `dispatched`, `done`, `failed` and `timed out`; the guest
    /// reports the steps in between as it enters them.
    pub enum RecoveryPhase {
        /// Accepted by the API, not yet handed to the guest.
        Queued => "queued",
        /// Sent to the guest, which has not reported yet.
        Dispatched => "dispatched",
        /// Locating the backup archive.
        Fetching => "fetching",
        /// Checking the archive's checksum (and the WAL's continuity) while unpacking it.
        Verifying => "verifying",
        /// Replaying WAL into the staged copy.
        Replaying => "replaying",
        /// Proving replay stopped at the target, then promoting the staged copy.
        VerifyingTarget => "verifying_target",
        /// A preview: the staged copy waits, paused at the target, for a confirm or a cancel.
        Preview => "preview",
        /// A confirmed preview: ending its paused replay (promotion to a new timeline).
        Promoting => "promoting",
        /// Stopping the live server and swapping the directories.
        CuttingOver => "cutting_over",
        /// Waiting for the recovered server to answer.
        HealthCheck => "health_check",
        Done => "done",
        /// Refused by the taskmanager before the guest was involved.
        Failed => "failed",
        /// The sweeper gave up waiting; the guest's late outcome may still settle it.
        TimedOut => "timed out",
        /// A preview's cancel (by request or on expiry) was sent to the guest.
        Cancelling => "cancelling",
        /// The preview server is stopped and its staged copy removed.
        Cancelled => "cancelled",
    }
}

impl RecoveryPhase {
    /// The phase's place in the order a recovery moves through (the declaration order), as
    /// `recovery_phases.rank` records it: a report ranked below the newest one is late.
    pub fn rank(self) -> i32 {
        let i = Self::ALL
            .iter()
            .position(|p| *p == self)
            .expect("every phase is in ALL");
        i32::try_from(i).expect("a handful of phases")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_status_codes_round_trip_and_match_trove() {
        for s in ServiceStatus::ALL {
            assert_eq!(ServiceStatus::from_code(s.code()), Some(s));
            assert_eq!(ServiceStatus::from_description(s.description()), Some(s));
        }
        assert_eq!(ServiceStatus::Healthy.code(), 33);
        assert_eq!(ServiceStatus::New.code(), 23);
        assert_eq!(ServiceStatus::FailedTimeoutGuestagent.code(), 24);
    }

    #[test]
    fn recovery_and_backup_states_keep_their_stored_text() {
        assert_eq!(RecoveryState::Completed.as_str(), "COMPLETED");
        assert_eq!(BackupState::DeleteFailed.as_str(), "DELETE_FAILED");
        assert_eq!(RecoveryPhase::TimedOut.as_str(), "timed out");
        assert_eq!(
            RecoveryPhase::parse("verifying_target"),
            Some(RecoveryPhase::VerifyingTarget)
        );
        assert!(BackupState::New.is_running() && !BackupState::Completed.is_running());
        assert!(RecoveryState::Failed.is_finished() && !RecoveryState::Running.is_finished());
        assert!(RecoveryState::Cancelled.is_finished() && !RecoveryState::Preview.is_finished());
        assert!(RecoveryState::ACTIVE.contains(&RecoveryState::Preview));
        assert!(!RecoveryState::IN_FLIGHT.contains(&RecoveryState::Preview));
        // A confirmed preview moves on through promotion and cut-over, never back.
        assert!(RecoveryPhase::Preview.rank() > RecoveryPhase::VerifyingTarget.rank());
        assert!(RecoveryPhase::Promoting.rank() > RecoveryPhase::Preview.rank());
        assert!(RecoveryPhase::CuttingOver.rank() > RecoveryPhase::Promoting.rank());
    }

    #[test]
    fn task_codes_round_trip_and_do_not_collide() {
        for t in InstanceTask::ALL {
            assert_eq!(InstanceTask::from_code(t.code()), Some(t));
        }
        assert_eq!(InstanceTask::Building.code(), 5);
        assert_eq!(InstanceTask::Deleting.code(), 2);
        assert_eq!(InstanceTask::Updating.code(), 12);
        assert_eq!(InstanceTask::UpdatingErrorAccess.code(), 93);
        assert!(InstanceTask::UpdatingErrorAccess.is_error());
    }
}
