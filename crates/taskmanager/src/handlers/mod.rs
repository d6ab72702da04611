//! Handlers for the `taskmanager` topic, one file per RPC method.

mod apply_accounts;
mod backups;
mod create_instance;
mod delete_instance;
mod list_transactions;
mod recovery;
mod resize;
mod restart;
mod restore_points;
mod rewind;
mod update_access;
mod update_configuration;

use trove_common::{
    amqp::{Delivered, Outcome},
    rpc::{taskmanager::TaskManagerMethod, topics},
};

use crate::manager::{TaskManager, outcome, parse_or_dead_letter};

impl TaskManager {
    pub async fn handle_task(&self, delivered: Delivered) -> Outcome {
        let msg = delivered.message;
        let method = match parse_or_dead_letter::<TaskManagerMethod>(&msg, topics::TASKMANAGER) {
            Ok(m) => m,
            Err(dead) => return dead,
        };
        let ctx = msg.context.clone();
        let name = msg.method.as_str();
        let r = match method {
            TaskManagerMethod::CreateInstance {
                instance_id,
                flavor,
                ds_version,
                backup_id,
                databases,
                users,
                restore_target,
                ..
            } => {
                self.create_instance(
                    ctx,
                    create_instance::CreateArgs {
                        instance_id,
                        memory_mb: flavor.ram,
                        ds_version,
                        backup_id,
                        databases,
                        users,
                        restore_target,
                    },
                )
                .await
            }
            TaskManagerMethod::DeleteInstance { instance_id } => {
                self.delete_instance(ctx, instance_id).await
            }
            TaskManagerMethod::Restart { instance_id } => self.restart(ctx, instance_id).await,
            TaskManagerMethod::CreateBackup {
                backup_info,
                instance_id,
            } => self.create_backup(ctx, backup_info, instance_id).await,
            TaskManagerMethod::DeleteBackup { backup_id } => self.delete_backup(backup_id).await,
            TaskManagerMethod::CreateRestorePoint {
                instance_id,
                restore_point_id,
                name,
            } => {
                self.create_restore_point(ctx, instance_id, restore_point_id, name)
                    .await
            }
            TaskManagerMethod::ConfigureRewind { instance_id } => {
                self.configure_rewind(ctx, instance_id).await
            }
            TaskManagerMethod::ListTransactions {
                instance_id,
                listing_id,
            } => self.list_transactions(ctx, instance_id, listing_id).await,
            TaskManagerMethod::DoInstanceRecovery {
                instance_id,
                backup_id,
                recovery_id,
            } => {
                self.do_instance_recovery(ctx, instance_id, backup_id, recovery_id)
                    .await
            }
            TaskManagerMethod::SettlePreview {
                instance_id,
                recovery_id,
            } => self.settle_preview(ctx, instance_id, recovery_id).await,
            TaskManagerMethod::UpdateAccess { instance_id, .. } => {
                self.update_access(ctx, instance_id).await
            }
            TaskManagerMethod::ApplyAccounts { instance_id, op_id } => {
                self.apply_accounts(ctx, instance_id, op_id).await
            }
            TaskManagerMethod::UpdateConfiguration {
                instance_id,
                revision,
            } => self.update_configuration(ctx, instance_id, revision).await,
            TaskManagerMethod::ResizeFlavor {
                instance_id,
                new_flavor,
            } => self.resize_flavor(ctx, instance_id, new_flavor).await,
            TaskManagerMethod::ResizeVolume {
                instance_id,
                new_size,
            } => self.resize_volume(instance_id, new_size).await,
        };
        outcome(name, r)
    }
}
