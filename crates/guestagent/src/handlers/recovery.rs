//! `do_recovery`: recover the running instance in place, to the end of a backup or on to a point
//! in time, reporting each phase, and remembering the outcome so a redelivered message is answered
//! without redoing the work. Asked as a preview, it stops before the cut-over and reports the
//! waiting preview instead (confirmed or cancelled in `preview`).

use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use trove_common::{
    recovery::{RecoveryOutcome, RecoveryProgress, RecoveryTarget},
    rpc::{
        conductor::{ConductorMethod, GuestErrorCode, PreviewReady},
        guest::BackupLocation,
    },
    status::{RecoveryPhase, RecoveryState},
    timefmt::epoch_seconds,
};
use uuid::Uuid;

use super::recovery_source::{MoveSource, RecoverySource};
use crate::{
    agent::Agent,
    hosted::Hosted,
    postgres::{
        MoveError, PreviewState, RecoveryError, RecoveryRequest, Reporters, RewindFailed,
        confirm_preview, current_timeline, ensure_dir, move_preview, preview_from_copy,
        recover_in_place, rewind_in_place, stage_preview, write_owned,
    },
    rewind_keeper::{copy_of, load_record},
};

/// What [`Agent::run_recovery`] does between pausing and resuming the WAL streaming.
pub(super) enum Job<'a> {
    /// A recovery in place, through to the cut-over.
    Recover(&'a RecoverySource),
    /// A preview: stop before the cut-over, the staged copy paused at the target.
    Preview(&'a RecoverySource),
    /// A waiting preview confirmed: promotion, then the cut-over.
    Confirm(PreviewState),
    /// A waiting preview moved on to a later target: move number `seq`. The live instance is
    /// not touched, so its WAL keeps shipping.
    Move {
        state: PreviewState,
        source: &'a MoveSource,
        seq: u32,
    },
}

impl Job<'_> {
    /// The move a job's reports belong to; None outside a move.
    fn move_seq(&self) -> Option<u32> {
        match self {
            Self::Move { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// How a [`Job`] ended well.
pub(super) enum Done {
    Recovered(RecoveryOutcome),
    Previewing(PreviewState),
    /// A move failed, but the preview waits at its old target again.
    Kept(PreviewState, RecoveryError),
}

/// The remembered (and reported) end of one recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Finished {
    pub(super) state: RecoveryState,
    pub(super) phase: RecoveryPhase,
    pub(super) error: Option<String>,
    pub(super) error_code: Option<GuestErrorCode>,
    #[serde(default)]
    pub(super) outcome: Option<RecoveryOutcome>,
}

impl Finished {
    pub(super) fn from_result(result: Result<RecoveryOutcome, RecoveryError>) -> Self {
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
        preview: bool,
        rid: Option<String>,
    ) {
        let _guard = h.op.lock().await;
        let _down = h.disrupt();
        if self.answer_again(h, recovery_id, rid.clone()).await {
            return;
        }
        tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, backup.id = %backup.id, preview, "recovery started");
        let started = std::time::Instant::now();
        let result = match self.recovery_source(h.id, &backup, target.as_ref()) {
            Err(failure) => Err(RecoveryError::new(
                "in-place recovery",
                RecoveryPhase::Fetching,
                failure,
            )),
            Ok(source) => {
                let job = if preview {
                    Job::Preview(&source)
                } else {
                    Job::Recover(&source)
                };
                self.run_recovery(h, recovery_id, job, rid.clone()).await
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let result = match result {
            Ok(Done::Previewing(state)) => {
                tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, duration_ms, port = state.port, "preview ready");
                self.preview_ready(h, recovery_id, state, rid).await;
                return;
            }
            Ok(Done::Recovered(outcome)) => Ok(RecoveryOutcome {
                duration_ms: Some(duration_ms),
                ..outcome
            }),
            Ok(Done::Kept(_, e)) | Err(e) => Err(e),
        };
        self.recovery_finished(h, recovery_id, Finished::from_result(result), rid)
            .await;
    }

    /// Answers a redelivered message for a recovery that finished or waits as a preview with what
    /// was reported then; true if it did.
    pub(super) async fn answer_again(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        rid: Option<String>,
    ) -> bool {
        if let Ok(bytes) = tokio::fs::read(h.recovery_result_path(recovery_id)).await
            && let Ok(done) = serde_json::from_slice::<Finished>(&bytes)
        {
            tracing::info!(recovery.id = %recovery_id, "recovery already finished, reporting again");
            self.send_finished(h.id, recovery_id, &done, rid).await;
            return true;
        }
        if let Some(state) = read_preview(h, recovery_id).await {
            tracing::info!(recovery.id = %recovery_id, "preview already waiting, reporting again");
            self.send_preview(h.id, recovery_id, &state, rid).await;
            return true;
        }
        false
    }

    /// Remembers the waiting preview (a confirm, cancel or move reads it, also after an agent
    /// restart), then reports it.
    pub(super) async fn preview_ready(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        state: PreviewState,
        rid: Option<String>,
    ) {
        let path = h.preview_path(recovery_id);
        let remembered = async {
            if let Some(parent) = path.parent() {
                ensure_dir(parent, 0o700, None).await?;
            }
            write_owned(&path, &serde_json::to_vec(&state)?, 0o600, None).await
        };
        if let Err(e) = remembered.await {
            tracing::warn!(recovery.id = %recovery_id, error = %format!("{e:#}"), "could not remember the preview");
        }
        self.send_preview(h.id, recovery_id, &state, rid).await;
    }

    /// Remembers the end of a recovery (a redelivery is answered from it), forgets its preview
    /// if it had one, and reports the end.
    pub(super) async fn recovery_finished(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        finished: Finished,
        rid: Option<String>,
    ) {
        match &finished.error {
            None => {
                tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, state = %finished.state, "recovery finished")
            }
            Some(e) => {
                tracing::warn!(instance.id = %h.id, recovery.id = %recovery_id, error = %e, "recovery failed, previous data kept")
            }
        }
        let result_path = h.recovery_result_path(recovery_id);
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
        if let Err(e) = remove_if_exists(&h.preview_path(recovery_id)).await {
            tracing::warn!(recovery.id = %recovery_id, error = %format!("{e:#}"), "could not forget the preview");
        }
        self.send_finished(h.id, recovery_id, &finished, rid).await;
    }

    /// Runs `job`, reporting each phase as it starts and the progress every second. WAL
    /// shipping pauses meanwhile: the server changes timeline at cut-over, and the receiver must
    /// follow it. A preview ships again once it waits: the instance keeps serving meanwhile.
    pub(super) async fn run_recovery(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        job: Job<'_>,
        rid: Option<String>,
    ) -> Result<Done, RecoveryError> {
        let move_seq = job.move_seq();
        let last_phase = Mutex::new(if move_seq.is_some() {
            RecoveryPhase::Replaying
        } else {
            RecoveryPhase::Fetching
        });
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
        // A move leaves the live instance alone: its WAL keeps shipping.
        let pauses_streaming = move_seq.is_none();
        if pauses_streaming {
            self.stop_streaming(h).await;
            tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, elapsed_ms = started.elapsed().as_millis() as u64, "WAL streaming paused");
        }
        let reporters = Reporters {
            phase: &phase_cb,
            progress: &progress_cb,
        };
        let history_dest = self.wal_spool(h.id);
        let work = async {
            match job {
                Job::Recover(source) => {
                    let request = source.request();
                    let skipped = match self.try_rewind(h, &request, reporters).await {
                        Ok(outcome) => return Ok(Done::Recovered(outcome)),
                        Err(why) => why,
                    };
                    recover_in_place(&h.cluster, &request, reporters)
                        .await
                        .map(|outcome| {
                            Done::Recovered(RecoveryOutcome {
                                source: Some("backup".to_owned()),
                                rewind_skipped: skipped,
                                ..outcome
                            })
                        })
                }
                Job::Preview(source) => {
                    let request = source.request();
                    if let Some(state) = self.try_rewind_preview(h, &request, reporters).await {
                        return Ok(Done::Previewing(state));
                    }
                    stage_preview(&h.cluster, &request, reporters)
                        .await
                        .map(Done::Previewing)
                }
                Job::Confirm(state) => {
                    // Along a timeline, the new one's history goes to the spool, as in a recovery.
                    let dest = state.timeline.map(|_| history_dest.as_path());
                    confirm_preview(&h.cluster, state, dest, reporters)
                        .await
                        .map(Done::Recovered)
                }
                Job::Move { state, source, .. } => {
                    match move_preview(&h.cluster, state, &source.replay(), reporters).await {
                        Ok(moved) => Ok(Done::Previewing(moved)),
                        Err(MoveError::Kept(state, err)) => Ok(Done::Kept(state, err)),
                        Err(MoveError::Lost(err)) => Err(err),
                    }
                }
            }
        };
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
                self.send_running(h.id, recovery_id, phase, snapshot, move_seq, rid.clone())
                    .await;
            }
        };
        // Whatever happened, the instance runs (new data or its old data): ship its WAL again.
        if pauses_streaming {
            self.start_streaming(h).await;
        }
        // The control plane plans the next point-in-time recovery on the instance's current
        // timeline, so it travels with the outcome instead of waiting for a WAL report.
        let mut outcome = match result? {
            Done::Recovered(outcome) => outcome,
            waiting @ (Done::Previewing(_) | Done::Kept(..)) => return Ok(waiting),
        };
        match current_timeline(&h.cluster).await {
            Ok(tl) => outcome.new_timeline = Some(tl),
            Err(e) => {
                tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "cannot read the timeline after recovery")
            }
        }
        Ok(Done::Recovered(outcome))
    }

    /// Recovers from the delayed copy if the instance keeps one that can reach the target.
    /// Otherwise says why not (None: rewind is off, or the recovery has no point in time), and
    /// the caller restores a backup; a copy that failed half-way has left the instance as it was.
    async fn try_rewind(
        &self,
        h: &Arc<Hosted>,
        request: &RecoveryRequest<'_>,
        reporters: Reporters<'_>,
    ) -> Result<RecoveryOutcome, Option<String>> {
        let Some(replay) = request.replay.as_ref() else {
            return Err(None);
        };
        let Some((copy, applied)) = rewind_copy(h).await else {
            return Err(None);
        };
        match rewind_in_place(&h.cluster, &copy, replay, applied, reporters).await {
            Ok(outcome) => {
                tracing::info!(instance.id = %h.id, "recovered from the delayed copy");
                Ok(outcome)
            }
            Err(RewindFailed::Unusable(why)) => {
                tracing::info!(instance.id = %h.id, reason = %why, "delayed copy not usable; restoring a backup");
                Err(Some(why))
            }
            Err(RewindFailed::Failed(err)) => {
                tracing::warn!(instance.id = %h.id, error = %err, "rewind failed; restoring a backup");
                // The tenant sees the phase and the code; the details (host paths, server log)
                // are in the agent's log.
                Err(Some(format!(
                    "the recovery from the delayed copy failed during phase {} ({}); the instance was left as it was",
                    err.phase, err.code
                )))
            }
        }
    }

    /// A preview made from the delayed copy, if the instance keeps one that can reach the
    /// target; None (the caller restores a backup) otherwise, also after a failed attempt, which
    /// left the instance as it was.
    async fn try_rewind_preview(
        &self,
        h: &Arc<Hosted>,
        request: &RecoveryRequest<'_>,
        reporters: Reporters<'_>,
    ) -> Option<PreviewState> {
        let replay = request.replay.as_ref()?;
        let (copy, applied) = rewind_copy(h).await?;
        match preview_from_copy(&h.cluster, &copy, replay, applied, reporters).await {
            Ok(state) => {
                tracing::info!(instance.id = %h.id, "preview made from the delayed copy");
                Some(state)
            }
            Err(RewindFailed::Unusable(why)) => {
                tracing::info!(instance.id = %h.id, reason = %why, "delayed copy not usable for the preview; restoring a backup");
                None
            }
            Err(RewindFailed::Failed(err)) => {
                tracing::warn!(instance.id = %h.id, error = %err, "preview from the delayed copy failed; restoring a backup");
                None
            }
        }
    }

    /// Progress while the recovery runs; best effort, the next report follows within a second.
    async fn send_running(
        &self,
        instance_id: Uuid,
        recovery_id: Uuid,
        phase: RecoveryPhase,
        progress: Option<RecoveryProgress>,
        move_seq: Option<u32>,
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
            preview: None,
            move_seq,
        };
        self.report_best_effort(msg, rid).await
    }

    /// The preview is ready, retried until the broker has it: the user waits for it. After a
    /// move it carries the move's number, and why the move failed if the preview waits at its
    /// old target again.
    pub(super) async fn send_preview(
        &self,
        instance_id: Uuid,
        recovery_id: Uuid,
        state: &PreviewState,
        rid: Option<String>,
    ) {
        let msg = ConductorMethod::UpdateRecovery {
            instance_id,
            recovery_id,
            sent: epoch_seconds(Utc::now()),
            phase: RecoveryPhase::Preview,
            state: RecoveryState::Preview,
            progress: None,
            error: state.move_error.clone(),
            error_code: state.move_error_code,
            outcome: None,
            preview: Some(PreviewReady {
                port: state.port,
                stop_lsn: state.stop_lsn.clone(),
                last_commit: state.last_commit,
            }),
            move_seq: (state.moves > 0).then_some(state.moves),
        };
        self.report(msg, rid).await
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
            preview: None,
            move_seq: None,
        };
        self.report(msg, rid).await
    }
}

/// The instance's delayed copy and the newest time its data may hold, if rewind is on and the
/// copy was built.
async fn rewind_copy(
    h: &Hosted,
) -> Option<(crate::postgres::Cluster, Option<chrono::DateTime<Utc>>)> {
    let mut keep = h.rewind.lock().await;
    let r = load_record(h, &mut keep).await;
    (r.window_secs > 0 && r.port.is_some()).then(|| (copy_of(h, &r), r.applied()))
}

/// The waiting preview of `recovery_id`, if the agent remembers one.
pub(super) async fn read_preview(h: &Hosted, recovery_id: Uuid) -> Option<PreviewState> {
    let bytes = tokio::fs::read(h.preview_path(recovery_id)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn remove_if_exists(path: &std::path::Path) -> std::io::Result<()> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
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
