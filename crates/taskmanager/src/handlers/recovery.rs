//! `do_instance_recovery`: load the backup's metadata and hand the recovery to the guest.

use anyhow::Result;
use trove_common::{
    rpc::{
        RequestContext,
        guest::{BackupLocation, GuestMethod, RecoveryTarget, wal_location},
        topics,
    },
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{
    db::{backups, faults, instances, recoveries},
    manager::TaskManager,
};

/// The WAL replay target of a point-in-time recovery; None for a plain recovery to a backup.
fn recovery_target(rec: &recoveries::Recovery, instance_id: Uuid) -> Option<RecoveryTarget> {
    let timeline = rec.target_timeline.and_then(|t| u32::try_from(t).ok())?;
    let time = match rec.target_kind.as_str() {
        "time" => Some(rec.target_time?),
        "latest" => None,
        _ => return None,
    };
    Some(RecoveryTarget {
        time,
        timeline,
        wal_location: wal_location(instance_id),
    })
}

impl TaskManager {
    pub(crate) async fn do_instance_recovery(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
        backup_id: Uuid,
        recovery_id: Uuid,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(rec) = recoveries::lock(&mut tx, recovery_id).await? else {
            tracing::warn!(recovery.id = %recovery_id, "unknown recovery ignored");
            return Ok(());
        };
        // A redelivered message for a recovery already dispatched or finished is a no-op.
        if rec.state != "NEW" || rec.instance_id != instance_id || rec.backup_id != backup_id {
            return Ok(());
        }
        let inst = instances::lock(&mut tx, instance_id).await?;
        let backup = backups::lock(&mut tx, backup_id).await?;
        let failure = match (&inst, &backup) {
            (Some(i), _) if i.deleted || i.host.is_none() => {
                Some("the instance has no running guest")
            }
            (None, _) => Some("the instance no longer exists"),
            (_, Some(b))
                if b.state != "COMPLETED" || b.location.is_none() || b.checksum.is_none() =>
            {
                Some("the backup is not complete")
            }
            (_, None) => Some("the backup no longer exists"),
            _ => None,
        };
        if let Some(why) = failure {
            recoveries::finish(&mut tx, recovery_id, "FAILED", "failed", Some(why)).await?;
            if inst.is_some_and(|i| !i.deleted) {
                instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                faults::record(
                    &mut tx,
                    instance_id,
                    &format!("Recovery {recovery_id} failed: {why}."),
                    "",
                )
                .await?;
            }
            tx.commit().await?;
            return Ok(());
        }
        let b = backup.expect("checked above");
        recoveries::set_running(&mut tx, recovery_id, "dispatched").await?;
        let oid = self
            .enqueue_guest(
                &mut tx,
                &topics::guest(instance_id),
                &GuestMethod::DoRecovery {
                    recovery_id,
                    backup_info: BackupLocation {
                        id: b.id,
                        location: b.location.unwrap_or_default(),
                        backup_type: b.backup_type,
                        checksum: b.checksum.unwrap_or_default(),
                    },
                    target: recovery_target(&rec, instance_id),
                },
                ctx,
            )
            .await?;
        self.commit_and_send(tx, vec![oid]).await?;
        tracing::info!(instance.id = %instance_id, backup.id = %backup_id, recovery.id = %recovery_id, "recovery dispatched to the guest");
        Ok(())
    }
}
