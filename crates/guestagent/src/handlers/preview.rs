//! `confirm_preview` and `cancel_preview`: settle a recovery's waiting preview (moving it is
//! `preview_move`'s). Both remember their end like `do_recovery`, so a redelivered message is
//! answered without redoing the work.
//! The preview's port and timeline are read from the file `do_recovery` left, so an agent that
//! restarted while the preview waited adopts it (its server kept running).

use std::sync::Arc;

use trove_common::{
    rpc::conductor::GuestErrorCode,
    status::{RecoveryPhase, RecoveryState},
};
use uuid::Uuid;

use super::recovery::{Done, Finished, Job, read_preview};
use crate::{
    agent::Agent,
    hosted::Hosted,
    postgres::{Failure, RecoveryError, cancel_preview},
};

impl Agent {
    pub(crate) async fn confirm_preview(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        rid: Option<String>,
    ) {
        let _guard = h.op.lock().await;
        let _down = h.disrupt();
        if let Some(done) = self.finished_before(h, recovery_id).await {
            self.recovery_finished(h, recovery_id, done, rid).await;
            return;
        }
        let finished = match read_preview(h, recovery_id).await {
            None => Finished::from_result(Err(RecoveryError::new(
                "in-place recovery",
                RecoveryPhase::Promoting,
                Failure::new(
                    GuestErrorCode::Internal,
                    anyhow::anyhow!(
                        "this host has no preview of recovery {recovery_id} to confirm"
                    ),
                ),
            ))),
            Some(state) => {
                tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, port = state.port, "preview confirmed");
                let started = std::time::Instant::now();
                let result = self
                    .run_recovery(h, recovery_id, Job::Confirm(state), rid.clone())
                    .await;
                let duration_ms = started.elapsed().as_millis() as u64;
                // A confirm runs through to the cut-over; it never stops at a preview.
                Finished::from_result(result.and_then(|done| match done {
                    Done::Recovered(outcome) => Ok(trove_common::recovery::RecoveryOutcome {
                        duration_ms: Some(duration_ms),
                        ..outcome
                    }),
                    Done::Previewing(_) | Done::Kept(..) => Err(RecoveryError::new(
                        "in-place recovery",
                        RecoveryPhase::Promoting,
                        Failure::new(
                            GuestErrorCode::Internal,
                            anyhow::anyhow!("the confirm stopped at a preview"),
                        ),
                    )),
                }))
            }
        };
        self.recovery_finished(h, recovery_id, finished, rid).await;
    }

    pub(crate) async fn cancel_preview(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        rid: Option<String>,
    ) {
        let _guard = h.op.lock().await;
        if let Some(done) = self.finished_before(h, recovery_id).await {
            self.recovery_finished(h, recovery_id, done, rid).await;
            return;
        }
        // Without a remembered preview there is still the staged directory to clear, whatever
        // left it: the live data is never touched.
        let finished = match cancel_preview(&h.cluster).await {
            Ok(()) => {
                tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, "preview cancelled");
                Finished {
                    state: RecoveryState::Cancelled,
                    phase: RecoveryPhase::Cancelled,
                    error: None,
                    error_code: None,
                    outcome: None,
                }
            }
            Err(e) => Finished::from_result(Err(RecoveryError::new(
                "in-place recovery",
                RecoveryPhase::Cancelling,
                Failure::new(GuestErrorCode::Internal, e),
            ))),
        };
        self.recovery_finished(h, recovery_id, finished, rid).await;
    }

    /// The remembered end of `recovery_id`, if it finished already.
    pub(super) async fn finished_before(&self, h: &Hosted, recovery_id: Uuid) -> Option<Finished> {
        let bytes = tokio::fs::read(h.recovery_result_path(recovery_id))
            .await
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
