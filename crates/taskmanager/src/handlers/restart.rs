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
        let Some(inst) = instances::lock(&mut tx, instance_id).await? else {
            return Ok(());
        };
        if inst.deleted || inst.task() != InstanceTask::Rebooting {
            return Ok(());
        }
        let oid = self
            .enqueue_guest(
                &mut tx,
                &topics::guest(instance_id),
                &GuestMethod::Restart {},
                ctx,
            )
            .await?;
        self.commit_and_send(tx, vec![oid]).await
    }
}
