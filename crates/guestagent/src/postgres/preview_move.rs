//! Moving a waiting preview on to a later target without starting over: its paused server is
//! stopped, given the new target and a restore command serving the store's WAL again, and
//! started; it replays on from its last restartpoint (the backup is not fetched again) until it
//! pauses at the new target, which is proven as the first replay proves its stop point. The live
//! instance is never touched.
//!
//! Until the server starts with the new target, any failure puts the preview back, paused at its
//! old target ([`MoveError::Kept`]); once replay went on past the old target there is no way
//! back, and a failure discards the preview ([`MoveError::Lost`]). A move an agent restart
//! interrupted is taken up again by its redelivery: a stopped server first waits where its
//! settings say, and settings that already name the new target are carried through.

use anyhow::{Context as _, anyhow};
use sqlx::{Connection as _, PgConnection};
use trove_common::{recovery::StopPoint, rpc::conductor::GuestErrorCode, status::RecoveryPhase};

use super::cluster::Cluster;
use super::control_file::restart_point;
use super::error::{FailAs as _, Failure, RecoveryError};
use super::preview::{PreviewState, forget_script};
use super::recovery_conf::names_target;
use super::replay::{
    Fetching, HEALTH_DEADLINE, end_fetching, replay_position, replay_to_pause, wait_paused,
};
use super::request::{Replay, Reporters};
use super::staging::{discard_staging, preview_cluster};
use super::steps::Steps;
use super::wal_index::parse_lsn;
use super::wal_plan::preflight_from;

const WHAT: &str = "preview move";

/// How a move failed.
#[derive(Debug)]
pub enum MoveError {
    /// The preview waits at its old target again (`state`, as before the move).
    Kept(PreviewState, RecoveryError),
    /// The preview is gone (its server stopped, its copy removed); the live instance is as it was.
    Lost(RecoveryError),
}

/// Moves the waiting preview `state` of `cluster` on to `replay`'s target, which must lie past
/// where it paused: phases `replaying` and `verifying_target`. Returns the preview waiting at the
/// new target, on the same port.
pub async fn move_preview(
    cluster: &Cluster,
    state: PreviewState,
    replay: &Replay<'_>,
    reporters: Reporters<'_>,
) -> Result<PreviewState, MoveError> {
    let mut steps = Steps::new(reporters);
    let staging = preview_cluster(cluster, state.port);
    steps.enter(RecoveryPhase::Replaying);
    // A move an agent restart interrupted after the server got this target is taken up again:
    // its replay may already be at or past the target, which is no refusal then, and there is
    // no old target left to go back to.
    let resumed = names_target(&staging, replay.stop).await;
    let prepared = async {
        // A server found stopped (an agent restart interrupted a move, or the host rebooted)
        // first waits where its settings say, as the preview did.
        if !staging.is_running().await {
            wait_where_configured(&staging)
                .await
                .fail_as(GuestErrorCode::StartFailed)?;
        }
        if !resumed {
            ensure_later(&staging, replay.stop).await?;
        }
        // A clean shutdown of the paused server writes a restartpoint: replay resumes there.
        staging.stop().await?;
        let fetching = Fetching::start(&staging, replay, None).await?;
        let start = restart_point(&staging).await?;
        match preflight_from(
            &staging,
            replay,
            &fetching.fetched,
            (start.redo, start.timeline),
        )
        .await
        {
            Ok(plan) => Ok((fetching, plan)),
            Err(failure) => {
                drop(fetching);
                Err(failure)
            }
        }
    }
    .await;
    let (fetching, plan) = match prepared {
        Ok(prepared) => prepared,
        Err(failure) if !resumed => {
            let err = steps.failed(WHAT, failure);
            return Err(put_back(&staging, state, err).await);
        }
        Err(failure) => {
            let err = steps.failed(WHAT, failure);
            discard(&staging).await;
            return Err(MoveError::Lost(err));
        }
    };
    // From here replay goes past the old target: no way back.
    let moved = replay_to_pause(&staging, replay, &plan, &fetching, &mut steps).await;
    end_fetching(&staging, fetching).await;
    let moved = match moved {
        Ok(()) => staging
            .wait_healthy(HEALTH_DEADLINE)
            .await
            .fail_as(GuestErrorCode::HealthCheckFailed),
        Err(failure) => Err(failure),
    };
    match moved {
        Ok(()) => {
            let now = PreviewState::paused(&staging, state.port, Some(replay.timeline)).await;
            Ok(PreviewState {
                moves: state.moves,
                source: state.source.clone(),
                ..now
            })
        }
        Err(failure) => {
            let err = steps.failed(WHAT, failure);
            discard(&staging).await;
            Err(MoveError::Lost(err))
        }
    }
}

/// Stops the preview's server and removes its copy and script: the recovery fails, the live
/// instance was never touched.
async fn discard(staging: &Cluster) {
    if let Err(e) = discard_staging(staging).await {
        tracing::warn!(error = %format!("{e:#}"), "could not remove the preview's copy");
    }
    forget_script(staging).await;
}

