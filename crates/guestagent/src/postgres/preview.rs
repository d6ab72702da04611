//! A preview of an in-place recovery: the staged copy replayed to its target and left running,
//! paused there in hot standby (read-only), on a port of its own with the instance's listen
//! addresses and client rules, while the instance keeps serving. Confirmed, it is promoted and
//! cut over exactly as a recovery without a preview; cancelled, it is stopped and removed.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trove_common::{
    recovery::RecoveryOutcome, rpc::conductor::GuestErrorCode, status::RecoveryPhase,
};

use super::allocate_port;
use super::cluster::Cluster;
use super::error::{Failure, RecoveryError};
use super::recover::restore_staged;
use super::replay::{promote_preview, replay_and_pause, replay_position};
use super::request::{RecoveryRequest, Reporters};
use super::restore_command::remove_script;
use super::staging::{Swap, discard_staging, fail_with_rollback, preview_cluster, timed_cut_over};
use super::steps::Steps;

const WHAT: &str = "in-place recovery";

/// What a waiting preview needs to be confirmed or cancelled later, also by an agent that
/// restarted meanwhile (the preview's server outlives the agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewState {
    /// Where the preview listens, on the instance's own addresses.
    pub port: u16,
    /// The timeline replay followed; None for the end of a backup.
    pub timeline: Option<u32>,
    /// The number of the last move applied (0: none), so a redelivered move is answered from
    /// here instead of being applied again.
    #[serde(default)]
    pub moves: u32,
    /// Where replay paused (`X/Y`) and the last commit it replayed: a move must go past them.
    #[serde(default)]
    pub stop_lsn: Option<String>,
    #[serde(default)]
    pub last_commit: Option<DateTime<Utc>>,
    /// Why the last move failed, when the preview waits at its old target again: reported
    /// with it each time, so a report repeated for a redelivered move says the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_error_code: Option<GuestErrorCode>,
    /// `rewind` when the preview was made from the delayed copy (None: from a backup); the
    /// confirmed recovery's outcome says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl PreviewState {
    /// The preview of `port` along `timeline`, paused where `staging`'s replay stands now.
    pub(super) async fn paused(staging: &Cluster, port: u16, timeline: Option<u32>) -> Self {
        // Best effort: without it, the control plane checks a move against the target alone.
        let (stop_lsn, last_commit) = match replay_position(staging).await {
            Ok((lsn, last)) => (Some(lsn), last),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "cannot read where the preview paused");
                (None, None)
            }
        };
        Self {
            port,
            timeline,
            moves: 0,
            stop_lsn,
            last_commit,
            move_error: None,
            move_error_code: None,
            source: None,
        }
    }
}

/// Builds the preview `request` asks for beside `cluster`'s live data: phases `fetching`,
/// `verifying`, `replaying` and, with a target, `verifying_target`. On failure the staged copy is
/// removed and the live instance is left as it was.
pub async fn stage_preview(
    cluster: &Cluster,
    request: &RecoveryRequest<'_>,
    reporters: Reporters<'_>,
) -> Result<PreviewState, RecoveryError> {
    let mut steps = Steps::new(reporters);
    let port = allocate_port().map_err(|e| steps.failed(WHAT, e.into()))?;
    let staging = preview_cluster(cluster, port);
    let was_running = cluster.is_running().await;
    let staged = async {
        let fetching = restore_staged(cluster, &staging, request, &mut steps).await?;
        replay_and_pause(&staging, request.replay.as_ref(), fetching, &mut steps).await
    }
    .await;
    match staged {
        Ok(()) => {
            Ok(
                PreviewState::paused(&staging, port, request.replay.as_ref().map(|r| r.timeline))
                    .await,
            )
        }
        Err(failure) => {
            let err = steps.failed(WHAT, failure);
            let err =
                fail_with_rollback(cluster, &staging, &Swap::default(), was_running, err).await;
            forget_script(&staging).await;
            Err(err)
        }
    }
}

/// Confirms the waiting preview `state`: phases `promoting` (its paused replay ends, the
/// promotion checked as for any recovery; the new timeline's history into `history_dest`),
/// `cutting_over` and `health_check`, with the rollback of any recovery in place. The outcome
/// carries the cut-over's downtime.
pub async fn confirm_preview(
    cluster: &Cluster,
    state: PreviewState,
    history_dest: Option<&Path>,
    reporters: Reporters<'_>,
) -> Result<RecoveryOutcome, RecoveryError> {
    let mut steps = Steps::new(reporters);
    let staging = preview_cluster(cluster, state.port);
    let was_running = cluster.is_running().await;
    let mut swap = Swap::default();
    let confirmed = async {
        steps.enter(RecoveryPhase::Promoting);
        if !staging.is_running().await {
            return Err(Failure::new(
                GuestErrorCode::StartFailed,
                anyhow::anyhow!("the preview's server is not running"),
            ));
        }
        let outcome = promote_preview(&staging, state.timeline, history_dest).await?;
        // A clean shutdown leaves a checkpointed copy that starts without crash recovery.
        staging.stop().await?;
        let downtime_ms = timed_cut_over(cluster, &staging, &mut swap, &mut steps).await?;
        Ok(RecoveryOutcome {
            downtime_ms: Some(downtime_ms),
            source: Some(state.source.clone().unwrap_or_else(|| "backup".to_owned())),
            ..outcome
        })
    }
    .await;
    match confirmed {
        Ok(outcome) => Ok(outcome),
        Err(failure) => {
            let err = steps.failed(WHAT, failure);
            let err = fail_with_rollback(cluster, &staging, &swap, was_running, err).await;
            forget_script(&staging).await;
            Err(err)
        }
    }
}

/// Stops the preview's server, if it runs, and removes its staged copy; the live data is never
/// touched. Also clears what a preview the agent knows nothing about left behind.
pub async fn cancel_preview(cluster: &Cluster) -> anyhow::Result<()> {
    // The port does not matter for stopping: `pg_ctl stop` finds the server by its directory.
    let staging = preview_cluster(cluster, cluster.spec().port);
    discard_staging(&staging).await?;
    remove_script(&staging.spec().data_dir).await
}

/// Removes the restore command script a failed preview may leave beside its (removed) copy.
pub(super) async fn forget_script(staging: &Cluster) {
    if let Err(err) = remove_script(&staging.spec().data_dir).await {
        tracing::warn!(error = %format!("{err:#}"), "could not remove the restore command script");
    }
}
