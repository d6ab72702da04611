//! What a caller asks of a recovery or restore, and how it hears about its progress: one request
//! struct for both recovery kinds (to the end of a backup, or on to a point in time) and both
//! destinations (in place, or a new instance).

use std::path::Path;

use trove_common::{
    recovery::{RecoveryProgress, StopPoint},
    status::RecoveryPhase,
};

/// Restore `archive` (checked against `sha256`), then stop at the end of the backup or, with
/// `replay`, replay WAL on to a point in time.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryRequest<'a> {
    /// The backup archive (`base.tar.zst`).
    pub archive: &'a Path,
    /// Its sha256, hex.
    pub sha256: &'a str,
    /// None: stop as soon as the backup is consistent.
    pub replay: Option<Replay<'a>>,
}

/// Replay of an instance's archived WAL after the backup.
#[derive(Debug, Clone, Copy)]
pub struct Replay<'a> {
    /// The WAL store (`<root>/tl<N>/…`) of the instance whose history is replayed; only read.
    pub wal_root: &'a Path,
    pub stop: StopPoint,
    /// The timeline whose history replay follows: following it gives the right data both before
    /// and after an earlier recovery.
    pub timeline: u32,
    /// Where the new timeline's `.history` is stored (`<dest>/tl<N>/`): the recovered instance's
    /// own store, so its later recoveries can follow its lineage. None keeps it only in `pg_wal`.
    pub history_dest: Option<&'a Path>,
}

/// Callbacks for the phases entered and the progress made.
#[derive(Clone, Copy)]
pub struct Reporters<'a> {
    pub phase: &'a (dyn Fn(RecoveryPhase) + Send + Sync),
    /// Each report carries only the fields that changed; the receiver merges them.
    pub progress: &'a (dyn Fn(RecoveryProgress) + Send + Sync),
}

fn ignore_phase(_: RecoveryPhase) {}
fn ignore_progress(_: RecoveryProgress) {}

impl Reporters<'static> {
    /// Reports nothing.
    pub const SILENT: Reporters<'static> = Reporters {
        phase: &ignore_phase,
        progress: &ignore_progress,
    };
}

impl Reporters<'_> {
    /// Bytes of the archive verified so far.
    pub(super) fn bytes(&self, done: u64, total: u64) {
        (self.progress)(RecoveryProgress {
            bytes_done: Some(done),
            bytes_total: Some(total),
            ..RecoveryProgress::default()
        });
    }
}
