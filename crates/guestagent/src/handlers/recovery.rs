//! `do_recovery`: recover the running instance in place, to the end of a backup or on to a point
//! in time, reporting each phase, and remembering the outcome so a redelivered message is answered
//! without redoing the work.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use trove_common::{
    recovery::{RecoveryOutcome, RecoveryProgress, RecoveryTarget},
    rpc::{
        conductor::{ConductorMethod, GuestErrorCode},
        guest::BackupLocation,
    },
    status::{RecoveryPhase, RecoveryState},
    timefmt::epoch_seconds,
};
use uuid::Uuid;

use super::recovery_source::RecoverySource;
use crate::{
    agent::Agent,
    hosted::Hosted,
    postgres::{
        RecoveryError, Reporters, current_timeline, ensure_dir, recover_in_place, write_owned,
    },
};

/// The remembered (and reported) end of one recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Finished {
    state: RecoveryState,
    phase: RecoveryPhase,
    error: Option<String>,
    error_code: Option<GuestErrorCode>,
    #[serde(default)]
    outcome: Option<RecoveryOutcome>,
}

impl Finished {
    fn from_result(result: Result<RecoveryOutcome, RecoveryError>) -> Self {
        match result {
            Ok(outcome) => Self {
                state: RecoveryState::Completed,
                phase: RecoveryPhase::Done,
                error: None,
                error_code: None,
                outcome: Some(outcome),
            },
            Err(err) => Self {
                state: RecoveryState::Failed,
                phase: err.phase,
                error: Some(err.to_string()),
                error_code: Some(err.code),
                outcome: None,
            },
        }
    }
}

impl Agent {
    pub(crate) async fn do_recovery(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        backup: BackupLocation,
        target: Option<RecoveryTarget>,
        rid: Option<String>,
    ) {
        let _guard = h.op.lock().await;
        let _down = h.disrupt();
        let result_path = h.recovery_result_path(recovery_id);
        if let Ok(bytes) = tokio::fs::read(&result_path).await
            && let Ok(done) = serde_json::from_slice::<Finished>(&bytes)
        {
            tracing::info!(recovery.id = %recovery_id, "recovery already finished, reporting again");
            self.send_finished(h.id, recovery_id, &done, rid).await;
            return;
        }
        tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, backup.id = %backup.id, "recovery started");
        let started = std::time::Instant::now();
        let result = match self.recovery_source(h.id, &backup, target.as_ref()) {
            Err(failure) => Err(RecoveryError::new(
                "in-place recovery",
                RecoveryPhase::Fetching,
                failure,
            )),
            Ok(source) => {
                self.run_recovery(h, recovery_id, &source, rid.clone())
                    .await
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let result = result.map(|outcome| RecoveryOutcome {
            duration_ms: Some(duration_ms),
            ..outcome
        });
        match &result {
            Ok(_) => {
                tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, duration_ms, "recovery completed")
            }
            Err(e) => {
                tracing::warn!(instance.id = %h.id, recovery.id = %recovery_id, duration_ms, error = %e, error_code = %e.code, "recovery failed, previous data kept")
            }
        }
        let finished = Finished::from_result(result);
        // The outcome names host paths and tool output: the agent's own, 0600 in a 0700 directory.
        let remembered = async {
            if let Some(parent) = result_path.parent() {
                ensure_dir(parent, 0o700, None).await?;
            }
            let bytes = serde_json::to_vec(&finished)?;
            write_owned(&result_path, &bytes, 0o600, None).await
        };
        if let Err(e) = remembered.await {
            tracing::warn!(recovery.id = %recovery_id, error = %format!("{e:#}"), "could not remember the recovery outcome");
        }
        self.send_finished(h.id, recovery_id, &finished, rid).await;
    }

