//! `update_access`: hand the instance's stored network access to its guest, which rewrites the
//! server's client authentication rules and reloads them; the guest's report ends the task.

use anyhow::Result;
use trove_common::{
    fault::FaultCode,
    rpc::{RequestContext, guest::GuestMethod},
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{
    db::{faults, instances},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn update_access(&self, ctx: RequestContext, instance_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // A redelivery after the report ended the task finds nothing to do.
        let Some(inst) =
            instances::lock_in_task(&mut tx, instance_id, InstanceTask::Updating).await?
        else {
            return Ok(());
        };
        // The control database holds the access to apply: the latest the API accepted.
        let (Some(access), Some(host)) = (inst.access(), inst.host.clone()) else {
            instances::set_task(&mut tx, instance_id, InstanceTask::UpdatingErrorAccess).await?;
            faults::record(
                &mut tx,
                instance_id,
                FaultCode::AccessUpdateFailed,
                "The network access could not be applied: the instance has no running guest or no valid access.",
                "",
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(instance.id = %instance_id, "access update without a guest or a valid access");
            return Ok(());
        };
        let method = GuestMethod::UpdateAccess { access };
        self.commit_with_instance_cast(tx, instance_id, &host, &method, ctx)
            .await?;
        tracing::info!(instance.id = %instance_id, "access update sent to the guest");
        Ok(())
    }
}
