//! `instance_deleted`: the guest removed the instance; the row is marked deleted and its queue
//! goes.

use anyhow::Result;
use trove_common::rpc::topics;
use uuid::Uuid;

use super::check_hosted;
use crate::{db::instances, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn instance_deleted(&self, sender: &str, instance_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Already deleted when its host was silent: the guest's word still retires the queue.
        let inst = check_hosted(
            sender,
            instance_id,
            instances::lock(&mut tx, instance_id).await?,
        )?;
        if !inst.deleted {
            instances::mark_deleted(&mut tx, instance_id).await?;
        }
        tx.commit().await?;
        let queue = topics::guest_instance_queue(sender, instance_id);
        if let Err(e) = self.bus.delete_queue(&queue).await {
            tracing::warn!(instance.id = %instance_id, error = %format!("{e:#}"), "could not delete the guest queue");
        }
        tracing::info!(instance.id = %instance_id, "instance deleted");
        Ok(())
    }
}
