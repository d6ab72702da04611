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

use crate::{agent::Agent, hosted::Hosted, postgres::recover_in_place};

/// The remembered outcome of one recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Outcome {
    state: String,
    phase: String,
    error: Option<String>,
    error_code: Option<GuestErrorCode>,
}

fn classify(error: &str) -> GuestErrorCode {
    if error.contains("checksum mismatch") {
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
        _target: Option<RecoveryTarget>,
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
            },
            Ok(archive) => {
                let last_phase = Mutex::new("fetching".to_string());
                let progress = Mutex::new((0u64, 0u64));
                // Phases are reported as they start; the callbacks are sync, so the reports go
                // out from a channel drained alongside the recovery.
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
                let phase_cb = |p: &str| {
                    if let Ok(mut l) = last_phase.lock() {
                        *l = p.to_string();
                    }
                    let _ = tx.send(p.to_string());
                };
                let progress_cb = |done: u64, total: u64| {
                    if let Ok(mut p) = progress.lock() {
                        *p = (done, total);
                    }
                };
                let work = recover_in_place(
                    &h.cluster,
                    &archive,
                    &backup.checksum,
                    &phase_cb,
                    &progress_cb,
                );
                tokio::pin!(work);
                let result = loop {
                    tokio::select! {
                        r = &mut work => break r,
                        Some(p) = rx.recv() => {
                            let (done, total) = progress.lock().map(|g| *g).unwrap_or((0, 0));
                            let running = Outcome { state: "RUNNING".into(), phase: p, error: None, error_code: None };
                            self.send_recovery(h.id, recovery_id, &running, Some(serde_json::json!({"bytes_done": done, "bytes_total": total})), rid.clone(), false).await;
                        }
                    }
                };
                let phase = last_phase.lock().map(|l| l.clone()).unwrap_or_default();
                match result {
                    Ok(()) => Outcome {
                        state: "COMPLETED".into(),
                        phase: "done".into(),
                        error: None,
                        error_code: None,
                    },
                    Err(e) => {
                        let text = format!("{e:#}");
                        Outcome {
                            state: "FAILED".into(),
                            phase,
                            error_code: Some(classify(&text)),
                            error: Some(text),
                        }
                    }
                }
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
        self.send_recovery(
            h.id,
            recovery_id,
            &outcome,
            Some(serde_json::json!({"duration_ms": duration_ms})),
            rid,
            true,
        )
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
