//! PostgreSQL datastore driver: runs one managed PostgreSQL 15 cluster per instance, backs it up and restores it.
//!
//! The driver shells out to the PostgreSQL server binaries (`initdb`, `pg_ctl`, `pg_basebackup`) and talks
//! SQL to the managed server over its unix socket as the superuser `postgres`. Tenants reach the server
//! over TCP with scram-sha-256 only. When the agent runs as root every PostgreSQL command runs as the
//! `postgres` OS user through `runuser`, because `initdb` and `postgres` refuse to run as root.
//!
//! Layout of one instance (paths come from [`ClusterSpec`]):
//! - `data_dir`, mode 0700, with `trove.conf` (settings the agent owns) and, only while recovering,
//!   `trove-recovery.conf`;
//! - `data_dir.staging` and `data_dir.old` beside it during and after an in-place recovery;
//! - a WAL store (`wal_root/tl<N>/`) fed by [`spawn_wal_streamer`], from which
//!   [`recover_in_place_to`] and [`restore_new_to`] replay to a point in time;
//! - `socket_dir`, mode 0700, because local connections are trusted.

mod backup;
mod cluster;
mod config;
mod os_user;
mod pitr;
mod recover;
mod restore;
mod restore_command;
mod runner;
mod sql;
mod wal_index;
mod wal_stream;

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub use backup::{ARCHIVE_FILE, BackupManifest, MANIFEST_FILE, take_backup};
pub use cluster::{Cluster, ClusterSpec};
pub use os_user::{OsUser, is_root};
pub use pitr::{
    PitrOutcome, RecoveryTarget, ReplayProgress, ReplayReporter, recover_in_place_to,
    restore_new_to,
};
pub use recover::{finish_recovery, prepare_recovery, recover_in_place};
pub use restore::{restore_backup, restore_new, unpack_archive, verify_archive};
pub use runner::Runner;
pub use sql::{quote_ident, quote_literal};
pub use wal_index::{TimelineState, checksum_segments, scan, timeline_dir};
pub use wal_stream::{WAL_SLOT, current_timeline, ensure_wal_slot, spawn_wal_streamer};

/// Progress of a long byte-oriented step: `(bytes_done, bytes_total)`.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Name of the phase an in-place recovery has entered (`fetching`, `verifying`, `replaying`,
/// `cutting_over`, `health_check`; point-in-time recovery adds `verifying_target`).
pub type PhaseReporter<'a> = &'a (dyn Fn(&str) + Send + Sync);

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
