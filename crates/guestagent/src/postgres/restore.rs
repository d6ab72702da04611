//! Bringing up a NEW instance from a backup, to the end of the backup or on to a point in time in
//! another instance's WAL (docs/postgres-recovery.md §3.8 A). The same replay as a recovery in
//! place, without the swap.

use trove_common::{
    recovery::RecoveryOutcome, rpc::conductor::GuestErrorCode, status::RecoveryPhase,
};

use super::archive::restore_backup;
use super::cluster::Cluster;
use super::error::{FailAs as _, Failure, RecoveryError};
use super::os_user::remove_dir_if_exists;
use super::replay::{Fetching, HEALTH_DEADLINE, replay_and_promote};
use super::request::{RecoveryRequest, Reporters};
use super::sibling;
use super::steps::Steps;

const WHAT: &str = "restore of a new instance";

/// Restores `request.archive` from the store into `cluster`'s (absent) data directory and
/// recovers it as `request` asks. The source's WAL in the store is only read. The server runs privately (no TCP) until it
/// is promoted and healthy, then restarts reachable by tenants. On failure the server is stopped
/// and the half-restored data directory removed, so a redelivered request can start over.
pub async fn restore_new(
    cluster: &Cluster,
    request: &RecoveryRequest<'_>,
    reporters: Reporters<'_>,
) -> Result<RecoveryOutcome, RecoveryError> {
    let mut steps = Steps::new(reporters);
    match run(cluster, request, &mut steps).await {
        Ok(outcome) => Ok(outcome),
        Err(failure) => {
            discard_failed_restore(cluster).await;
            Err(steps.failed(WHAT, failure))
        }
    }
}

async fn run(
    cluster: &Cluster,
    request: &RecoveryRequest<'_>,
    steps: &mut Steps<'_>,
) -> Result<RecoveryOutcome, Failure> {
    steps.enter(RecoveryPhase::Fetching);
    cluster.prepare_aux_dirs().await?;
    // The WAL replay will need starts coming while the archive streams in.
    let progress = |done, total| steps.bytes(done, total);
    let (fetching, restored) = tokio::join!(
        async {
            match &request.replay {
                Some(replay) => Fetching::start(cluster, replay, Some(&request.archive))
                    .await
                    .map(Some),
                None => Ok(None),
            }
        },
        restore_backup(
            cluster.runner(),
            request.archive,
            &cluster.spec().data_dir,
            &progress,
        )
    );
    restored?;
    let fetching = fetching?;
    steps.enter(RecoveryPhase::Verifying);
    let outcome = replay_and_promote(cluster, request.replay.as_ref(), fetching, steps).await?;

    // Restart with the normal configuration, reachable by tenants.
    steps.enter(RecoveryPhase::HealthCheck);
    cluster.stop().await?;
    cluster.start().await.fail_as(GuestErrorCode::StartFailed)?;
    cluster
        .wait_healthy(HEALTH_DEADLINE)
        .await
        .fail_as(GuestErrorCode::HealthCheckFailed)?;
    Ok(outcome)
}

/// Stops the server of a failed new-instance restore and removes its data directory, so a
/// redelivered request can start over. Best effort: the caller reports the original error.
async fn discard_failed_restore(cluster: &Cluster) {
    let data_dir = &cluster.spec().data_dir;
    if let Err(stop_err) = cluster.stop().await {
        tracing::warn!(error = %format!("{stop_err:#}"), "could not stop a failed restore");
    }
    // Move aside first: removal of a large tree is not atomic, and a half-deleted data
    // directory must not be mistaken for a restored one.
    let doomed = sibling(data_dir, "failed");
    let _ = remove_dir_if_exists(&doomed).await;
    if tokio::fs::rename(data_dir, &doomed).await.is_ok() {
        let _ = remove_dir_if_exists(&doomed).await;
    }
}
