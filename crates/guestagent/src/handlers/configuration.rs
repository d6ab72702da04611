//! `update_overrides` (a configuration group attached, changed or detached) and `resize_flavor`
//! (new memory settings and a restart), each reported to the conductor.

use std::sync::Arc;

use chrono::Utc;
use trove_common::{overrides::Overrides, rpc::conductor::ConductorMethod, timefmt::epoch_seconds};

use crate::{agent::Agent, hosted::Hosted};

impl Agent {
    pub(crate) async fn update_overrides(
        &self,
        h: &Arc<Hosted>,
        overrides: Overrides,
        revision: i64,
        rid: Option<String>,
    ) {
        // Not while a recovery swaps data directories or a restart stops the server.
        let _guard = h.op.lock().await;
        let (restart_required, error) = match h.cluster.apply_overrides(&overrides).await {
            Ok(pending) => {
                tracing::info!(instance.id = %h.id, revision, parameters = overrides.len(), ?pending, "configuration applied");
                (!pending.is_empty(), None)
            }
            Err(e) => {
                let text = format!("{e:#}");
                tracing::warn!(instance.id = %h.id, revision, error = %text, "configuration not applied");
                (false, Some(text))
            }
        };
        self.report(
            ConductorMethod::OverridesApplied {
                instance_id: h.id,
                sent: epoch_seconds(Utc::now()),
                revision,
                restart_required,
                error,
            },
            rid,
        )
        .await;
    }

    pub(crate) async fn resize_flavor(&self, h: &Arc<Hosted>, memory_mb: i64, rid: Option<String>) {
        let _guard = h.op.lock().await;
        let _down = h.disrupt();
        if let Err(e) = h.cluster.write_memory(memory_mb).await {
            // The server keeps its old settings; the task times out with a fault to read.
            tracing::error!(instance.id = %h.id, error = %format!("{e:#}"), "memory settings not written");
            return;
        }
        if let Err(e) = h.cluster.stop().await {
            tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "stop before resize failed");
        }
        if let Err(e) = h.cluster.start().await {
            tracing::error!(instance.id = %h.id, error = %format!("{e:#}"), "start after resize failed");
        }
        tracing::info!(instance.id = %h.id, memory_mb, "memory settings applied");
        self.send_status_completing(h, None, Some("resize"), rid, true)
            .await;
    }
}
