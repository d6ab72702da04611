//! `update_access`: the guest applied (or could not apply) an instance's network access; this
//! ends the UPDATING task.

use anyhow::Result;
use trove_common::{access::Access, fault::FaultCode, status::InstanceTask};
use uuid::Uuid;

use super::lock_reported;
use crate::{
    db::{faults, instances},
    manager::TaskManager,
};

/// What the guest reported.
pub(crate) struct AccessReport {
    pub instance_id: Uuid,
    pub access: Access,
    pub error: Option<String>,
}

impl TaskManager {
    pub(crate) async fn access_applied(&self, sender: &str, report: AccessReport) -> Result<()> {
        let AccessReport {
            instance_id,
            access,
            error,
        } = report;
        let mut tx = self.pool.begin().await?;
        let Some(inst) = lock_reported(&mut tx, sender, instance_id).await? else {
            return Ok(());
        };
        // A late report after the sweeper gave up still settles the task: the guest knows which
        // rules are in force.
        if !matches!(
            inst.task(),
            InstanceTask::Updating | InstanceTask::UpdatingErrorAccess
        ) {
            return Ok(());
        }
        // Only the outcome for the access the control plane holds now ends the task.
        if inst.access().as_ref() != Some(&access) {
            tracing::info!(instance.id = %instance_id, "report for an access that is no longer current ignored");
            return Ok(());
        }
        match error {
            None => {
                instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                faults::clear_codes(
                    &mut tx,
                    instance_id,
                    &[
                        FaultCode::AccessUpdateFailed,
                        FaultCode::AccessUpdateTimeout,
                    ],
                )
                .await?;
                tracing::info!(instance.id = %instance_id, "network access applied");
            }
            Some(why) => {
                instances::set_task(&mut tx, instance_id, InstanceTask::UpdatingErrorAccess)
                    .await?;
                faults::record(
                    &mut tx,
                    instance_id,
                    FaultCode::AccessUpdateFailed,
                    "The network access could not be applied; the earlier rules may still be in force. Send the access again.",
                    &why,
                )
                .await?;
                tracing::warn!(instance.id = %instance_id, error = %why, "network access not applied");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
