//! `update_configuration`: hand the instance's current configuration-group values to its guest,
//! which rewrites its overrides file and reloads; the guest's `overrides_applied` report settles
//! it. No task: like Trove, a configuration change leaves the instance usable meanwhile.

use anyhow::Result;
use trove_common::rpc::{RequestContext, guest::GuestMethod};
use uuid::Uuid;

use crate::{
    db::{configurations, instances},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn update_configuration(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
        revision: i64,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(inst) = instances::lock(&mut tx, instance_id).await? else {
            return Ok(());
        };
        let Some(host) = inst.host.clone().filter(|_| !inst.deleted) else {
            // Not placed yet: its prepare will carry the group's values.
            return Ok(());
        };
        // The control database holds what to apply: the latest values, whatever the message
        // says. A message for an older revision still sends them, which is harmless; the report
        // names the revision it applied.
        let (overrides, current) = configurations::current(&mut tx, instance_id).await?;
        if current > revision {
            tracing::debug!(instance.id = %instance_id, revision, current, "older configuration change; the newer one follows");
        }
        let method = GuestMethod::UpdateOverrides {
            overrides,
            revision: current,
        };
        self.commit_with_instance_cast(tx, instance_id, &host, &method, ctx)
            .await?;
        tracing::info!(instance.id = %instance_id, revision = current, "configuration sent to the guest");
        Ok(())
    }
}
