//! Trove's conductor role: applies what guests report, after checking that the sender hosts the
//! instance it speaks for.

mod heartbeat;
mod host_heartbeat;
mod instance_deleted;
mod update_backup;
mod update_recovery;
mod update_wal;

use sqlx::PgConnection;
use trove_common::{
    amqp::Outcome,
    rpc::{RpcMessage, conductor::ConductorMethod, topics},
};
use uuid::Uuid;

use crate::{
    db::instances::{self, Instance},
    manager::{TaskManager, outcome, parse_or_dead_letter},
};

impl TaskManager {
    pub async fn handle_conductor(&self, msg: RpcMessage) -> Outcome {
        let method = match parse_or_dead_letter::<ConductorMethod>(&msg, topics::CONDUCTOR) {
            Ok(m) => m,
            Err(dead) => return dead,
        };
        let sender = msg.context.guest_host.as_deref();
        let r = match method {
            ConductorMethod::Heartbeat {
                instance_id,
                payload,
                sent,
            } => self.heartbeat(sender, instance_id, payload, sent).await,
            ConductorMethod::UpdateBackup { .. } => self.update_backup(sender, method).await,
            ConductorMethod::UpdateRecovery { .. } => self.update_recovery(sender, method).await,
            ConductorMethod::HostHeartbeat {
                host,
                address,
                capacity,
                sent,
                public_key,
            } => {
                self.host_heartbeat(sender, &host, &address, capacity, sent, public_key.as_ref())
                    .await
            }
            ConductorMethod::UpdateWal {
                instance_id,
                sent,
                current_timeline,
                timelines,
            } => {
                self.update_wal(sender, instance_id, sent, current_timeline, timelines)
                    .await
            }
            ConductorMethod::InstanceDeleted { instance_id, .. } => {
                self.instance_deleted(sender, instance_id).await
            }
        };
        outcome(&msg.method, r)
    }
}

/// The instance a guest report speaks for, locked, if it exists, is not deleted, and is placed
/// on the sender's host.
pub(crate) async fn lock_reported(
    conn: &mut PgConnection,
    sender: Option<&str>,
    instance_id: Uuid,
) -> sqlx::Result<Option<Instance>> {
    Ok(instances::lock(conn, instance_id)
        .await?
        .filter(|i| !i.deleted && sender_hosts(sender, i)))
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
