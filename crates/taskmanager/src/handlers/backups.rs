//! `create_backup` and `delete_backup`.

use anyhow::{Context, Result};
use trove_common::{
    rpc::{
        RequestContext,
        guest::{GuestMethod, TakeBackupInfo},
        taskmanager::NewBackupInfo,
    },
    status::BackupState,
    store::layout,
};
use uuid::Uuid;

use crate::{
    db::{backups, instances},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn create_backup(
        &self,
        ctx: RequestContext,
        info: NewBackupInfo,
        instance_id: Uuid,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(b) = backups::lock(&mut tx, info.id).await? else {
            return Ok(());
        };
        if b.deleted || b.state != BackupState::New {
            return Ok(());
        }
        let host = instances::lock(&mut tx, instance_id)
            .await?
            .filter(|i| !i.deleted)
            .and_then(|i| i.host);
        let Some(host) = host else {
            backups::set_state(
                &mut tx,
                info.id,
                BackupState::Failed,
                Some("the instance has no guest host"),
            )
            .await?;
            tx.commit().await?;
            return Ok(());
        };
        let take = GuestMethod::CreateBackup {
            backup_info: TakeBackupInfo {
                id: info.id,
                name: info.name,
                backup_type: info.backup_type,
            },
        };
        self.commit_with_instance_cast(tx, instance_id, &host, &take, ctx)
            .await
    }

    /// The API already hid the backup; remove its files from the store.
    pub(crate) async fn delete_backup(&self, backup_id: Uuid) -> Result<()> {
        self.remove_backup_objects(backup_id).await.map(drop)
    }

    /// Removes `backups/<id>/` of a hidden backup from the store: true when done. When the store
    /// refuses, the row's state becomes `DELETE_FAILED` (with the reason) and this is false.
    pub(crate) async fn remove_backup_objects(&self, backup_id: Uuid) -> Result<bool> {
        let dir = layout::backup_dir(backup_id);
        let result = self
            .store
            .delete_prefix(&dir)
            .await
            .with_context(|| format!("removing {dir}/ from {}", self.store.describe()));
        if let Err(e) = &result {
            let mut tx = self.pool.begin().await?;
            let why = format!("{e:#}");
            backups::set_state(&mut tx, backup_id, BackupState::DeleteFailed, Some(&why)).await?;
            tx.commit().await?;
            tracing::error!(backup.id = %backup_id, error = %why, "backup files could not be removed");
            return Ok(false);
        }
        tracing::info!(backup.id = %backup_id, "backup objects removed");
        Ok(true)
    }
}
