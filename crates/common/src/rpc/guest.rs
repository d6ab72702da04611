//! Casts from the taskmanager to a guest agent: `guesthost.<host>` for provisioning,
//! `guestagent.<instance_id>` for everything done to an instance it hosts.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Method;
use super::taskmanager::{DatabaseSpec, UserSpec};
pub use crate::access::Access;
pub use crate::overrides::Overrides;
pub use crate::recovery::{RecoveryTarget, wal_location};

/// Where a backup lives and how to check it (the seed's `backup_info {id, location, type, checksum}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupLocation {
    pub id: Uuid,
    /// Path of the archive file relative to the backup store root (`<backup id>/base.tar.zst`).
    pub location: String,
    #[serde(rename = "type")]
    pub backup_type: String,
    /// sha256 hex of the archive file.
    pub checksum: String,
}

/// A backup the guest should take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakeBackupInfo {
    pub id: Uuid,
    pub name: String,
    pub backup_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "args", rename_all = "snake_case")]
pub enum GuestMethod {
    /// Provision an instance on this host; with `backup_info` the data comes from a backup.
    Prepare {
        instance_id: Uuid,
        memory_mb: i64,
        #[serde(default)]
        databases: Vec<DatabaseSpec>,
        #[serde(default)]
        users: Vec<UserSpec>,
        backup_info: Option<BackupLocation>,
        ds_version: String,
        /// Ours: restore the backup, then replay WAL to this target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restore_target: Option<RecoveryTarget>,
        /// Ours: who may connect over TCP. Absent for instances created without `access`, which
        /// stay open to every address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<Access>,
        /// Ours: the configuration group's values to start with (checked again by the guest).
        #[serde(default, skip_serializing_if = "Overrides::is_empty")]
        overrides: Overrides,
    },
    /// Ours: the accident listing: what each transaction committed between `since` and `until`
    /// did, read from the WAL store. Reported with the conductor's `transactions_listed`.
    ListTransactions {
        listing_id: Uuid,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
        #[serde(default)]
        filter: crate::wal_activity::ActivityFilter,
    },
    /// Ours: `pg_create_restore_point(name)`, then its record into the object store.
    CreateRestorePoint {
        restore_point_id: Uuid,
        name: crate::restore_point::RestorePointName,
    },
    CreateBackup {
        backup_info: TakeBackupInfo,
    },
    Restart {},
    /// Ours: stop the server and remove the instance's files (Trove deletes the VM instead).
    DeleteInstance {},
    /// Recover the running instance in place from a backup.
    DoRecovery {
        recovery_id: Uuid,
        backup_info: BackupLocation,
        /// Ours: replay WAL to a point in time after restoring the backup.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<RecoveryTarget>,
        /// Ours: stop before the cut-over and keep the staged copy running, paused at the target
        /// and read-only, on a port of its own (reported as `PREVIEW`), until a confirm or cancel.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        preview: bool,
    },
    /// Ours: promote the recovery's waiting preview and cut over to it, as a recovery without
    /// a preview does; reported with `update_recovery` as that recovery.
    ConfirmPreview {
        recovery_id: Uuid,
    },
    /// Ours: stop the recovery's preview server and remove its staged copy; reported with
    /// `update_recovery` as `CANCELLED`.
    CancelPreview {
        recovery_id: Uuid,
    },
    /// Ours: keep a delayed copy `window_secs` behind the primary for rewind; 0 removes it. The
    /// guest reports the copy in its heartbeats.
    ConfigureRewind {
        window_secs: u32,
    },
    /// Ours: move the recovery's waiting preview on to `target`, later on the same timeline:
    /// its paused server restarts and replays on from where it paused (the backup is not
    /// fetched again), then waits at the new target on the same port. `move_seq` numbers the
    /// recovery's moves (1, 2, …): a redelivered move the guest has applied is answered from
    /// what it remembers. Reported with `update_recovery` carrying the same `move_seq`.
    MovePreview {
        recovery_id: Uuid,
        move_seq: u32,
        target: RecoveryTarget,
    },
    /// Ours: rewrite the server's `pg_hba.conf` for `access` and reload it (no restart), then
    /// report with the conductor's `update_access`.
    UpdateAccess {
        access: Access,
    },
    /// Ours: one change to the server's databases, users, grants or root; passwords sealed for
    /// this host. Reported with the conductor's `accounts_applied`.
    ApplyAccounts {
        op_id: Uuid,
        op: crate::accounts::AccountOp,
    },
    /// Trove's `update_overrides`: make the instance's configuration-group file hold exactly
    /// `overrides` (empty: detached) and reload; report with the conductor's `overrides_applied`.
    UpdateOverrides {
        overrides: Overrides,
        /// Echoed in the report, so the control plane knows which change it settles.
        revision: i64,
    },
    /// Ours: rewrite the memory settings for `memory_mb` of RAM and restart; report with a
    /// heartbeat completing `resize`.
    ResizeFlavor {
        memory_mb: i64,
    },
}

impl Method for GuestMethod {
    const VERSION: &'static str = "1.3";
}
