//! `move_preview`: move a recovery's waiting preview on to a later target. The move's number
//! (`move_seq`) is remembered with the preview, so a redelivered move is answered with the
//! preview as it waits now instead of being applied twice; a move whose preview could not be put
//! back ends the recovery, remembered like any end.

use std::sync::Arc;

use trove_common::{
    recovery::RecoveryTarget, rpc::conductor::GuestErrorCode, status::RecoveryPhase,
};
use uuid::Uuid;

use super::recovery::{Done, Finished, Job, read_preview};
use crate::{
    agent::Agent,
    hosted::Hosted,
    postgres::{Failure, PreviewState, RecoveryError},
};

const WHAT: &str = "preview move";

impl Agent {
    pub(crate) async fn move_preview(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        move_seq: u32,
        target: RecoveryTarget,
        rid: Option<String>,
    ) {
        let _guard = h.op.lock().await;
        if let Some(done) = self.finished_before(h, recovery_id).await {
            self.recovery_finished(h, recovery_id, done, rid).await;
            return;
        }
        let Some(state) = read_preview(h, recovery_id).await else {
            let err = RecoveryError::new(
                WHAT,
                RecoveryPhase::Replaying,
                Failure::new(
                    GuestErrorCode::Internal,
                    anyhow::anyhow!("this host has no preview of recovery {recovery_id} to move"),
                ),
            );
            self.recovery_finished(h, recovery_id, Finished::from_result(Err(err)), rid)
                .await;
            return;
        };
        if state.moves >= move_seq {
            tracing::info!(recovery.id = %recovery_id, move_seq, "preview move already applied, reporting again");
            self.send_preview(h.id, recovery_id, &state, rid).await;
            return;
        }
        tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, move_seq, port = state.port, "preview move started");
        let source = match self.move_source(h.id, &target) {
            Ok(source) => source,
            Err(failure) => {
                // Nothing was touched: the preview waits where it did.
                let err = RecoveryError::new(WHAT, RecoveryPhase::Replaying, failure);
                self.preview_ready(h, recovery_id, kept(state, move_seq, &err), rid)
                    .await;
                return;
            }
        };
        let job = Job::Move {
            state,
            source: &source,
            seq: move_seq,
        };
        match self.run_recovery(h, recovery_id, job, rid.clone()).await {
            Ok(Done::Previewing(moved)) => {
                tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, move_seq, "preview moved");
                let moved = PreviewState {
                    moves: move_seq,
                    move_error: None,
                    move_error_code: None,
                    ..moved
                };
                self.preview_ready(h, recovery_id, moved, rid).await;
            }
            Ok(Done::Kept(old, err)) => {
                tracing::warn!(instance.id = %h.id, recovery.id = %recovery_id, move_seq, error = %err, "preview move failed, the preview waits at its old target");
                self.preview_ready(h, recovery_id, kept(old, move_seq, &err), rid)
                    .await;
            }
            Ok(Done::Recovered(_)) => {
                let err = RecoveryError::new(
                    WHAT,
                    RecoveryPhase::Replaying,
                    Failure::new(
                        GuestErrorCode::Internal,
                        anyhow::anyhow!("the move ended without a preview"),
                    ),
                );
                self.recovery_finished(h, recovery_id, Finished::from_result(Err(err)), rid)
                    .await;
            }
            Err(err) => {
                self.recovery_finished(h, recovery_id, Finished::from_result(Err(err)), rid)
                    .await;
            }
        }
    }
}

/// The preview `state` as it waits again after move `move_seq` failed with `err`.
fn kept(state: PreviewState, move_seq: u32, err: &RecoveryError) -> PreviewState {
    PreviewState {
        moves: move_seq,
        move_error: Some(err.to_string()),
        move_error_code: Some(err.code),
        ..state
    }
}