/// Starts the preview's server, if it is stopped, with the settings it has and waits until its
/// replay pauses there and it answers.
async fn wait_where_configured(staging: &Cluster) -> anyhow::Result<()> {
    if !staging.is_running().await {
        staging.start().await?;
    }
    wait_paused(staging).await?;
    staging.wait_healthy(HEALTH_DEADLINE).await
}

/// Brings the preview back to where it waited (its server restarted with the paused settings,
/// which still name the old target), or discards it when that fails too.
async fn put_back(staging: &Cluster, state: PreviewState, err: RecoveryError) -> MoveError {
    match wait_where_configured(staging).await {
        Ok(()) => MoveError::Kept(state, err),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the preview could not wait at its old target again; discarding it");
            discard(staging).await;
            MoveError::Lost(err)
        }
    }
}

/// Refuses a target the paused replay is already at or past: PostgreSQL would stop at once, or
/// (for a transaction that already ended) never, replaying to the end of the WAL. The control
/// plane checked times and LSNs against what was reported; this reads the server itself.
async fn ensure_later(staging: &Cluster, stop: StopPoint) -> Result<(), Failure> {
    let (lsn, last_commit) = replay_position(staging).await?;
    let paused = parse_lsn(&lsn)?;
    let refuse = |why: String| {
        Err(Failure::new(
            GuestErrorCode::TargetNotReached,
            anyhow!("{why}; a preview only moves forward (paused at {lsn})"),
        ))
    };
    match stop {
        StopPoint::Latest => refuse("\"latest\" is no target replay can pause at".into()),
        StopPoint::Time(t) => match last_commit {
            Some(last) if last >= t => refuse(format!(
                "the target time {t} is not after the last commit replayed ({last})"
            )),
            _ => Ok(()),
        },
        StopPoint::Lsn(l) | StopPoint::RestorePoint { lsn: l, .. } if l <= paused => {
            refuse(format!(
                "the target {} is not after the pause",
                super::wal_index::format_lsn(l)
            ))
        }
        StopPoint::Lsn(_) | StopPoint::RestorePoint { .. } => Ok(()),
        StopPoint::Xid { xid, .. } => match xact_ended(staging, xid).await {
            Ok(Some(status)) => refuse(format!(
                "transaction {xid} is {status} already, before the pause"
            )),
            Ok(None) => Ok(()),
            // Unknown is not a refusal: replay then fails at the end of the WAL, as any replay
            // to a transaction that never comes does.
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), xid, "cannot tell whether the target transaction ended");
                Ok(())
            }
        },
    }
}

/// `committed` or `aborted` when transaction `xid` (32 bits, as a target names it) ended in the
/// WAL the paused server replayed; None when it did not (yet). The epoch comes from the
/// server's snapshot: the newest epoch whose xid is below the snapshot's `xmax`.
async fn xact_ended(staging: &Cluster, xid: u32) -> anyhow::Result<Option<String>> {
    let mut conn: PgConnection = staging.connect().await?;
    let xmax: String = sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
        .fetch_one(&mut conn)
        .await
        .context("reading the paused server's snapshot")?;
    let xmax: u64 = xmax.parse().context("an xmax that is not a number")?;
    let Some(full) = full_xid(xmax, xid) else {
        let _ = conn.close().await;
        return Ok(None);
    };
    let status: Option<String> = sqlx::query_scalar("SELECT pg_xact_status($1::text::xid8)")
        .bind(full.to_string())
        .fetch_one(&mut conn)
        .await
        .context("reading the target transaction's status")?;
    let _ = conn.close().await;
    Ok(status.filter(|s| s == "committed" || s == "aborted"))
}

/// The 64-bit id of `xid` as of a snapshot whose `xmax` is given, if it lies before `xmax` (an
/// id at or past it has not ended in what was replayed). As PostgreSQL compares xids: modulo
/// 2^32, within 2^31 of each other.
fn full_xid(xmax: u64, xid: u32) -> Option<u64> {
    let low = (xmax & u64::from(u32::MAX)) as u32;
    let behind = low.wrapping_sub(xid);
    if behind == 0 || behind > i32::MAX.unsigned_abs() {
        return None;
    }
    xmax.checked_sub(u64::from(behind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_transaction_is_placed_in_the_snapshots_epoch() {
        assert_eq!(full_xid(800, 735), Some(735));
        assert_eq!(full_xid(800, 800), None);
        assert_eq!(full_xid(800, 900), None);
        let xmax = (2u64 << 32) | 100;
        assert_eq!(full_xid(xmax, 50), Some((2 << 32) | 50));
        assert_eq!(
            full_xid(xmax, 4_000_000_000),
            Some((1 << 32) | 4_000_000_000)
        );
    }
}
