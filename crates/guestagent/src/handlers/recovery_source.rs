//! The one mapping from a recovery as the control plane sends it (a backup's location and an
//! optional point-in-time target) to the driver's request, shared by `do_recovery` (in place) and
//! `prepare` (a new instance).

use std::path::PathBuf;

use trove_common::{
    recovery::{RecoveryTarget, StopPoint},
    rpc::{conductor::GuestErrorCode, guest::BackupLocation},
};
use uuid::Uuid;

use crate::{
    agent::Agent,
    postgres::{FailAs as _, Failure, RecoveryRequest, Replay},
};

/// A recovery's paths, resolved inside the backup store.
pub(crate) struct RecoverySource {
    archive: PathBuf,
    sha256: String,
    replay: Option<ReplaySource>,
}

struct ReplaySource {
    wal_root: PathBuf,
    stop: StopPoint,
    timeline: u32,
    /// The recovered instance's own store, where its new timeline's history belongs.
    history_dest: PathBuf,
}

impl RecoverySource {
    pub(crate) fn request(&self) -> RecoveryRequest<'_> {
        RecoveryRequest {
            archive: &self.archive,
            sha256: &self.sha256,
            replay: self.replay.as_ref().map(|r| Replay {
                wal_root: &r.wal_root,
                stop: r.stop,
                timeline: r.timeline,
                history_dest: Some(&r.history_dest),
            }),
        }
    }
}

impl Agent {
    /// Resolves `backup` and `target` for a recovery of `instance_id`. A location outside the
    /// store is refused as not found, before anything is touched.
    pub(crate) fn recovery_source(
        &self,
        instance_id: Uuid,
        backup: &BackupLocation,
        target: Option<&RecoveryTarget>,
    ) -> Result<RecoverySource, Failure> {
        let archive = self
            .store_path(&backup.location)
            .fail_as(GuestErrorCode::BackupNotFound)?;
        let replay = target
            .map(|t| {
                anyhow::Ok(ReplaySource {
                    wal_root: self.store_path(&t.wal_location)?,
                    stop: t.stop,
                    timeline: t.timeline,
                    history_dest: self.wal_root(instance_id),
                })
            })
            .transpose()
            .fail_as(GuestErrorCode::BackupNotFound)?;
        Ok(RecoverySource {
            archive,
            sha256: backup.checksum.clone(),
            replay,
        })
    }
}
