//! `configure_rewind`: remember the instance's rewind window and wake its keeper, which builds,
//! adjusts or removes the delayed copy. The heartbeats report the copy; nothing is answered here.

use std::sync::Arc;

use trove_common::rewind::{RewindState, RewindStatus};

use crate::{
    agent::Agent,
    hosted::Hosted,
    rewind_keeper::{load_record, save_record},
};

impl Agent {
    pub(crate) async fn configure_rewind(&self, h: &Arc<Hosted>, window_secs: u32) {
        let mut keep = h.rewind.lock().await;
        let mut r = load_record(h, &mut keep).await;
        if r.window_secs == window_secs {
            return;
        }
        r.window_secs = window_secs;
        if let Err(e) = save_record(h, &mut keep, r).await {
            tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "could not remember the rewind window");
            return;
        }
        // Reported at once, so the next heartbeat shows the change under way.
        keep.status = (window_secs > 0).then(|| RewindStatus {
            window_secs,
            state: keep
                .status
                .as_ref()
                .map_or(RewindState::Building, |s| s.state),
            applied_until: keep.status.as_ref().and_then(|s| s.applied_until),
            timeline: keep.status.as_ref().and_then(|s| s.timeline),
            disk_bytes: keep.status.as_ref().and_then(|s| s.disk_bytes),
            error: None,
        });
        drop(keep);
        tracing::info!(instance.id = %h.id, window_secs, "rewind window set");
        h.rewind_wake.notify_one();
    }
}
