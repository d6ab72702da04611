//! Casts from guest agents to the `trove-conductor` topic, served by the taskmanager.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Method;

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
}

/// What the backup store holds of one timeline of an instance's WAL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalTimeline {
    pub timeline: u32,
    pub parent: Option<u32>,
    pub switch_lsn: Option<String>,
    pub first_segment: Option<String>,
    pub last_segment: Option<String>,
    #[serde(default)]
    pub gaps: Vec<(String, String)>,
    pub latest_commit: Option<DateTime<Utc>>,
    pub latest_lsn: Option<String>,
}

/// Stable codes for guest failures, so the control plane can tell them apart without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestErrorCode {
    ChecksumMismatch,
    BackupNotFound,
    RestoreFailed,
    StartFailed,
    HealthCheckFailed,
    /// Replay did not stop where it was asked to.
    TargetNotReached,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
pub enum ConductorMethod {
    Heartbeat {
        instance_id: Uuid,
        payload: HeartbeatPayload,
        sent: f64,
    },
    UpdateBackup {
        instance_id: Uuid,
        backup_id: Uuid,
        sent: f64,
        state: String,
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
        phase: String,
        /// `RUNNING`, `COMPLETED` or `FAILED`.
        state: String,
        #[serde(default)]
        progress: Option<serde_json::Value>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_code: Option<GuestErrorCode>,
    },
    /// Ours: a guest host announces itself and its capacity.
    HostHeartbeat {
        host: String,
        address: String,
        capacity: i32,
        sent: f64,
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
}

impl Method for ConductorMethod {
    const VERSION: &'static str = "1.0";
}
