//! `delete_instance`: ask the guest to remove the instance; an unplaced one is deleted at once,
//! and so is one whose host is dead, so a stuck instance can always be deleted.

use anyhow::Result;
use trove_common::{
    rpc::{RequestContext, guest::GuestMethod},
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{
    db::{hosts, instances},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn delete_instance(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(inst) =
            instances::lock_in_task(&mut tx, instance_id, InstanceTask::Deleting).await?
        else {
            return Ok(());
        };
        let Some(host) = inst.host else {
            instances::mark_deleted(&mut tx, instance_id).await?;
            tx.commit().await?;
            return Ok(());
        };
        // A dead host would never answer, and the delete would time out into DELETING_ERROR.
        // The row goes now; the message waits in the instance's durable queue, so the guest
        // still removes the server and its data when the host comes back.
        let expiry = self.config.host_heartbeat_expiry_secs;
        if !hosts::is_live(&mut tx, &host, expiry).await? {
            instances::mark_deleted(&mut tx, instance_id).await?;
            tracing::warn!(instance.id = %instance_id, host = %host, "host is silent: instance deleted now, its server is removed when the host returns");
        }
        let delete = GuestMethod::DeleteInstance {};
        self.commit_with_instance_cast(tx, instance_id, &host, &delete, ctx)
            .await
    }
}
