//! `update_recovery`: phases and progress while a recovery runs, then its outcome, which closes
//! the instance's task at once.

use anyhow::Result;
use trove_common::{
    fault::FaultCode,
    rpc::conductor::ConductorMethod,
    status::{InstanceTask, RecoveryPhase, RecoveryState, ServiceStatus},
};

use super::lock_reported;
use crate::{
    db::{faults, instances, recoveries},
    manager::TaskManager,
};

impl TaskManager {
    /// Applies a guest's `update_recovery` report sent from `sender`'s host; any other message is
    /// ignored.
    pub async fn update_recovery(&self, sender: &str, msg: ConductorMethod) -> Result<()> {
        let ConductorMethod::UpdateRecovery {
            instance_id,
            recovery_id,
            phase,
            state,
            progress,
            error,
            error_code,
            outcome,
            preview,
            move_seq,
            ..
        } = msg
        else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        let Some(inst) = lock_reported(&mut tx, sender, instance_id).await? else {
            return Ok(());
        };
        let Some(rec) = recoveries::lock(&mut tx, recovery_id).await? else {
            return Ok(());
        };
        // A finished recovery never moves again, except that the guest's late final word on one
        // the sweeper gave up on settles it: the guest knows which data the instance serves.
        let late_outcome = rec.phase == RecoveryPhase::TimedOut && state.is_finished();
        if rec.instance_id != instance_id || (rec.state.is_finished() && !late_outcome) {
            return Ok(());
        }
        let recovering = matches!(
            inst.task(),
            InstanceTask::Recovering | InstanceTask::RecoveryError
        );
        // Once a preview waits or was settled, a late (or redelivered) report from before that
        // must not move it back: only the end of the confirm or cancel counts. While a move is
        // under way, only the reports of that move count.
        let pending = Pending::of(rec.preview_action.as_deref(), rec.preview_moves);
        if is_late_for_preview(rec.state, pending, state, phase, move_seq) {
            return Ok(());
        }
        match state {
            RecoveryState::Running => {
                recoveries::set_progress(&mut tx, recovery_id, phase, progress.as_ref()).await?
            }
            RecoveryState::Preview => {
                let Some(ready) = preview else {
                    tracing::warn!(recovery.id = %recovery_id, "preview report without its port ignored");
                    return Ok(());
                };
                match error.as_deref() {
                    // A move that failed before replay went past the old target: the preview
                    // waits there again, and the recovery says why the move failed.
                    Some(why) => {
                        let code = error_code.map_or(FaultCode::Internal, FaultCode::from);
                        recoveries::keep_preview(
                            &mut tx,
                            recovery_id,
                            &ready,
                            self.config.preview_ttl_secs,
                            why,
                            code,
                        )
                        .await?;
                        tracing::warn!(instance.id = %instance_id, recovery.id = %recovery_id, error = why, "preview move failed, the preview waits at its old target");
                    }
                    None => {
                        recoveries::set_preview(
                            &mut tx,
                            recovery_id,
                            &ready,
                            self.config.preview_ttl_secs,
                        )
                        .await?;
                        tracing::info!(instance.id = %instance_id, recovery.id = %recovery_id, port = ready.port, move_seq, "preview ready");
                    }
                }
            }
            RecoveryState::Cancelled => {
                recoveries::finish(
                    &mut tx,
                    recovery_id,
                    recoveries::Finish {
                        state,
                        phase: RecoveryPhase::Cancelled,
                        error: None,
                        outcome: None,
                        error_code: None,
                    },
                )
                .await?;
                // The instance never stopped serving its data: back to no task, no fault.
                if recovering {
                    instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                }
                tracing::info!(instance.id = %instance_id, recovery.id = %recovery_id, "preview cancelled");
            }
            RecoveryState::Completed => {
                recoveries::set_progress(&mut tx, recovery_id, phase, progress.as_ref()).await?;
                recoveries::finish(
                    &mut tx,
                    recovery_id,
                    recoveries::Finish {
                        state,
                        phase: RecoveryPhase::Done,
                        error: None,
                        outcome: outcome.as_ref(),
                        error_code: None,
                    },
                )
                .await?;
                faults::clear(&mut tx, instance_id).await?;
                if recovering {
                    instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                }
                // The guest checked health before reporting; show it now, not at the next heartbeat.
                instances::set_service_status(&mut tx, instance_id, ServiceStatus::Healthy).await?;
                // The next point-in-time recovery must be planned on the new timeline at once.
                if let Some(tl) = outcome.as_ref().and_then(|o| o.new_timeline) {
                    instances::set_timeline(&mut tx, instance_id, tl).await?;
                }
                tracing::info!(instance.id = %instance_id, recovery.id = %recovery_id, "recovery completed");
            }
            RecoveryState::Failed => {
                let why = error
                    .as_deref()
                    .unwrap_or("the guest agent reported a failure");
                let code = error_code.map_or(FaultCode::Internal, FaultCode::from);
                recoveries::finish(
                    &mut tx,
                    recovery_id,
                    recoveries::Finish {
                        state,
                        phase,
                        error: Some(why),
                        outcome: outcome.as_ref(),
                        error_code: Some(code),
                    },
                )
                .await?;
                if recovering {
                    instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                }
                // The guest's text names host paths and carries tool output and server log
                // lines: details, for admins. Everyone reads the phase and the code.
                faults::record(
                    &mut tx,
                    instance_id,
                    code,
                    &format!(
                        "Recovery {recovery_id} from backup {} failed during {phase} ({code}); the instance still runs its previous data.",
                        rec.backup_id
                    ),
                    &format!("{code}: {why}"),
                )
                .await?;
                tracing::warn!(instance.id = %instance_id, recovery.id = %recovery_id, error = why, "recovery failed, instance kept its data");
            }
            RecoveryState::New => {
                tracing::warn!(recovery.id = %recovery_id, state = %state, "recovery update with a state only the control plane sets ignored");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What the user asked of a preview that the guest has not finished yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// A confirm or a cancel.
    Settled,
    /// Move number `n` to a later target.
    Move(u32),
}

impl Pending {
    fn of(action: Option<&str>, moves: i32) -> Self {
        match action {
            None => Self::Nothing,
            Some(recoveries::MOVE) => Self::Move(u32::try_from(moves).unwrap_or(0)),
            Some(_) => Self::Settled,
        }
    }
}

/// Whether a `state`/`phase` report (of move `move_seq`, None outside a move) is from before a
/// preview became ready, was settled (confirm or cancel asked) or moved: progress of the
/// staging or of an older move while the preview waits or moves, or the preview's own report
/// again.
fn is_late_for_preview(
    current: RecoveryState,
    pending: Pending,
    state: RecoveryState,
    phase: RecoveryPhase,
    move_seq: Option<u32>,
) -> bool {
    match state {
        RecoveryState::Running => {
            current == RecoveryState::Preview
                || match pending {
                    Pending::Nothing => false,
                    Pending::Settled => phase.rank() < RecoveryPhase::Promoting.rank(),
                    Pending::Move(n) => move_seq != Some(n),
                }
        }
        RecoveryState::Preview => {
            current == RecoveryState::Preview
                || match pending {
                    Pending::Nothing => false,
                    Pending::Settled => true,
                    Pending::Move(n) => move_seq != Some(n),
                }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_from_before_a_preview_waited_or_was_settled_are_late() {
        use RecoveryPhase as P;
        use RecoveryState as S;
        let late = |current, pending, state, phase| {
            is_late_for_preview(current, pending, state, phase, None)
        };
        // While staging, progress and the preview's readiness count.
        assert!(!late(
            S::Running,
            Pending::Nothing,
            S::Running,
            P::Replaying
        ));
        assert!(!late(S::Running, Pending::Nothing, S::Preview, P::Preview));
        // A waiting preview ignores staging progress and its own readiness again.
        assert!(late(
            S::Preview,
            Pending::Nothing,
            S::Running,
            P::VerifyingTarget
        ));
        assert!(late(S::Preview, Pending::Nothing, S::Preview, P::Preview));
        // Confirmed: the confirm's phases count, the staging's and the readiness do not.
        assert!(!late(
            S::Running,
            Pending::Settled,
            S::Running,
            P::CuttingOver
        ));
        assert!(late(S::Running, Pending::Settled, S::Running, P::Replaying));
        assert!(late(S::Running, Pending::Settled, S::Preview, P::Preview));
        // An end always counts (a finished recovery is filtered before).
        assert!(!late(
            S::Running,
            Pending::Settled,
            S::Cancelled,
            P::Cancelled
        ));
        assert!(!late(S::Running, Pending::Settled, S::Completed, P::Done));
    }

    #[test]
    fn while_a_preview_moves_only_that_moves_reports_count() {
        use RecoveryPhase as P;
        use RecoveryState as S;
        let moving = Pending::of(Some(recoveries::MOVE), 2);
        assert_eq!(moving, Pending::Move(2));
        let late = |state, phase, seq| is_late_for_preview(S::Running, moving, state, phase, seq);
        assert!(!late(S::Running, P::Replaying, Some(2)));
        assert!(!late(S::Preview, P::Preview, Some(2)));
        // The first staging's and the previous move's reports are history.
        assert!(late(S::Running, P::Replaying, None));
        assert!(late(S::Preview, P::Preview, None));
        assert!(late(S::Preview, P::Preview, Some(1)));
        // A move's failure ends the recovery whatever its number.
        assert!(!late(S::Failed, P::Replaying, Some(2)));
        // Moved and waiting again: a redelivered report of the move changes nothing.
        assert!(is_late_for_preview(
            S::Preview,
            Pending::Nothing,
            S::Preview,
            P::Preview,
            Some(2)
        ));
    }
}
