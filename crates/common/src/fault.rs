//! Stable codes of instance faults (`instance_faults.error_code`, shown as `fault.error_code`), so a
//! tenant can tell failures apart without the details, which may hold host paths and tool output
//! and are shown to admins only.

use crate::rpc::conductor::GuestErrorCode;

crate::text_enum! {
    /// Why an instance has a fault. The guest's recovery codes keep their text.
    pub enum FaultCode {
        /// No live guest host had a free slot when the instance was placed.
        NoHostCapacity => "no_host_capacity",
        /// Live hosts have room, but none has reported the key its passwords must be sealed for.
        NoHostKey => "no_host_key",
        /// The taskmanager could not open the passwords trove-api sealed for it.
        PasswordsUnreadable => "passwords_unreadable",
        /// The passwords could not be sealed for the chosen host.
        SealFailed => "seal_failed",
        /// The backup to restore was deleted or is not complete any more.
        BackupUnavailable => "backup_unavailable",
        /// The guest could not create the instance (initdb, restore, databases or users).
        PrepareFailed => "prepare_failed",
        /// The guest did not report the instance up before the task deadline.
        BuildTimeout => "build_timeout",
        /// The guest did not report the deletion before the task deadline.
        DeleteTimeout => "delete_timeout",
        /// The guest did not report the restart before the task deadline.
        RestartTimeout => "restart_timeout",
        /// The taskmanager could not hand the recovery to the guest.
        RecoveryRefused => "recovery_refused",
        /// The guest did not report the end of a recovery before its deadline.
        RecoveryTimeout => "recovery_timeout",
        /// A recovery failed on the guest; the codes below name how.
        ChecksumMismatch => "checksum_mismatch",
        BackupNotFound => "backup_not_found",
        RestoreFailed => "restore_failed",
        StartFailed => "start_failed",
        HealthCheckFailed => "health_check_failed",
        TargetNotReached => "target_not_reached",
        Internal => "internal",
        /// The guest could not apply new network access rules.
        AccessUpdateFailed => "access_update_failed",
        /// The guest did not report the access change before the task deadline.
        AccessUpdateTimeout => "access_update_timeout",
        /// The guest could not apply the instance's configuration group.
        ConfigurationFailed => "configuration_failed",
        /// The guest did not report the end of a resize before the task deadline.
        ResizeTimeout => "resize_timeout",
    }
}

impl From<GuestErrorCode> for FaultCode {
    fn from(code: GuestErrorCode) -> Self {
        match code {
            GuestErrorCode::ChecksumMismatch => Self::ChecksumMismatch,
            GuestErrorCode::BackupNotFound => Self::BackupNotFound,
            GuestErrorCode::RestoreFailed => Self::RestoreFailed,
            GuestErrorCode::StartFailed => Self::StartFailed,
            GuestErrorCode::HealthCheckFailed => Self::HealthCheckFailed,
            GuestErrorCode::TargetNotReached => Self::TargetNotReached,
            GuestErrorCode::Internal => Self::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_codes_keep_their_text_as_fault_codes() {
        for code in GuestErrorCode::ALL {
            assert_eq!(FaultCode::from(*code).as_str(), code.as_str());
        }
    }
}