    /// Runs the recovery, reporting each phase as it starts and the progress every second. WAL
    /// shipping pauses meanwhile: the server changes timeline at cut-over, and the receiver must
    /// follow it.
    async fn run_recovery(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        source: &RecoverySource,
        rid: Option<String>,
    ) -> Result<RecoveryOutcome, RecoveryError> {
        let last_phase = Mutex::new(RecoveryPhase::Fetching);
        let progress = Mutex::new(RecoveryProgress::default());
        // The callbacks are sync; a channel wakes the loop below to report a new phase at once.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let started = std::time::Instant::now();
        let phase_cb = |p: RecoveryPhase| {
            if let Ok(mut l) = last_phase.lock() {
                *l = p;
            }
            // Phase boundaries with their offsets tell an operator where a slow recovery spends time.
            tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, phase = %p, elapsed_ms = started.elapsed().as_millis() as u64, "recovery phase");
            let _ = tx.send(());
        };
        let progress_cb = |p: RecoveryProgress| {
            if let Ok(mut current) = progress.lock() {
                current.merge(p);
            }
        };
        self.stop_streaming(h).await;
        tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, elapsed_ms = started.elapsed().as_millis() as u64, "WAL streaming paused");
        let reporters = Reporters {
            phase: &phase_cb,
            progress: &progress_cb,
        };
        let request = source.request();
        let work = recover_in_place(&h.cluster, &request, reporters);
        tokio::pin!(work);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let result = loop {
            let report = tokio::select! {
                r = &mut work => break r,
                Some(()) = rx.recv() => true,
                _ = tick.tick() => true,
            };
            if report {
                let phase = last_phase
                    .lock()
                    .map(|p| *p)
                    .unwrap_or(RecoveryPhase::Fetching);
                let snapshot = progress.lock().map(|p| p.clone()).ok();
                self.send_running(h.id, recovery_id, phase, snapshot, rid.clone())
                    .await;
            }
        };
        // Whatever happened, the instance runs (new data or its old data): ship its WAL again.
        self.start_streaming(h).await;
        // The control plane plans the next point-in-time recovery on the instance's current
        // timeline, so it travels with the outcome instead of waiting for a WAL report.
        let mut outcome = result?;
        match current_timeline(&h.cluster).await {
            Ok(tl) => outcome.new_timeline = Some(tl),
            Err(e) => {
                tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "cannot read the timeline after recovery")
            }
        }
        Ok(outcome)
    }

    /// Progress while the recovery runs; best effort, the next report follows within a second.
    async fn send_running(
        &self,
        instance_id: Uuid,
        recovery_id: Uuid,
        phase: RecoveryPhase,
        progress: Option<RecoveryProgress>,
        rid: Option<String>,
    ) {
        let msg = ConductorMethod::UpdateRecovery {
            instance_id,
            recovery_id,
            sent: epoch_seconds(Utc::now()),
            phase,
            state: RecoveryState::Running,
            progress,
            error: None,
            error_code: None,
            outcome: None,
        };
        self.report_best_effort(msg, rid).await
    }

    /// The outcome, retried until the broker has it: it settles the instance's task.
    async fn send_finished(
        &self,
        instance_id: Uuid,
        recovery_id: Uuid,
        f: &Finished,
        rid: Option<String>,
    ) {
        let msg = ConductorMethod::UpdateRecovery {
            instance_id,
            recovery_id,
            sent: epoch_seconds(Utc::now()),
            phase: f.phase,
            state: f.state,
            progress: None,
            error: f.error.clone(),
            error_code: f.error_code,
            outcome: f.outcome.clone(),
        };
        self.report(msg, rid).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::Failure;

    #[test]
    fn the_reported_error_code_is_the_failures_own() {
        for code in GuestErrorCode::ALL {
            let err = RecoveryError::new(
                "in-place recovery",
                RecoveryPhase::CuttingOver,
                Failure::new(*code, anyhow::anyhow!("disk full")),
            );
            let f = Finished::from_result(Err(err));
            assert_eq!(f.state, RecoveryState::Failed);
            assert_eq!(f.phase, RecoveryPhase::CuttingOver);
            assert_eq!(f.error_code, Some(*code));
            assert_eq!(
                f.error.as_deref(),
                Some("in-place recovery failed during phase cutting_over: disk full")
            );
        }
        let done = Finished::from_result(Ok(RecoveryOutcome::default()));
        assert_eq!(
            (done.state, done.phase),
            (RecoveryState::Completed, RecoveryPhase::Done)
        );
    }
}
