//! `restart`: the guest restarts the server; a later healthy heartbeat ends the task.

use anyhow::Result;
use trove_common::{
    rpc::{RequestContext, guest::GuestMethod},
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{db::instances, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn restart(&self, ctx: RequestContext, instance_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(host) = instances::lock_in_task(&mut tx, instance_id, InstanceTask::Rebooting)
            .await?
            .and_then(|i| i.host)
        else {
            return Ok(());
        };
        self.commit_with_instance_cast(tx, instance_id, &host, &GuestMethod::Restart {}, ctx)
            .await
    }
}
