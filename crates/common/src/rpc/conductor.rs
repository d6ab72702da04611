//! Casts from guest agents to the `trove-conductor` topic, served by the taskmanager.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Method;
pub use crate::recovery::{RecoveryOutcome, RecoveryProgress, WalTimeline};
use crate::status::{BackupState, RecoveryPhase, RecoveryState};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatPayload {
    /// A `ServiceStatus` description, e.g. `healthy`.
    pub service_status: String,
    /// Ours: where tenants connect, reported once the server listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Ours: why provisioning failed, shown to the user as the instance fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Ours: the operation this report concludes (`restart`). Periodic heartbeats carry none, so
    /// one probed before a restart began cannot end the restart's task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completes: Option<String>,
    /// Ours: the databases and users the server holds, when they changed since the last report
    /// (or a while has passed), so the API lists what is really there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<crate::accounts::Accounts>,
    /// Ours: bytes the instance's data directory uses (`volume.used`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_used_bytes: Option<u64>,
    /// Ours: the instance's delayed copy, while rewind is on (docs/api.md, "Rewind").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind: Option<crate::rewind::RewindStatus>,
}

crate::text_enum! {
    /// Stable codes for guest failures, so the control plane can tell them apart without parsing
    /// text. The guest derives each from the typed error raised where the failure happened.
    pub enum GuestErrorCode {
        /// The backup archive or a WAL segment does not match its recorded checksum.
        ChecksumMismatch => "checksum_mismatch",
        /// The backup archive or the WAL it needs is not in the store.
        BackupNotFound => "backup_not_found",
        /// Unpacking the backup or replaying WAL into the staged copy failed.
        RestoreFailed => "restore_failed",
        /// A server (staged or recovered) did not start.
        StartFailed => "start_failed",
        /// The recovered server did not answer in time.
        HealthCheckFailed => "health_check_failed",
        /// Replay did not stop where it was asked to.
        TargetNotReached => "target_not_reached",
        /// Anything else: a bug or the host (disk, permissions).
        Internal => "internal",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
pub enum ConductorMethod {
    Heartbeat {
        instance_id: Uuid,
        payload: HeartbeatPayload,
        sent: f64,
    },
    /// Ours: the outcome of `list_transactions`: the listing, or an error.
    TransactionsListed {
        instance_id: Uuid,
        listing_id: Uuid,
        #[serde(default)]
        activity: Option<crate::wal_activity::Activity>,
        #[serde(default)]
        error: Option<String>,
    },
    /// Ours: the outcome of `create_restore_point`: its LSN, timeline and time, or an error.
    UpdateRestorePoint {
        instance_id: Uuid,
        restore_point_id: Uuid,
        #[serde(default)]
        lsn: Option<String>,
        #[serde(default)]
        timeline: Option<u32>,
        #[serde(default)]
        time: Option<chrono::DateTime<chrono::Utc>>,
        #[serde(default)]
        error: Option<String>,
    },
    UpdateBackup {
        instance_id: Uuid,
        backup_id: Uuid,
        sent: f64,
        state: BackupState,
        #[serde(default)]
        size: Option<f64>,
        #[serde(default)]
        checksum: Option<String>,
        #[serde(default)]
        location: Option<String>,
        #[serde(default)]
        backup_type: Option<String>,
        #[serde(default)]
        success: Option<bool>,
        // Ours: what a later point-in-time recovery needs to know about the backup.
        #[serde(default)]
        start_lsn: Option<String>,
        #[serde(default)]
        stop_lsn: Option<String>,
        #[serde(default)]
        stop_time: Option<DateTime<Utc>>,
        #[serde(default)]
        timeline: Option<i32>,
        #[serde(default)]
        error: Option<String>,
    },
    /// Ours: progress and outcome of an in-place recovery.
    UpdateRecovery {
        instance_id: Uuid,
        recovery_id: Uuid,
        sent: f64,
        phase: RecoveryPhase,
        /// `RUNNING`, `COMPLETED` or `FAILED`.
        state: RecoveryState,
        #[serde(default)]
        progress: Option<RecoveryProgress>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_code: Option<GuestErrorCode>,
        /// What a completed recovery reached; absent while it runs and when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<RecoveryOutcome>,
        /// With state `PREVIEW`: where the paused, read-only staged copy listens.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preview: Option<PreviewReady>,
        /// Ours: the move of a waiting preview this report belongs to (`move_preview`'s
        /// `move_seq`); absent for the first staging, a confirm and a cancel. The conductor
        /// ignores a report of an older move, so a late one cannot undo a newer move.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        move_seq: Option<u32>,
    },
    /// Ours: a registered guest host says it is alive and where it is. The conductor takes the
    /// host from the broker-validated sender; `host` must name that same host.
    HostHeartbeat {
        host: String,
        address: String,
        /// Ignored: a host's capacity is what the operator registered (`trove-manage host-add`).
        /// Kept optional so heartbeats of older guests, which still send it, parse.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capacity: Option<i32>,
        sent: f64,
        /// The host's public key (base64 X25519): secrets in its `prepare` are sealed for it.
        /// Absent from a guest that predates sealed secrets; such a host gets no instance that
        /// carries a password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_key: Option<crate::secrets::PublicKey>,
    },
    /// Ours: the state of an instance's continuous WAL archive.
    UpdateWal {
        instance_id: Uuid,
        sent: f64,
        /// The timeline the server runs on now.
        current_timeline: u32,
        timelines: Vec<WalTimeline>,
    },
    /// Ours: the guest finished removing an instance.
    InstanceDeleted { instance_id: Uuid, sent: f64 },
    /// Ours: the outcome of an `update_access`: the rules in force for `access`, or why they
    /// could not be applied (`error`, for admins only: it may name host paths).
    UpdateAccess {
        instance_id: Uuid,
        sent: f64,
        access: crate::access::Access,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Ours: the outcome of an `apply_accounts`: `error` is what the tenant may read (the
    /// server's own message), and `accounts` what the server holds after it.
    AccountsApplied {
        instance_id: Uuid,
        op_id: Uuid,
        sent: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        accounts: Option<crate::accounts::Accounts>,
    },
    /// Ours: the outcome of an `update_overrides` for `revision`: applied (and whether a
    /// parameter that changed waits for a restart), or why not (the old file is back in force).
    OverridesApplied {
        instance_id: Uuid,
        sent: f64,
        revision: i64,
        restart_required: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

impl Method for ConductorMethod {
    const VERSION: &'static str = "1.0";
}

/// A preview ready for reading: the port its server listens on, on the instance's own addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewReady {
    pub port: u16,
    /// Where replay paused (`X/Y`): a move must name a target past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_lsn: Option<String>,
    /// The last commit replayed before the pause, if any: a move to a time must lie after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<chrono::DateTime<chrono::Utc>>,
}
