//! `restart`: the guest restarts the server; a later healthy heartbeat ends the task.

use anyhow::Result;
use trove_common::{
    rpc::{RequestContext, guest::GuestMethod, topics},
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{db::instances, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn restart(&self, ctx: RequestContext, instance_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if instances::lock_in_task(&mut tx, instance_id, InstanceTask::Rebooting)
            .await?
            .is_none()
        {
            return Ok(());
        }
        let guest = topics::guest(instance_id);
        self.commit_with_cast(tx, &guest, &GuestMethod::Restart {}, ctx)
            .await
    }
}
