//! Handlers for `guesthost.<host>` (provisioning) and `guestagent.<instance_id>` (everything done
//! to one instance), one file per concern.

mod access;
mod accounts;
mod backup;
mod configuration;
mod lifecycle;
mod prepare;
mod preview;
mod preview_move;
mod recovery;
mod recovery_source;
mod restore_point;
mod rewind;
mod transactions;

use std::sync::Arc;

use anyhow::{Result, bail};
use trove_common::{
    amqp::Outcome,
    rpc::{RpcMessage, guest::GuestMethod},
};
use uuid::Uuid;

use crate::{agent::Agent, postgres::ActivityRequest};

impl Agent {
    pub async fn handle_host_message(self: &Arc<Self>, msg: RpcMessage) -> Outcome {
        let rid = msg.context.request_id.clone();
        match msg.parse::<GuestMethod>() {
            Ok(GuestMethod::Prepare {
                instance_id,
                databases,
                users,
                backup_info,
                restore_target,
                access,
                memory_mb,
                overrides,
                ..
            }) => {
                self.prepare(
                    instance_id,
                    prepare::Wanted {
                        databases,
                        users,
                        backup: backup_info,
                        restore_target,
                        access,
                        memory_mb,
                        overrides,
                    },
                    rid,
                )
                .await;
                Outcome::Ack
            }
            Ok(other) => {
                tracing::warn!(method = %msg.method, "instance method sent to the host queue: {other:?}");
                Outcome::DeadLetter
            }
            Err(e) => {
                tracing::warn!(error = %e, "malformed host message");
                Outcome::DeadLetter
            }
        }
    }

    pub async fn handle_instance_message(self: &Arc<Self>, id: Uuid, msg: RpcMessage) -> Outcome {
        let rid = msg.context.request_id.clone();
        let method = match msg.parse::<GuestMethod>() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(instance.id = %id, error = %e, "malformed instance message");
                return Outcome::DeadLetter;
            }
        };
        let Some(h) = self.get(id).await else {
            tracing::warn!(instance.id = %id, method = %msg.method, "message for an instance this host does not run");
            return Outcome::DeadLetter;
        };
        match method {
            GuestMethod::CreateBackup { backup_info } => {
                self.create_backup(&h, backup_info, rid).await
            }
            GuestMethod::DoRecovery {
                recovery_id,
                backup_info,
                target,
                preview,
            } => {
                self.do_recovery(&h, recovery_id, backup_info, target, preview, rid)
                    .await
            }
            GuestMethod::ConfirmPreview { recovery_id } => {
                self.confirm_preview(&h, recovery_id, rid).await
            }
            GuestMethod::CancelPreview { recovery_id } => {
                self.cancel_preview(&h, recovery_id, rid).await
            }
            GuestMethod::MovePreview {
                recovery_id,
                move_seq,
                target,
            } => {
                self.move_preview(&h, recovery_id, move_seq, target, rid)
                    .await
            }
            GuestMethod::ListTransactions {
                listing_id,
                since,
                until,
                filter,
            } => {
                let req = ActivityRequest {
                    since,
                    until,
                    filter,
                };
                self.list_transactions(&h, listing_id, req, rid).await
            }
            GuestMethod::CreateRestorePoint {
                restore_point_id,
                name,
            } => {
                self.create_restore_point(&h, restore_point_id, name, rid)
                    .await
            }
            GuestMethod::Restart {} => self.restart(&h, rid).await,
            GuestMethod::DeleteInstance {} => self.delete_instance(&h, rid).await,
            GuestMethod::UpdateAccess { access } => self.update_access(&h, access, rid).await,
            GuestMethod::ConfigureRewind { window_secs } => {
                self.configure_rewind(&h, window_secs).await
            }
            GuestMethod::ApplyAccounts { op_id, op } => {
                self.apply_accounts(&h, op_id, op, rid).await
            }
            GuestMethod::UpdateOverrides {
                overrides,
                revision,
            } => self.update_overrides(&h, overrides, revision, rid).await,
            GuestMethod::ResizeFlavor { memory_mb } => self.resize_flavor(&h, memory_mb, rid).await,
            GuestMethod::Prepare { .. } => {
                tracing::warn!(instance.id = %id, "prepare sent to an instance queue ignored");
            }
        }
        Outcome::Ack
    }

    /// A location from the control plane (a backup archive, an instance's WAL), as a key inside
    /// the object store and nowhere else.
    pub fn store_key(&self, location: &str) -> Result<String> {
        let ok = !location.is_empty()
            && location.len() <= 512
            && location.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if !ok {
            bail!("location '{location}' is not a key inside the object store");
        }
        Ok(location.to_owned())
    }
}
