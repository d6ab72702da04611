//! `configure_rewind`: hand the instance's rewind window, as the control database holds it now,
//! to its guest. Also sent again from a heartbeat whose report disagrees with the window, so a
//! lost message or a guest that lost its state is repaired.

use anyhow::Result;
use trove_common::rpc::{RequestContext, guest::GuestMethod};
use uuid::Uuid;

use crate::{db::instances, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn configure_rewind(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(inst) = instances::lock(&mut tx, instance_id)
            .await?
            .filter(|i| !i.deleted)
        else {
            return Ok(());
        };
        // Not placed yet: the build's end sends it (see `heartbeat`).
        let Some(host) = inst.host.clone() else {
            return Ok(());
        };
        let method = GuestMethod::ConfigureRewind {
            window_secs: u32::try_from(inst.rewind_window_secs).unwrap_or(0),
        };
        self.commit_with_instance_cast(tx, instance_id, &host, &method, ctx)
            .await
    }
}
