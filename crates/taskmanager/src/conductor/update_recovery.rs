//! `update_recovery`: phases and progress while a recovery runs, then its outcome, which closes
//! the instance's task at once.

use anyhow::Result;
use trove_common::{
    rpc::conductor::ConductorMethod,
    status::{InstanceTask, ServiceStatus},
};

use super::sender_hosts;
use crate::{
    db::{faults, instances, recoveries},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn update_recovery(
        &self,
        sender: Option<&str>,
        msg: ConductorMethod,
    ) -> Result<()> {
        let ConductorMethod::UpdateRecovery {
            instance_id,
            recovery_id,
            phase,
            state,
            progress,
            error,
            error_code,
            ..
        } = msg
        else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        let Some(inst) = instances::lock(&mut tx, instance_id).await? else {
            return Ok(());
        };
        if inst.deleted || !sender_hosts(sender, &inst) {
            return Ok(());
        }
        let Some(rec) = recoveries::lock(&mut tx, recovery_id).await? else {
            return Ok(());
        };
        // A finished recovery never moves again, except that the guest's late final word on one
        // the sweeper gave up on settles it: the guest knows which data the instance serves.
        let late_outcome =
            rec.phase == recoveries::TIMED_OUT && matches!(state.as_str(), "COMPLETED" | "FAILED");
        let finished = matches!(rec.state.as_str(), "COMPLETED" | "FAILED");
        if rec.instance_id != instance_id || (finished && !late_outcome) {
            return Ok(());
        }
        let recovering = matches!(
            inst.task(),
            InstanceTask::Recovering | InstanceTask::RecoveryError
        );
        match state.as_str() {
            "RUNNING" => {
                recoveries::set_progress(&mut tx, recovery_id, &phase, progress.as_ref()).await?
            }
            "COMPLETED" => {
                recoveries::set_progress(&mut tx, recovery_id, &phase, progress.as_ref()).await?;
                recoveries::finish(&mut tx, recovery_id, "COMPLETED", "done", None).await?;
                faults::clear(&mut tx, instance_id).await?;
                if recovering {
                    instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                }
                // The guest checked health before reporting; show it now, not at the next heartbeat.
                instances::set_service_status(&mut tx, instance_id, ServiceStatus::Healthy).await?;
                // The next point-in-time recovery must be planned on the new timeline at once.
                if let Some(tl) = progress
                    .as_ref()
                    .and_then(|p| p.get("new_timeline"))
                    .and_then(|t| t.as_i64())
                    .and_then(|t| i32::try_from(t).ok())
                {
                    instances::set_timeline(&mut tx, instance_id, tl).await?;
                }
                tracing::info!(instance.id = %instance_id, recovery.id = %recovery_id, "recovery completed");
            }
            "FAILED" => {
                let why = error
                    .as_deref()
                    .unwrap_or("the guest agent reported a failure");
                recoveries::finish(&mut tx, recovery_id, "FAILED", &phase, Some(why)).await?;
                if recovering {
                    instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                }
                let code = error_code
                    .map(|c| {
                        serde_json::to_value(c)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                faults::record(
                    &mut tx,
                    instance_id,
                    &format!(
                        "Recovery {recovery_id} from backup {} failed during {phase}; the instance still runs its previous data.",
                        rec.backup_id
                    ),
                    &format!("{code}: {why}"),
                )
                .await?;
                tracing::warn!(instance.id = %instance_id, recovery.id = %recovery_id, error = why, "recovery failed, instance kept its data");
            }
            other => {
                tracing::warn!(recovery.id = %recovery_id, state = other, "recovery update with an unknown state ignored");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
