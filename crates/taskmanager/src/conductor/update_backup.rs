//! `update_backup`: backup progress and outcome from the guest.

use anyhow::Result;
use trove_common::{rpc::conductor::ConductorMethod, status::BackupState};

use super::check_hosted;
use crate::{
    db::{backups, instances},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn update_backup(&self, sender: &str, msg: ConductorMethod) -> Result<()> {
        let ConductorMethod::UpdateBackup {
            instance_id,
            backup_id,
            state,
            size,
            checksum,
            location,
            start_lsn,
            stop_lsn,
            stop_time,
            timeline,
            error,
            ..
        } = msg
        else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        // The outcome of a backup still counts once its instance is deleted.
        check_hosted(
            sender,
            instance_id,
            instances::lock(&mut tx, instance_id).await?,
        )?;
        // Trove checks the backup belongs to the instance; finished backups never move again.
        if !backups::lock(&mut tx, backup_id)
            .await?
            .is_some_and(|b| b.instance_id == Some(instance_id) && b.state.is_running())
        {
            return Ok(());
        }
        match state {
            BackupState::Completed => {
                let (Some(location), Some(checksum)) = (location.as_deref(), checksum.as_deref())
                else {
                    backups::set_state(
                        &mut tx,
                        backup_id,
                        BackupState::Failed,
                        Some("the guest reported no location or checksum"),
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(());
                };
                backups::complete(
                    &mut tx,
                    backup_id,
                    &backups::Completed {
                        location,
                        checksum,
                        size,
                        start_lsn: start_lsn.as_deref(),
                        stop_lsn: stop_lsn.as_deref(),
                        stop_time,
                        timeline,
                    },
                )
                .await?;
                tracing::info!(backup.id = %backup_id, "backup completed");
            }
            BackupState::Failed => {
                backups::set_state(&mut tx, backup_id, BackupState::Failed, error.as_deref())
                    .await?;
                tracing::warn!(backup.id = %backup_id, error = error.as_deref().unwrap_or(""), "backup failed");
            }
            other => backups::set_state(&mut tx, backup_id, other, None).await?,
        }
        tx.commit().await?;
        Ok(())
    }
}
