//! `do_recovery`: recover the running instance in place from a backup, reporting each phase, and
//! remembering the outcome so a redelivered message is answered without redoing the work.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use trove_common::{
    rpc::{
        conductor::{ConductorMethod, GuestErrorCode},
        guest::{BackupLocation, RecoveryTarget},
    },
    timefmt::epoch_seconds,
};
use uuid::Uuid;

use crate::{
    agent::Agent,
    hosted::Hosted,
    postgres::{
        RecoveryTarget as PitrTarget, ReplayProgress, current_timeline, recover_in_place,
        recover_in_place_to,
    },
};

/// The remembered outcome of one recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Outcome {
    state: String,
    phase: String,
    error: Option<String>,
    error_code: Option<GuestErrorCode>,
    /// Where a point-in-time recovery stopped: new timeline, last replayed commit, stop LSN.
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

fn classify(error: &str) -> GuestErrorCode {
    if error.contains("verifying_target") || error.contains("recovery target") {
        GuestErrorCode::TargetNotReached
    } else if error.contains("checksum mismatch") {
        GuestErrorCode::ChecksumMismatch
    } else if error.contains("No such file")
        || error.contains("not found")
        || error.contains("does not exist")
    {
        GuestErrorCode::BackupNotFound
    } else if error.contains("health") {
        GuestErrorCode::HealthCheckFailed
    } else if error.contains("start") {
        GuestErrorCode::StartFailed
    } else {
        GuestErrorCode::RestoreFailed
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
            && let Ok(done) = serde_json::from_slice::<Outcome>(&bytes)
        {
            tracing::info!(recovery.id = %recovery_id, "recovery already finished, reporting again");
            self.send_recovery(h.id, recovery_id, &done, None, rid, true)
                .await;
            return;
        }
        tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, backup.id = %backup.id, "recovery started");
        let started = std::time::Instant::now();
        let outcome = match self.store_path(&backup.location) {
            Err(e) => Outcome {
                state: "FAILED".into(),
                phase: "fetching".into(),
                error: Some(format!("{e:#}")),
                error_code: Some(GuestErrorCode::BackupNotFound),
                detail: None,
            },
            Ok(archive) => {
                self.run_recovery(
                    h,
                    recovery_id,
                    &archive,
                    &backup.checksum,
                    target.as_ref(),
                    rid.clone(),
                )
                .await
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        match &outcome.error {
            None => {
                tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, duration_ms, "recovery completed")
            }
            Some(e) => {
                tracing::warn!(instance.id = %h.id, recovery.id = %recovery_id, duration_ms, error = %e, "recovery failed, previous data kept")
            }
        }
        if let Some(parent) = result_path.parent() {
            let _ = tokio::fs::create_dir_all(parent).await;
        }
        if let Ok(bytes) = serde_json::to_vec(&outcome)
            && let Err(e) = tokio::fs::write(&result_path, bytes).await
        {
            tracing::warn!(recovery.id = %recovery_id, error = %e, "could not remember the recovery outcome");
        }
        let mut summary = outcome
            .detail
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        summary["duration_ms"] = serde_json::json!(duration_ms);
        self.send_recovery(h.id, recovery_id, &outcome, Some(summary), rid, true)
            .await;
    }

    /// Runs the recovery (to the end of the backup, or replaying WAL to `target`), reporting each
    /// phase as it starts and the progress every second. WAL shipping pauses meanwhile: the
    /// server changes timeline at cut-over, and the receiver must follow it.
    async fn run_recovery(
        &self,
        h: &Arc<Hosted>,
        recovery_id: Uuid,
        archive: &std::path::Path,
        checksum: &str,
        target: Option<&RecoveryTarget>,
        rid: Option<String>,
    ) -> Outcome {
        let wal_root = match target.map(|t| self.store_path(&t.wal_location)).transpose() {
            Ok(w) => w,
            Err(e) => {
                return Outcome {
                    state: "FAILED".into(),
                    phase: "fetching".into(),
                    error: Some(format!("{e:#}")),
                    error_code: Some(GuestErrorCode::BackupNotFound),
                    detail: None,
                };
            }
        };
        let last_phase = Mutex::new("fetching".to_string());
        let progress = Mutex::new(serde_json::json!({}));
        // The callbacks are sync; a channel wakes the loop below to report a new phase at once.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let started = std::time::Instant::now();
        let phase_cb = |p: &str| {
            if let Ok(mut l) = last_phase.lock() {
                *l = p.to_string();
            }
            // Phase boundaries with their offsets tell an operator where a slow recovery spends time.
            tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, phase = p, elapsed_ms = started.elapsed().as_millis() as u64, "recovery phase");
            let _ = tx.send(());
        };
        let progress_cb = |done: u64, total: u64| {
            if let Ok(mut p) = progress.lock() {
                p["bytes_done"] = done.into();
                p["bytes_total"] = total.into();
            }
        };
        let replay_cb = |r: ReplayProgress| {
            if let Ok(mut p) = progress.lock() {
                p["replayed_lsn"] = r.replayed_lsn.into();
                p["target_lsn"] = r.target_lsn.into();
                p["store_end_lsn"] = r.store_end_lsn.into();
            }
        };
        self.stop_streaming(h).await;
        tracing::info!(instance.id = %h.id, recovery.id = %recovery_id, elapsed_ms = started.elapsed().as_millis() as u64, "WAL streaming paused");
        let work = async {
            match (target, &wal_root) {
                (Some(t), Some(root)) => {
                    let goal = match t.time {
                        Some(time) => PitrTarget::Time(time),
                        None => PitrTarget::Latest,
                    };
                    recover_in_place_to(
                        &h.cluster,
                        archive,
                        checksum,
                        root,
                        goal,
                        t.timeline,
                        &phase_cb,
                        &progress_cb,
                        &replay_cb,
                    )
                    .await
                    .map(|o| {
                        Some(serde_json::json!({
                            "new_timeline": o.new_timeline,
                            "last_replayed_commit": o.last_replayed_commit,
                            "stop_lsn": o.stop_lsn,
                        }))
                    })
                }
                _ => recover_in_place(&h.cluster, archive, checksum, &phase_cb, &progress_cb)
                    .await
                    .map(|()| None),
            }
        };
        tokio::pin!(work);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                Some(()) = rx.recv() => self.send_running(h, recovery_id, &last_phase, &progress, rid.clone()).await,
                _ = tick.tick() => self.send_running(h, recovery_id, &last_phase, &progress, rid.clone()).await,
            }
        };
        // Whatever happened, the instance runs (new data or its old data): ship its WAL again.
        self.start_streaming(h).await;
        let phase = last_phase.lock().map(|l| l.clone()).unwrap_or_default();
        // The control plane plans the next point-in-time recovery on the instance's current
        // timeline, so the new one travels with the outcome instead of waiting for a WAL report.
        let result = match result {
            Ok(detail) => {
                let mut detail = detail.unwrap_or_else(|| serde_json::json!({}));
                match current_timeline(&h.cluster).await {
                    Ok(tl) => detail["new_timeline"] = tl.into(),
                    Err(e) => {
                        tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "cannot read the timeline after recovery")
                    }
                }
                Ok(Some(detail))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(detail) => Outcome {
                state: "COMPLETED".into(),
                phase: "done".into(),
                error: None,
                error_code: None,
                detail,
            },
            Err(e) => {
                let text = format!("{e:#}");
                Outcome {
                    state: "FAILED".into(),
                    phase,
                    error_code: Some(classify(&text)),
                    error: Some(text),
                    detail: None,
                }
            }
        }
    }

    async fn send_running(
        &self,
        h: &Hosted,
        recovery_id: Uuid,
        phase: &Mutex<String>,
        progress: &Mutex<serde_json::Value>,
        rid: Option<String>,
    ) {
        let phase = phase.lock().map(|p| p.clone()).unwrap_or_default();
        let snapshot = progress.lock().map(|p| p.clone()).ok();
        let running = Outcome {
            state: "RUNNING".into(),
            phase,
            error: None,
            error_code: None,
            detail: None,
        };
        self.send_recovery(h.id, recovery_id, &running, snapshot, rid, false)
            .await;
    }

    async fn send_recovery(
        &self,
        instance_id: Uuid,
        recovery_id: Uuid,
        o: &Outcome,
        progress: Option<serde_json::Value>,
        rid: Option<String>,
        reliable: bool,
    ) {
        let msg = ConductorMethod::UpdateRecovery {
            instance_id,
            recovery_id,
            sent: epoch_seconds(Utc::now()),
            phase: o.phase.clone(),
            state: o.state.clone(),
            progress,
            error: o.error.clone(),
            error_code: o.error_code,
        };
        if reliable {
            self.report(msg, rid).await
        } else {
            self.report_best_effort(msg, rid).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_errors_are_classified() {
        assert_eq!(
            classify(
                "in-place recovery failed during phase verifying: checksum mismatch: expected a got b"
            ),
            GuestErrorCode::ChecksumMismatch
        );
    }
}
