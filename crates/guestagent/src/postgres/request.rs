//! What a caller asks of a recovery or restore, and how it hears about its progress: one request
//! struct for both recovery kinds (to the end of a backup, or on to a point in time) and both
//! destinations (in place, or a new instance).

use std::path::Path;

use trove_common::{
    recovery::{RecoveryProgress, StopPoint},
    status::RecoveryPhase,
    store::BlobStore,
};

use super::archive::ArchiveSource;

/// Restore `archive` (checked against its sha256), then stop at the end of the backup or, with
/// `replay`, replay WAL on to a point in time.
#[derive(Debug, Clone, Copy)]
pub struct RecoveryRequest<'a> {
    /// The backup archive (`base.tar.zst`) in the store.
    pub archive: ArchiveSource<'a>,
    /// None: stop as soon as the backup is consistent.
    pub replay: Option<Replay<'a>>,
}

/// An instance's WAL in the object store, and how to fetch it.
#[derive(Debug, Clone, Copy)]
pub struct WalSource<'a> {
    pub store: &'a BlobStore,
    /// `wal/<instance_id>`: the instance whose history is replayed; only read.
    pub dir: &'a str,
    /// Segments fetched at once, ahead of replay.
    pub prefetch: usize,
}

/// Replay of an instance's archived WAL after the backup.
#[derive(Debug, Clone, Copy)]
pub struct Replay<'a> {
    pub wal: WalSource<'a>,
    pub stop: StopPoint,
    /// The timeline whose history replay follows: following it gives the right data both before
    /// and after an earlier recovery.
    pub timeline: u32,
    /// Where the new timeline's `.history` is put (`<dest>/tl<N>/`): the recovered instance's
    /// spool, from which it is shipped to the store, so its later recoveries can follow its
    /// lineage. None keeps it only in `pg_wal`.
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
