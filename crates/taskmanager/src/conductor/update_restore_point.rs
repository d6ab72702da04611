//! `update_restore_point`: the guest's outcome of `create_restore_point`.

use anyhow::Result;
use trove_common::rpc::conductor::ConductorMethod;

use super::check_hosted;
use crate::{
    db::{instances, restore_points},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn update_restore_point(
        &self,
        sender: &str,
        msg: ConductorMethod,
    ) -> Result<()> {
        let ConductorMethod::UpdateRestorePoint {
            instance_id,
            restore_point_id,
            lsn,
            timeline,
            time,
            error,
        } = msg
        else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        check_hosted(
            sender,
            instance_id,
            instances::lock(&mut tx, instance_id).await?,
        )?;
        // Only the instance's own NEW row moves, once: a redelivered report changes nothing.
        if !restore_points::lock(&mut tx, restore_point_id)
            .await?
            .is_some_and(|(owner, state)| owner == instance_id && state == restore_points::NEW)
        {
            return Ok(());
        }
        match (lsn, time, error) {
            (Some(lsn), Some(time), None) => {
                let timeline = timeline.and_then(|t| i32::try_from(t).ok());
                restore_points::complete(&mut tx, restore_point_id, &lsn, timeline, time).await?;
                tracing::info!(instance.id = %instance_id, restore_point.id = %restore_point_id, lsn, "restore point created");
            }
            (_, _, error) => {
                let error = error.unwrap_or_else(|| "the guest reported no LSN or time".into());
                tracing::warn!(instance.id = %instance_id, restore_point.id = %restore_point_id, error, "restore point failed");
                restore_points::fail(&mut tx, restore_point_id, &error).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
