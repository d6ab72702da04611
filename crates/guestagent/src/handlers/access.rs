//! `update_access`: make the instance's network access what the control plane says, with a
//! reload of the client authentication rules (no restart), and report the outcome.

use std::sync::Arc;

use chrono::Utc;
use trove_common::{
    access::{Access, MAX_ALLOWED_CIDRS},
    rpc::conductor::ConductorMethod,
    timefmt::epoch_seconds,
};

use crate::{agent::Agent, hosted::Hosted};

impl Agent {
    pub(crate) async fn update_access(&self, h: &Arc<Hosted>, access: Access, rid: Option<String>) {
        // Not while a recovery swaps data directories or a restart stops the server.
        let _guard = h.op.lock().await;
        let result = if access.allowed_cidrs.len() > MAX_ALLOWED_CIDRS {
            Err(anyhow::anyhow!(
                "{} networks is more than the {MAX_ALLOWED_CIDRS} allowed",
                access.allowed_cidrs.len()
            ))
        } else {
            h.cluster.apply_access(Some(&access)).await
        };
        let error = match result {
            Ok(applied) => {
                tracing::info!(
                    instance.id = %h.id,
                    networks = applied.admitted.len(),
                    sessions_ended = applied.sessions_ended,
                    "network access applied"
                );
                None
            }
            Err(e) => {
                let text = format!("{e:#}");
                tracing::warn!(instance.id = %h.id, error = %text, "network access not applied");
                Some(text)
            }
        };
        self.report(
            ConductorMethod::UpdateAccess {
                instance_id: h.id,
                sent: epoch_seconds(Utc::now()),
                access,
                error,
            },
            rid,
        )
        .await;
    }
}
