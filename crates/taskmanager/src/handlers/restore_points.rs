//! `create_restore_point`: hand a recorded restore point to the instance's guest.

use anyhow::Result;
use trove_common::{
    restore_point::RestorePointName,
    rpc::{RequestContext, guest::GuestMethod},
};
use uuid::Uuid;

use crate::{
    db::{instances, restore_points},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn create_restore_point(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
        restore_point_id: Uuid,
        name: RestorePointName,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Redelivered after the guest answered, or for a row that is gone: nothing to do.
        let Some((owner, state)) = restore_points::lock(&mut tx, restore_point_id).await? else {
            return Ok(());
        };
        if owner != instance_id || state != restore_points::NEW {
            return Ok(());
        }
        let host = instances::lock(&mut tx, instance_id)
            .await?
            .filter(|i| !i.deleted)
            .and_then(|i| i.host);
        let Some(host) = host else {
            restore_points::fail(&mut tx, restore_point_id, "the instance has no guest host")
                .await?;
            tx.commit().await?;
            return Ok(());
        };
        let create = GuestMethod::CreateRestorePoint {
            restore_point_id,
            name,
        };
        self.commit_with_instance_cast(tx, instance_id, &host, &create, ctx)
            .await
    }
}
