//! PostgreSQL datastore driver: runs one managed PostgreSQL 15 cluster per instance, backs it up and restores it.
//!
//! The driver shells out to the PostgreSQL server binaries (`initdb`, `pg_ctl`, `pg_basebackup`) and talks
//! SQL to the managed server over its unix socket as the superuser `postgres`. Tenants reach the server
//! over TCP with scram-sha-256 only. When the agent runs as root every PostgreSQL command runs as the
//! `postgres` OS user through `runuser`, because `initdb` and `postgres` refuse to run as root.
//!
//! A recovery, in place or into a new instance, takes one [`RecoveryRequest`]: stream a backup
//! from the store and unpack it, checksummed (`archive`), replay and promote it (`replay`, `wal_plan`, `recovery_conf`), and
//! for a recovery in place swap it with the live data or roll back (`staging`). Failures are typed
//! ([`RecoveryError`]: phase and kind) where they happen.
//!
//! Layout of one instance (paths come from [`ClusterSpec`]):
//! - `data_dir`, mode 0700, with `trove.conf` (settings the agent owns) and, only while recovering,
//!   `trove-recovery.conf`;
//! - `data_dir.staging` and `data_dir.old` beside it during and after an in-place recovery;
//! - a WAL spool (`<instance>/wal/tl<N>/`) that [`spawn_wal_streamer`] fills and ships to the
//!   object store, from which [`recover_in_place`] and [`restore_new`] fetch WAL (into a
//!   `walfetch` directory beside the data) to replay to a point in time;
//! - `socket_dir`, mode 0700, because local connections are trusted;
//! - `hba_file`, the instance's network access as client authentication rules (see [`hba`]),
//!   beside the data directory so that every copy of the data obeys the current rules.
//!
//! Every directory the driver creates is mode 0700 and every file 0600, set explicitly so the
//! process umask does not matter: the servers' trees belong to the servers' OS user (the WAL
//! receiver and `restore_command` run as it), backups to the agent's own user.

mod accounts;
mod archive;
mod backup;
mod cluster;
mod config;
mod control_file;
mod disk_usage;
mod error;
mod hba;
mod os_user;
mod overrides;
mod preview;
mod preview_move;
mod recover;
mod recovery_conf;
mod relations;
mod replay;
mod request;
mod restore;
mod restore_command;
mod restore_point;
mod rewind;
mod rewind_copy;
mod runner;
mod scram;
mod spec;
mod sql;
mod staging;
mod steps;
mod stop_line;
mod wal_activity;
mod wal_fetch;
mod wal_index;
mod wal_plan;
mod wal_ship;
mod wal_stream;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use accounts::AccountError;
pub use archive::{ArchiveSource, restore_backup};
pub use backup::{ARCHIVE_FILE, BackupDest, BackupManifest, MANIFEST_FILE, take_backup};
pub use cluster::Cluster;
pub use disk_usage::dir_bytes;
pub use error::{FailAs, Failure, RecoveryError};
pub use hba::AccessApplied;
pub use os_user::{OsUser, ensure_dir, ensure_private_dir, is_root, write_owned};
pub use preview::{PreviewState, cancel_preview, confirm_preview, stage_preview};
pub use preview_move::{MoveError, move_preview};
pub use recover::recover_in_place;
pub use request::{RecoveryRequest, Replay, Reporters, WalSource};
pub use restore::restore_new;
pub use restore_point::{Created as RestorePointCreated, create_restore_point};
pub use rewind::{RewindFailed, preview_from_copy, rewind_in_place};
pub use rewind_copy::{
    CopyPosition, build_copy, copy_exists, discard_copy, drop_slot, pause_copy, probe_copy,
    rewind_cluster, set_window,
};
pub use runner::{Runner, run_checked};
pub use spec::ClusterSpec;
pub use sql::{quote_ident, quote_literal};
pub use wal_activity::{ActivityRequest, MAX_SEGMENTS, list_activity};
pub use wal_fetch::assemble_segment;
pub use wal_index::{merge_store_index, scan, scan_until, timeline_dir};
pub use wal_ship::{SharedShipIndex, ShipIndex, Shipped, Shipper};
pub use wal_stream::{WAL_SLOT, current_timeline, ensure_wal_slot, spawn_wal_streamer};

/// Progress of a long byte-oriented step: `(bytes_done, bytes_total)`.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Where the PostgreSQL server binaries live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
}

impl PgBinaries {
    pub fn new(bin_dir: impl Into<PathBuf>) -> Self {
        Self {
            bin_dir: bin_dir.into(),
        }
    }

    /// Full path of one binary, e.g. `pg_ctl`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

impl Default for PgBinaries {
    /// The Debian/Ubuntu layout of PostgreSQL 15, which is what the guest image ships.
    fn default() -> Self {
        Self::new("/usr/lib/postgresql/15/bin")
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
///
/// The listener is closed before PostgreSQL binds the port, so another process could take it in
/// between; the kernel hands out ephemeral ports in rotation, which makes that unlikely enough for
/// staging servers and tests, and `pg_ctl start` fails loudly if it happens.
pub fn allocate_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("binding 127.0.0.1:0 to find a free port")?;
    let port = listener
        .local_addr()
        .context("reading the allocated port")?
        .port();
    Ok(port)
}

/// `<path>.<suffix>` beside `path` (same parent directory, so renames stay on one file system).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}
