//! The sweeper: re-sends outbox rows nobody published, and turns silent tasks into errors a user
//! can read, so nothing stays stuck.

use std::time::Duration;

use anyhow::Result;
use tokio_util::sync::CancellationToken;
use trove_common::{
    fault::FaultCode,
    outbox,
    rpc::{RequestContext, guest::GuestMethod},
    status::{InstanceTask, RecoveryPhase, RecoveryState, ServiceStatus},
};

use crate::{
    db::{backups, configurations, faults, instances, recoveries},
    manager::TaskManager,
};

/// How long the guest has to discard an expired preview.
const PREVIEW_CANCEL_DEADLINE_SECS: i64 = 600;

impl TaskManager {
    pub async fn run_sweeper(&self, cancel: CancellationToken) {
        let period = Duration::from_millis(self.config.sweep_interval_ms);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            if let Err(e) = self.sweep_once().await {
                tracing::warn!(error = %format!("{e:#}"), "sweep failed");
            }
        }
    }

    /// One pass: re-sends stranded outbox rows, then fails the tasks, recoveries and backups
    /// whose deadline passed.
    pub async fn sweep_once(&self) -> Result<()> {
        outbox::sweep(
            &self.pool,
            &self.bus,
            Duration::from_millis(self.config.outbox_grace_ms),
        )
        .await?;
        self.expire_tasks().await?;
        self.delete_on_dead_hosts().await?;
        self.expire_recoveries().await?;
        self.expire_previews().await?;
        let mut conn = self.pool.acquire().await?;
        for (id, instance) in backups::fail_overdue(&mut conn).await? {
            tracing::warn!(backup.id = %id, instance.id = ?instance, "backup timed out");
        }
        Ok(())
    }

    async fn expire_tasks(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for inst in instances::overdue(&mut tx).await? {
            let (task, code, message) = match inst.task() {
                InstanceTask::Building => {
                    instances::set_service_status(
                        &mut tx,
                        inst.id,
                        ServiceStatus::FailedTimeoutGuestagent,
                    )
                    .await?;
                    (
                        InstanceTask::BuildingErrorTimeoutGa,
                        FaultCode::BuildTimeout,
                        "The instance did not become active in time; the guest agent is silent.",
                    )
                }
                InstanceTask::Deleting => (
                    InstanceTask::DeletingError,
                    FaultCode::DeleteTimeout,
                    "The instance could not be deleted in time; the guest agent is silent.",
                ),
                // A restart that never reported back leaves the server as the heartbeats say.
                InstanceTask::Rebooting => (
                    InstanceTask::None,
                    FaultCode::RestartTimeout,
                    "The restart did not finish in time; the guest agent is silent.",
                ),
                // The rules in force are unknown: an error, until an access update succeeds.
                InstanceTask::Updating => (
                    InstanceTask::UpdatingErrorAccess,
                    FaultCode::AccessUpdateTimeout,
                    "The network access change did not finish in time; the guest agent is silent. Send the access again.",
                ),
                // The server runs with the old memory settings or the new ones; the flavor shown
                // stays the old one until a resize reports success.
                InstanceTask::Resizing => {
                    configurations::abandon_flavor_resize(&mut tx, inst.id).await?;
                    (
                        InstanceTask::None,
                        FaultCode::ResizeTimeout,
                        "The resize did not finish in time; the guest agent is silent.",
                    )
                }
                _ => continue,
            };
            instances::set_task(&mut tx, inst.id, task).await?;
            faults::record(&mut tx, inst.id, code, message, "task deadline passed").await?;
            tracing::warn!(instance.id = %inst.id, task = ?task, "task deadline passed");
        }
        tx.commit().await?;
        Ok(())
    }

    /// A delete whose host died before it answered completes without the host, as a delete
    /// sent while the host was already silent does (`delete_instance`): a stuck instance can
    /// always be deleted.
    async fn delete_on_dead_hosts(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let expiry = self.config.host_heartbeat_expiry_secs;
        for id in instances::deleting_on_dead_hosts(&mut tx, expiry).await? {
            instances::mark_deleted(&mut tx, id).await?;
            tracing::warn!(instance.id = %id, "host is silent: instance deleted now, its server is removed when the host returns");
        }
        tx.commit().await?;
        Ok(())
    }

    /// Cancels each preview past its expiry as a cancel by request does: the decision and its
    /// reason recorded, then the guest asked (through the outbox) to discard the staged copy.
    async fn expire_previews(&self) -> Result<()> {
        let expired = {
            let mut conn = self.pool.acquire().await?;
            recoveries::expired_previews(&mut conn).await?
        };
        for (id, instance_id) in expired {
            let mut tx = self.pool.begin().await?;
            // The instance first, then the recovery: the order trove-api locks them in.
            let inst = instances::lock(&mut tx, instance_id).await?;
            if recoveries::lock(&mut tx, id).await?.is_none()
                || !recoveries::preview_expired(&mut tx, id).await?
            {
                // Settled meanwhile.
                continue;
            }
            recoveries::cancel_preview(
                &mut tx,
                id,
                "the preview expired before it was confirmed",
                PREVIEW_CANCEL_DEADLINE_SECS,
            )
            .await?;
            tracing::info!(recovery.id = %id, instance.id = %instance_id, "preview expired, cancelling it");
            match inst.filter(|i| !i.deleted).and_then(|i| i.host) {
                Some(host) => {
                    self.commit_with_instance_cast(
                        tx,
                        instance_id,
                        &host,
                        &GuestMethod::CancelPreview { recovery_id: id },
                        RequestContext::default(),
                    )
                    .await?
                }
                // Without a guest the cancel times out at its deadline, with a fault.
                None => tx.commit().await?,
            }
        }
        Ok(())
    }

    async fn expire_recoveries(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for rec in recoveries::overdue(&mut tx).await? {
            recoveries::finish(
                &mut tx,
                rec.id,
                recoveries::Finish {
                    state: RecoveryState::Failed,
                    phase: RecoveryPhase::TimedOut,
                    error: Some("the recovery did not finish before its deadline"),
                    outcome: None,
                    error_code: Some(FaultCode::RecoveryTimeout),
                },
            )
            .await?;
            if let Some(inst) = instances::lock(&mut tx, rec.instance_id).await? {
                if inst.task() == InstanceTask::Recovering {
                    // We cannot know which data the instance serves now: show it as an error.
                    instances::set_task(&mut tx, rec.instance_id, InstanceTask::RecoveryError)
                        .await?;
                }
                faults::record(
                    &mut tx,
                    rec.instance_id,
                    FaultCode::RecoveryTimeout,
                    &format!(
                        "Recovery {} from backup {} timed out.",
                        rec.id, rec.backup_id
                    ),
                    "the guest agent did not report the end of the recovery before its deadline",
                )
                .await?;
            }
            tracing::warn!(recovery.id = %rec.id, instance.id = %rec.instance_id, "recovery timed out");
        }
        tx.commit().await?;
        Ok(())
    }
}
