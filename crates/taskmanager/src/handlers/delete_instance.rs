//! `delete_instance`: ask the guest to remove the instance; an unplaced one is deleted at once.

use anyhow::Result;
use trove_common::{
    rpc::{RequestContext, guest::GuestMethod},
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{db::instances, manager::TaskManager};

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
        let delete = GuestMethod::DeleteInstance {};
        self.commit_with_instance_cast(tx, instance_id, &host, &delete, ctx)
            .await
    }
}
