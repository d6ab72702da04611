//! `restart` and `delete_instance`.

use std::sync::Arc;

use chrono::Utc;
use trove_common::{rpc::conductor::ConductorMethod, timefmt::epoch_seconds};

use crate::{agent::Agent, hosted::Hosted};

impl Agent {
    pub(crate) async fn restart(&self, h: &Arc<Hosted>, rid: Option<String>) {
        let _guard = h.op.lock().await;
        let _down = h.disrupt();
        if let Err(e) = h.cluster.stop().await {
            tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "stop before restart failed");
        }
        self.start_or_set_aside(h, rid.clone()).await;
        self.send_status_completing(h, None, Some("restart"), rid, true)
            .await;
    }

    pub(crate) async fn delete_instance(&self, h: &Arc<Hosted>, rid: Option<String>) {
        let _guard = h.op.lock().await;
        let _down = h.disrupt();
        // The instance's archived WAL stays in the store with its backups, for restores.
        self.stop_streaming(h).await;
        if let Err(e) = h.cluster.stop().await {
            tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "stop before delete failed");
        }
        // The delayed copy runs from inside the instance directory too.
        let copy = {
            let mut keep = h.rewind.lock().await;
            let r = crate::rewind_keeper::load_record(h, &mut keep).await;
            crate::rewind_keeper::copy_of(h, &r)
        };
        if let Err(e) = crate::postgres::discard_copy(&copy).await {
            tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "could not stop the rewind copy");
        }
        if let Err(e) = tokio::fs::remove_dir_all(&h.dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(instance.id = %h.id, error = %e, "could not remove the instance directory");
            return;
        }
        self.instances.lock().await.remove(&h.id);
        self.report(
            ConductorMethod::InstanceDeleted {
                instance_id: h.id,
                sent: epoch_seconds(Utc::now()),
            },
            rid,
        )
        .await;
        // Stop consuming last: the delete message itself is acked by this consumer.
        h.cancel.cancel();
        tracing::info!(instance.id = %h.id, "instance removed from this host");
    }
}
