//! The one mapping from a recovery as the control plane sends it (a backup's location and an
//! optional point-in-time target) to the driver's request, shared by `do_recovery` (in place) and
//! `prepare` (a new instance), and the WAL a preview's move replays.

use std::path::PathBuf;

use trove_common::{
    recovery::{RecoveryTarget, StopPoint},
    rpc::{conductor::GuestErrorCode, guest::BackupLocation},
};
use uuid::Uuid;

use crate::{
    agent::Agent,
    postgres::{ArchiveSource, FailAs as _, Failure, RecoveryRequest, Replay, WalSource},
};

/// A recovery's sources, resolved as keys inside the object store.
pub(crate) struct RecoverySource {
    store: trove_common::store::BlobStore,
    archive: String,
    sha256: String,
    prefetch: usize,
    replay: Option<ReplaySource>,
}

struct ReplaySource {
    wal_dir: String,
    stop: StopPoint,
    timeline: u32,
    /// The recovered instance's spool, where its new timeline's history belongs.
    history_dest: PathBuf,
}

impl RecoverySource {
    pub(crate) fn request(&self) -> RecoveryRequest<'_> {
        RecoveryRequest {
            archive: ArchiveSource {
                store: &self.store,
                key: &self.archive,
                sha256: &self.sha256,
            },
            replay: self
                .replay
                .as_ref()
                .map(|r| r.replay(&self.store, self.prefetch)),
        }
    }
}

/// The WAL a preview's move replays on to its new target; the backup is not read again.
pub(crate) struct MoveSource {
    store: trove_common::store::BlobStore,
    prefetch: usize,
    replay: ReplaySource,
}

impl MoveSource {
    pub(crate) fn replay(&self) -> Replay<'_> {
        self.replay.replay(&self.store, self.prefetch)
    }
}

impl ReplaySource {
    fn replay<'a>(
        &'a self,
        store: &'a trove_common::store::BlobStore,
        prefetch: usize,
    ) -> Replay<'a> {
        Replay {
            wal: WalSource {
                store,
                dir: &self.wal_dir,
                prefetch,
            },
            stop: self.stop,
            timeline: self.timeline,
            history_dest: Some(&self.history_dest),
        }
    }
}

impl Agent {
    /// Resolves the target of a move of `instance_id`'s preview, refused as not found (before
    /// anything is touched) when its WAL location is not a key inside the store.
    pub(crate) fn move_source(
        &self,
        instance_id: Uuid,
        target: &RecoveryTarget,
    ) -> Result<MoveSource, Failure> {
        let wal_dir = self
            .store_key(&target.wal_location)
            .fail_as(GuestErrorCode::BackupNotFound)?;
        Ok(MoveSource {
            store: self.store.clone(),
            prefetch: self.config.wal_prefetch,
            replay: ReplaySource {
                wal_dir,
                stop: target.stop,
                timeline: target.timeline,
                history_dest: self.wal_spool(instance_id),
            },
        })
    }

    /// Resolves `backup` and `target` for a recovery of `instance_id`. A location that is not a
    /// key inside the store is refused as not found, before anything is touched.
    pub(crate) fn recovery_source(
        &self,
        instance_id: Uuid,
        backup: &BackupLocation,
        target: Option<&RecoveryTarget>,
    ) -> Result<RecoverySource, Failure> {
        let archive = self
            .store_key(&backup.location)
            .fail_as(GuestErrorCode::BackupNotFound)?;
        let replay = target
            .map(|t| {
                anyhow::Ok(ReplaySource {
                    wal_dir: self.store_key(&t.wal_location)?,
                    stop: t.stop,
                    timeline: t.timeline,
                    history_dest: self.wal_spool(instance_id),
                })
            })
            .transpose()
            .fail_as(GuestErrorCode::BackupNotFound)?;
        Ok(RecoverySource {
            store: self.store.clone(),
            archive,
            sha256: backup.checksum.clone(),
            prefetch: self.config.wal_prefetch,
            replay,
        })
    }
}
