//! `create_backup`: a full backup streamed into the object store, reported to the conductor.

use std::sync::Arc;

use chrono::Utc;
use trove_common::{
    rpc::{conductor::ConductorMethod, guest::TakeBackupInfo},
    status::BackupState,
    timefmt::epoch_seconds,
};

use crate::{
    agent::Agent,
    hosted::Hosted,
    postgres::{BackupDest, take_backup},
};
use trove_common::store::layout;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl Agent {
    pub(crate) async fn create_backup(
        &self,
        h: &Arc<Hosted>,
        info: TakeBackupInfo,
        rid: Option<String>,
    ) {
        let _guard = h.op.lock().await;
        let update = |state: BackupState| ConductorMethod::UpdateBackup {
            instance_id: h.id,
            backup_id: info.id,
            sent: epoch_seconds(Utc::now()),
            state,
            size: None,
            checksum: None,
            location: None,
            backup_type: Some(info.backup_type.clone()),
            success: None,
            start_lsn: None,
            stop_lsn: None,
            stop_time: None,
            timeline: None,
            error: None,
        };
        self.report(update(BackupState::Building), rid.clone())
            .await;
        let archive = layout::backup_archive(info.id);
        let manifest = layout::backup_manifest(info.id);
        let dest = BackupDest {
            store: &self.store,
            archive: &archive,
            manifest: &manifest,
        };
        tracing::info!(instance.id = %h.id, backup.id = %info.id, "backup started");
        let started = std::time::Instant::now();
        let msg = match take_backup(&h.cluster, &info.id.to_string(), dest).await {
            Ok(m) => {
                tracing::info!(instance.id = %h.id, backup.id = %info.id, bytes = m.size_bytes, duration_ms = started.elapsed().as_millis() as u64, "backup completed");
                let mut u = update(BackupState::Completed);
                if let ConductorMethod::UpdateBackup {
                    size,
                    checksum,
                    location,
                    success,
                    start_lsn,
                    stop_lsn,
                    stop_time,
                    timeline,
                    ..
                } = &mut u
                {
                    *size = Some(m.size_bytes as f64 / GIB);
                    *checksum = Some(m.checksum.clone());
                    *location = Some(archive.clone());
                    *success = Some(true);
                    *start_lsn = Some(m.start_lsn.clone());
                    *stop_lsn = Some(m.stop_lsn.clone());
                    *stop_time = Some(m.stop_time);
                    *timeline = i32::try_from(m.timeline).ok();
                }
                u
            }
            Err(e) => {
                let text = format!("{e:#}");
                tracing::warn!(instance.id = %h.id, backup.id = %info.id, error = %text, "backup failed");
                let mut u = update(BackupState::Failed);
                if let ConductorMethod::UpdateBackup { success, error, .. } = &mut u {
                    *success = Some(false);
                    *error = Some(text);
                }
                u
            }
        };
        self.report(msg, rid).await;
    }
}
