//! Trove's conductor role: applies what guests report, after checking that the sender hosts the
//! instance it speaks for.

mod heartbeat;
mod host_heartbeat;
mod instance_deleted;
mod update_backup;
mod update_recovery;
mod update_wal;

use trove_common::{
    amqp::Outcome,
    rpc::{RpcMessage, conductor::ConductorMethod},
};

use crate::{
    db::instances::Instance,
    manager::{TaskManager, outcome},
};

impl TaskManager {
    pub async fn handle_conductor(&self, msg: RpcMessage) -> Outcome {
        let method = match msg.parse::<ConductorMethod>() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "unknown or malformed conductor message");
                return Outcome::DeadLetter;
            }
        };
        let sender = msg.context.guest_host.clone();
        let name = msg.method.clone();
        let r = match method {
            ConductorMethod::Heartbeat {
                instance_id,
                payload,
                sent,
            } => {
                self.heartbeat(sender.as_deref(), instance_id, payload, sent)
                    .await
            }
            ConductorMethod::UpdateBackup { .. } => {
                self.update_backup(sender.as_deref(), method).await
            }
            ConductorMethod::UpdateRecovery { .. } => {
                self.update_recovery(sender.as_deref(), method).await
            }
            ConductorMethod::HostHeartbeat {
                host,
                address,
                capacity,
                sent,
            } => {
                self.host_heartbeat(sender.as_deref(), &host, &address, capacity, sent)
                    .await
            }
            ConductorMethod::UpdateWal {
                instance_id,
                sent,
                current_timeline,
                timelines,
            } => {
                self.update_wal(
                    sender.as_deref(),
                    instance_id,
                    sent,
                    current_timeline,
                    timelines,
                )
                .await
            }
            ConductorMethod::InstanceDeleted { instance_id, .. } => {
                self.instance_deleted(sender.as_deref(), instance_id).await
            }
        };
        outcome(&name, r)
    }
}

/// A guest may only speak for instances placed on its own host.
pub(crate) fn sender_hosts(sender: Option<&str>, inst: &Instance) -> bool {
    let ok = sender.is_some() && inst.host.as_deref() == sender;
    if !ok {
        tracing::warn!(
            instance.id = %inst.id,
            sender = sender.unwrap_or("<none>"),
            host = inst.host.as_deref().unwrap_or("<none>"),
            "guest message for an instance it does not host, ignored"
        );
    }
    ok
}
