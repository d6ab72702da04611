//! `resize_flavor` and `resize_volume`. A flavor resize has the guest rewrite its memory
//! settings and restart; its heartbeat completing `resize` ends the task and the instance takes
//! the new flavor. A volume here is the instance's directory on its host, which has no size of
//! its own to grow: the new size is recorded and the task ends.

use anyhow::Result;
use trove_common::{
    rpc::{RequestContext, guest::GuestMethod, taskmanager::FlavorRef},
    status::InstanceTask,
};
use uuid::Uuid;

use crate::{
    db::{configurations, instances},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn resize_flavor(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
        new_flavor: FlavorRef,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(host) = instances::lock_in_task(&mut tx, instance_id, InstanceTask::Resizing)
            .await?
            .and_then(|i| i.host)
        else {
            return Ok(());
        };
        // The API stored the flavor to move to; its RAM is the truth, not the message's copy.
        let Some((flavor_id, ram)) = configurations::resize_flavor(&mut tx, instance_id).await?
        else {
            return Ok(());
        };
        if flavor_id != new_flavor.id {
            tracing::info!(instance.id = %instance_id, flavor.id = %flavor_id, "resizing to the stored flavor, not the message's");
        }
        let method = GuestMethod::ResizeFlavor {
            memory_mb: ram.into(),
        };
        self.commit_with_instance_cast(tx, instance_id, &host, &method, ctx)
            .await?;
        tracing::info!(instance.id = %instance_id, flavor.id = %flavor_id, ram, "flavor resize sent to the guest");
        Ok(())
    }

    pub(crate) async fn resize_volume(&self, instance_id: Uuid, new_size: i32) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if instances::lock_in_task(&mut tx, instance_id, InstanceTask::Resizing)
            .await?
            .is_none()
        {
            return Ok(());
        }
        // A redelivered volume resize must not end a flavor resize that started since.
        if configurations::resize_flavor(&mut tx, instance_id)
            .await?
            .is_some()
        {
            tracing::info!(instance.id = %instance_id, "volume resize for an instance resizing its flavor ignored");
            return Ok(());
        }
        configurations::set_volume_size(&mut tx, instance_id, new_size).await?;
        instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
        tx.commit().await?;
        tracing::info!(instance.id = %instance_id, new_size, "volume resized");
        Ok(())
    }
}
