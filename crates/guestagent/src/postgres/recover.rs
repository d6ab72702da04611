//! Recovery of a running instance in place, to the end of a backup or on to a point in time, with
//! automatic rollback (docs/postgres-recovery.md §3.3 and §3.8 B).

use trove_common::{recovery::RecoveryOutcome, status::RecoveryPhase};

use super::archive::restore_backup;
use super::cluster::Cluster;
use super::error::{Failure, RecoveryError};
use super::replay::{Fetching, replay_and_promote};
use super::request::{RecoveryRequest, Reporters};
use super::staging::{
    Swap, carry_timeline_history, discard_staging, fail_with_rollback, staging_cluster,
    timed_cut_over,
};
use super::steps::Steps;

const WHAT: &str = "in-place recovery";

/// Recovers a running instance in place as `request` asks.
///
/// The recovered copy is built and proven beside the live data directory while the instance keeps
/// serving; only then is the instance stopped and the directories swapped. The old directory is
/// never written to and is kept as `<data_dir>.old` afterwards (a pre-recovery restore point). If
/// any step fails, the original directory is put back and restarted, the staging copy is removed,
/// and the error names the phase that failed and the kind of failure.
///
/// Phases: `fetching` (the archive streams from the store into the staging directory, checked
/// against its sha256 on the way), `verifying` (with a target, WAL continuity from the backup's
/// start in the store), `replaying`, with a target `verifying_target` (stop point checked, then
/// promotion to a new timeline whose `.history` goes to `replay.history_dest`), `cutting_over`,
/// `health_check`.
pub async fn recover_in_place(
    cluster: &Cluster,
    request: &RecoveryRequest<'_>,
    reporters: Reporters<'_>,
) -> Result<RecoveryOutcome, RecoveryError> {
    let mut steps = Steps::new(reporters);
    let staging = staging_cluster(cluster).map_err(|e| steps.failed(WHAT, e.into()))?;
    let was_running = cluster.is_running().await;
    let mut swap = Swap::default();
    let outcome = run(cluster, &staging, request, &mut steps, &mut swap).await;
    match outcome {
        Ok(outcome) => Ok(outcome),
        Err(failure) => {
            let err = steps.failed(WHAT, failure);
            Err(fail_with_rollback(cluster, &staging, &swap, was_running, err).await)
        }
    }
}

async fn run(
    cluster: &Cluster,
    staging: &Cluster,
    request: &RecoveryRequest<'_>,
    steps: &mut Steps<'_>,
    swap: &mut Swap,
) -> Result<RecoveryOutcome, Failure> {
    let fetching = restore_staged(cluster, staging, request, steps).await?;
    let outcome = replay_and_promote(staging, request.replay.as_ref(), fetching, steps).await?;
    // A clean shutdown leaves a checkpointed copy that starts without crash recovery.
    staging.stop().await?;
    let downtime_ms = timed_cut_over(cluster, staging, swap, steps).await?;
    Ok(RecoveryOutcome {
        downtime_ms: Some(downtime_ms),
        ..outcome
    })
}

/// The phases `fetching` and `verifying`: the backup unpacked into `staging` (a leftover staging
/// directory removed first), with the live instance's timeline histories carried over. Returns
/// the replay's WAL, already on its way.
pub(super) async fn restore_staged(
    cluster: &Cluster,
    staging: &Cluster,
    request: &RecoveryRequest<'_>,
    steps: &mut Steps<'_>,
) -> Result<Option<Fetching>, Failure> {
    let staging_dir = staging.spec().data_dir.clone();

    steps.enter(RecoveryPhase::Fetching);
    // A staging directory left by a crash mid-recovery is worthless: its state is unknown.
    discard_staging(staging).await?;
    // The WAL replay will need starts coming while the archive streams in.
    let progress = |done, total| steps.bytes(done, total);
    let (fetching, restored) = tokio::join!(
        async {
            match &request.replay {
                Some(replay) => Fetching::start(staging, replay, Some(&request.archive))
                    .await
                    .map(Some),
                None => Ok(None),
            }
        },
        restore_backup(cluster.runner(), request.archive, &staging_dir, &progress,)
    );
    restored?;
    let fetching = fetching?;

    steps.enter(RecoveryPhase::Verifying);
    carry_timeline_history(cluster, &staging_dir).await?;
    Ok(fetching)
}
