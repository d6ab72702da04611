//! `instance_deleted`: the guest removed the instance; the row is marked deleted.

use anyhow::Result;
use trove_common::rpc::topics;
use uuid::Uuid;

use super::lock_reported;
use crate::{db::instances, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn instance_deleted(&self, sender: &str, instance_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if lock_reported(&mut tx, sender, instance_id).await?.is_none() {
            return Ok(());
        }
        instances::mark_deleted(&mut tx, instance_id).await?;
        tx.commit().await?;
        let queue = topics::guest_instance_queue(sender, instance_id);
        if let Err(e) = self.bus.delete_queue(&queue).await {
            tracing::warn!(instance.id = %instance_id, error = %format!("{e:#}"), "could not delete the guest queue");
        }
        tracing::info!(instance.id = %instance_id, "instance deleted");
        Ok(())
    }
}
