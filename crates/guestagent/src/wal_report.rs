//! Periodic WAL archive reports: what the object store holds per timeline (the shipper's index
//! of the store, with the latest commit read from the spool's newest segments), sent to the
//! conductor when it changed. The control plane computes the recoverable window from these.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use trove_common::{rpc::conductor::ConductorMethod, timefmt::epoch_seconds};

use crate::{
    agent::Agent,
    hosted::Hosted,
    postgres::{current_timeline, merge_store_index, scan_until},
};

impl Agent {
    pub async fn run_wal_reports(self: Arc<Self>) {
        let period = Duration::from_millis(self.config.wal_report_interval_ms);
        loop {
            let hosted: Vec<Arc<Hosted>> = self.instances.lock().await.values().cloned().collect();
            for h in hosted {
                // During a cut-over the server and the store are in flux; report afterwards.
                if h.is_disrupted() {
                    continue;
                }
                if let Err(e) = self.report_wal(&h).await {
                    tracing::debug!(instance.id = %h.id, error = %format!("{e:#}"), "WAL report skipped");
                }
                self.refresh_relations_if_due(&h).await;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn report_wal(&self, h: &Hosted) -> anyhow::Result<()> {
        let spool = self.wal_spool(h.id);
        if !spool.exists() {
            return Ok(());
        }
        // Only what the store holds counts: if the host died now, that is what a recovery
        // elsewhere would have.
        let stored = h
            .shipped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stored_ends();
        let states = scan_until(&self.bins, &self.runner, &spool, Some(&stored)).await?;
        let states = {
            let index = h
                .shipped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            merge_store_index(states, &index)
        };
        // A server that is down (crashed, being restarted) still has WAL in the store worth
        // reporting: that is exactly what a recovery after a crash needs. Its timeline is then
        // the newest one the store holds.
        let current = match current_timeline(&h.cluster).await {
            Ok(t) => t,
            Err(_) => match states.iter().map(|s| s.timeline).max() {
                Some(t) => t,
                None => return Ok(()),
            },
        };
        let timelines = states;
        let fingerprint = serde_json::json!([current, timelines]);
        let mut last = h.last_wal_report.lock().await;
        if last.as_ref() == Some(&fingerprint) {
            return Ok(());
        }
        self.report_best_effort(
            ConductorMethod::UpdateWal {
                instance_id: h.id,
                sent: epoch_seconds(Utc::now()),
                current_timeline: current,
                timelines,
            },
            None,
        )
        .await;
        *last = Some(fingerprint);
        Ok(())
    }
}
