//! Casts from trove-api to the `taskmanager` topic (Trove's taskmanager API, version 1.0).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Method;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlavorRef {
    pub id: String,
    pub ram: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSpec {
    pub name: String,
}

/// A user to create with the instance. Its password travels sealed for the message's receiver
/// (the taskmanager in `create_instance`, the guest host in `prepare`), bound to the instance
/// and the user name (`secrets::user_password_context`); a password in clear does not parse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSpec {
    pub name: String,
    pub password: crate::secrets::Sealed,
    #[serde(default)]
    pub databases: Vec<DatabaseSpec>,
}

/// What the API hands the taskmanager to start a backup (Trove's `backup_info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewBackupInfo {
    pub id: Uuid,
    pub name: String,
    pub instance_id: Uuid,
    pub backup_type: String,
    pub datastore: String,
    pub datastore_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
pub enum TaskManagerMethod {
    CreateInstance {
        instance_id: Uuid,
        name: String,
        flavor: FlavorRef,
        datastore_manager: String,
        ds_version: String,
        volume_size: Option<i32>,
        backup_id: Option<Uuid>,
        #[serde(default)]
        databases: Vec<DatabaseSpec>,
        #[serde(default)]
        users: Vec<UserSpec>,
        /// Ours: after restoring `backup_id`, replay the source's WAL to this target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restore_target: Option<super::guest::RecoveryTarget>,
    },
    DeleteInstance {
        instance_id: Uuid,
    },
    Restart {
        instance_id: Uuid,
    },
    /// Ours: hand the instance's rewind window (`instances.rewind_window_secs`, as it is when
    /// the message is handled) to its guest.
    ConfigureRewind {
        instance_id: Uuid,
    },
    /// Ours: create the named restore point `restore_point_id` (a `restore_points` row) on the
    /// instance's running server.
    CreateRestorePoint {
        instance_id: Uuid,
        restore_point_id: Uuid,
        name: crate::restore_point::RestorePointName,
    },
    /// Ours: hand the accident listing `listing_id` (a `wal_listings` row, which holds what to
    /// list) to the instance's guest.
    ListTransactions {
        instance_id: Uuid,
        listing_id: Uuid,
    },
    CreateBackup {
        backup_info: NewBackupInfo,
        instance_id: Uuid,
    },
    DeleteBackup {
        backup_id: Uuid,
    },
    /// The seed's in-place recovery (never merged in Trove).
    DoInstanceRecovery {
        instance_id: Uuid,
        backup_id: Uuid,
        recovery_id: Uuid,
    },
    /// Ours: a preview's confirm, cancel or move, which the API recorded on the recovery row
    /// (`preview_action`, and for a move the new target and `preview_moves`); the row decides,
    /// so a redelivery finds it already sent.
    SettlePreview {
        instance_id: Uuid,
        recovery_id: Uuid,
    },
    /// Trove's `update_access`: apply the instance's new network access. The control database
    /// holds the access to apply; `access` is what the API stored, for the record.
    UpdateAccess {
        instance_id: Uuid,
        access: crate::access::Access,
    },
    /// Ours: apply the account change `op_id` (databases, users, grants, root) the API stored
    /// in `account_ops`; the row holds the change, so a redelivery finds it settled.
    ApplyAccounts {
        instance_id: Uuid,
        op_id: Uuid,
    },
    /// Ours: the instance's configuration (attach, detach, or its group's values) changed; the
    /// control database holds what to apply, and `revision` names the change.
    UpdateConfiguration {
        instance_id: Uuid,
        revision: i64,
    },
    /// Trove's `resize_flavor` (we send the new flavor only): the guest rewrites the memory
    /// settings for the new flavor's RAM and restarts.
    ResizeFlavor {
        instance_id: Uuid,
        new_flavor: FlavorRef,
    },
    /// Trove's `resize_volume`.
    ResizeVolume {
        instance_id: Uuid,
        new_size: i32,
    },
}

impl Method for TaskManagerMethod {
    const VERSION: &'static str = "1.0";
}
