//! `do_instance_recovery`: load the backup's metadata and hand the recovery to the guest.

use anyhow::Result;
use trove_common::{
    fault::FaultCode,
    recovery::{StoredTarget, stored_target},
    rpc::{
        RequestContext,
        guest::{BackupLocation, GuestMethod, RecoveryTarget},
    },
    status::{InstanceTask, RecoveryPhase, RecoveryState},
};
use uuid::Uuid;

use crate::{
    db::{
        backups::{self, Backup},
        faults,
        instances::{self, Instance},
        recoveries::{self, Recovery},
    },
    manager::TaskManager,
};

impl TaskManager {
    /// Hands a queued recovery to the instance's guest, or fails it with a fault the user can
    /// read when it cannot be dispatched. A redelivered message finds the recovery no longer
    /// queued and does nothing.
    pub async fn do_instance_recovery(
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
        if rec.state != RecoveryState::New
            || rec.instance_id != instance_id
            || rec.backup_id != backup_id
        {
            return Ok(());
        }
        let inst = instances::lock(&mut tx, instance_id).await?;
        let backup = backups::lock(&mut tx, backup_id).await?;
        let (host, backup_info, target) = match what_to_send(&rec, inst.as_ref(), backup) {
            Ok(plan) => plan,
            Err(why) => {
                recoveries::finish(
                    &mut tx,
                    recovery_id,
                    recoveries::Finish {
                        state: RecoveryState::Failed,
                        phase: RecoveryPhase::Failed,
                        error: Some(&why),
                        outcome: None,
                        error_code: Some(FaultCode::RecoveryRefused),
                    },
                )
                .await?;
                if inst.is_some_and(|i| !i.deleted) {
                    instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                    faults::record(
                        &mut tx,
                        instance_id,
                        FaultCode::RecoveryRefused,
                        &format!("Recovery {recovery_id} failed: {why}."),
                        "",
                    )
                    .await?;
                }
                tx.commit().await?;
                tracing::warn!(instance.id = %instance_id, recovery.id = %recovery_id, reason = %why, "recovery could not be dispatched");
                return Ok(());
            }
        };
        recoveries::set_running(&mut tx, recovery_id, RecoveryPhase::Dispatched).await?;
        self.commit_with_instance_cast(
            tx,
            instance_id,
            &host,
            &GuestMethod::DoRecovery {
                recovery_id,
                backup_info,
                target,
                preview: rec.preview,
            },
            ctx,
        )
        .await?;
        tracing::info!(instance.id = %instance_id, backup.id = %backup_id, recovery.id = %recovery_id, preview = rec.preview, "recovery dispatched to the guest");
        Ok(())
    }

    /// Sends a settled preview's confirm or cancel (recorded on the row by the API, or by the
    /// sweeper on expiry), or its move to the target the row now holds, to the instance's guest. The row decides: a redelivery after the
    /// recovery finished does nothing, one before it sends again, which the guest answers
    /// from what it remembers.
    pub async fn settle_preview(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
        recovery_id: Uuid,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // The instance first, then the recovery: the order trove-api locks them in.
        let inst = instances::lock(&mut tx, instance_id).await?;
        let Some(rec) = recoveries::lock(&mut tx, recovery_id).await? else {
            tracing::warn!(recovery.id = %recovery_id, "unknown recovery ignored");
            return Ok(());
        };
        if rec.instance_id != instance_id || rec.state.is_finished() {
            return Ok(());
        }
        let method = match rec.preview_action.as_deref() {
            Some(recoveries::CONFIRM) => GuestMethod::ConfirmPreview { recovery_id },
            Some(recoveries::CANCEL) => GuestMethod::CancelPreview { recovery_id },
            Some(recoveries::MOVE) => match move_to_send(&rec) {
                Ok(method) => method,
                Err(why) => {
                    // The API stored a target it planned; one that cannot be rebuilt is left to
                    // the deadline, which fails the recovery, rather than guessed.
                    tracing::warn!(recovery.id = %recovery_id, reason = %why, "preview move not sent");
                    return Ok(());
                }
            },
            _ => return Ok(()),
        };
        let Some(host) = inst.filter(|i| !i.deleted).and_then(|i| i.host) else {
            tracing::warn!(recovery.id = %recovery_id, "preview of an instance without a guest left to the deadline");
            return Ok(());
        };
        self.commit_with_instance_cast(tx, instance_id, &host, &method, ctx)
            .await?;
        tracing::info!(instance.id = %instance_id, recovery.id = %recovery_id, action = ?rec.preview_action, "preview settled, sent to the guest");
        Ok(())
    }
}

/// The move of `rec`'s preview to the target its row holds now, numbered as the row counts its
/// moves.
fn move_to_send(rec: &Recovery) -> Result<GuestMethod, String> {
    let move_seq = u32::try_from(rec.preview_moves).map_err(|e| e.to_string())?;
    let target = stored(rec)?.ok_or("a preview moves to a point in time, not a backup's end")?;
    Ok(GuestMethod::MovePreview {
        recovery_id: rec.id,
        move_seq,
        target,
    })
}

/// The WAL target the row holds, rebuilt as it was planned; None for a backup's end.
fn stored(rec: &Recovery) -> Result<Option<RecoveryTarget>, String> {
    stored_target(
        &StoredTarget {
            kind: &rec.target_kind,
            time: rec.target_time,
            timeline: rec.target_timeline,
            lsn: rec.target_lsn.as_deref(),
            xid: rec.target_xid,
            inclusive: rec.target_inclusive,
            name: rec.target_name.as_deref(),
        },
        rec.instance_id,
    )
    .map_err(|e| e.to_string())
}

/// The instance's host, and the backup and WAL target its guest needs to run `rec`, or why it
/// cannot run: the instance or its guest is gone, the backup is not restorable, or the stored
/// target cannot be rebuilt (never downgraded to a plain restore, which would bring back other
/// data than asked for).
fn what_to_send(
    rec: &Recovery,
    inst: Option<&Instance>,
    backup: Option<Backup>,
) -> Result<(String, BackupLocation, Option<RecoveryTarget>), String> {
    let host = match inst {
        None => return Err("the instance no longer exists".into()),
        Some(Instance {
            deleted: false,
            host: Some(host),
            ..
        }) => host.clone(),
        Some(_) => return Err("the instance has no running guest".into()),
    };
    let backup = backup.ok_or("the backup no longer exists")?;
    let location = backup.restorable().ok_or("the backup is not complete")?;
    let target = stored(rec)?;
    Ok((host, location, target))
}
