//! `create_instance`: place the instance on a guest host and tell that host to prepare it.

use anyhow::Result;
use trove_common::{
    rpc::{
        RequestContext,
        guest::{GuestMethod, RecoveryTarget},
        taskmanager::{DatabaseSpec, UserSpec},
        topics,
    },
    status::{InstanceTask, ServiceStatus},
};
use uuid::Uuid;

use crate::{
    db::{backups, faults, hosts, instances},
    manager::TaskManager,
};

/// What `create_instance` carries that the placement needs.
pub(crate) struct CreateArgs {
    pub instance_id: Uuid,
    pub memory_mb: i64,
    pub ds_version: String,
    pub backup_id: Option<Uuid>,
    pub databases: Vec<DatabaseSpec>,
    pub users: Vec<UserSpec>,
    pub restore_target: Option<RecoveryTarget>,
}

impl TaskManager {
    pub(crate) async fn create_instance(
        &self,
        ctx: RequestContext,
        args: CreateArgs,
    ) -> Result<()> {
        let CreateArgs {
            instance_id,
            memory_mb,
            ds_version,
            backup_id,
            databases,
            users,
            restore_target,
        } = args;
        let mut tx = self.pool.begin().await?;
        let Some(inst) = instances::lock(&mut tx, instance_id).await? else {
            tracing::warn!(instance.id = %instance_id, "create_instance for an unknown instance ignored");
            return Ok(());
        };
        if inst.deleted || inst.task() != InstanceTask::Building {
            return Ok(());
        }
        // Redelivery after the host was chosen: the prepare is already in the outbox, but the
        // instance's queue may not have been declared before the previous attempt stopped.
        if let Some(host) = inst.host {
            drop(tx);
            return self.ensure_instance_queue(&host, instance_id).await;
        }
        let Some(host) = hosts::choose(&mut tx, self.config.host_heartbeat_expiry_secs).await?
        else {
            instances::set_task(&mut tx, instance_id, InstanceTask::BuildingErrorServer).await?;
            instances::set_service_status(&mut tx, instance_id, ServiceStatus::Failed).await?;
            faults::record(
                &mut tx,
                instance_id,
                "No guest host with free capacity is available.",
                "Register a guest host (trove-manage host-add) and start its trove-guestagent, or raise the capacity of a registered one (trove-manage host-capacity), then create the instance again.",
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(instance.id = %instance_id, "no guest host available");
            return Ok(());
        };
        let backup_info = match backup_id {
            None => None,
            Some(bid) => {
                let Some(location) = backups::lock(&mut tx, bid)
                    .await?
                    .and_then(backups::Backup::restorable)
                else {
                    instances::set_task(&mut tx, instance_id, InstanceTask::BuildingErrorServer)
                        .await?;
                    faults::record(
                        &mut tx,
                        instance_id,
                        &format!("Backup {bid} is no longer available for a restore."),
                        "",
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(());
                };
                Some(location)
            }
        };
        instances::set_host(&mut tx, instance_id, &host).await?;
        instances::set_service_status(&mut tx, instance_id, ServiceStatus::Building).await?;
        self.commit_with_cast(
            tx,
            &topics::guest_host(&host),
            &GuestMethod::Prepare {
                instance_id,
                memory_mb,
                databases,
                users,
                backup_info,
                ds_version,
                restore_target,
            },
            ctx,
        )
        .await?;
        // Declared after the commit, so a placement that did not commit leaves no queue bound
        // to the instance's topic; the guest's consumer waits for it while it prepares.
        self.ensure_instance_queue(&host, instance_id).await?;
        tracing::info!(instance.id = %instance_id, host = %host, "instance placed, prepare sent");
        Ok(())
    }
}
