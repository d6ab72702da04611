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
        let (restart_required, error) = match h.cluster.apply_overrides(&overrides, revision).await
        {
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

    /// Starts the server. If it does not start and a configuration group's values are in force,
    /// they are set aside and the server started without them, so a value PostgreSQL accepted at
    /// reload but cannot start with (too much shared memory, say) does not keep the instance
    /// down; the report names the failure and the instance shows it as a fault.
    pub(crate) async fn start_or_set_aside(&self, h: &Arc<Hosted>, rid: Option<String>) {
        let Err(e) = h.cluster.start().await else {
            return;
        };
        let first = format!("{e:#}");
        tracing::error!(instance.id = %h.id, error = %first, "server did not start");
        let revision = match h.cluster.set_aside_overrides().await {
            Ok(Some(revision)) => revision,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(instance.id = %h.id, error = %format!("{e:#}"), "could not set the configuration group aside");
                return;
            }
        };
        let error = match h.cluster.start().await {
            Ok(()) => {
                tracing::warn!(instance.id = %h.id, revision, "started without the configuration group's values");
                format!(
                    "the server did not start with the configuration group's values, which were set aside: {first}"
                )
            }
            Err(again) => {
                tracing::error!(instance.id = %h.id, error = %format!("{again:#}"), "server did not start without the group either");
                format!(
                    "the server did not start, with or without the configuration group's values: {again:#}"
                )
            }
        };
        self.report(
            ConductorMethod::OverridesApplied {
                instance_id: h.id,
                sent: epoch_seconds(Utc::now()),
                revision,
                restart_required: false,
                error: Some(error),
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
        self.start_or_set_aside(h, rid.clone()).await;
        tracing::info!(instance.id = %h.id, memory_mb, "memory settings applied");
        self.send_status_completing(h, None, Some("resize"), rid, true)
            .await;
    }
}
