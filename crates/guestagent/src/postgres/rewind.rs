//! Rewind: a recovery in place to a point inside the delayed copy's window, from the copy
//! instead of a base backup. The copy is stopped where it stands, moved into the staging place,
//! replays only the gap from its position to the target out of its own `pg_wal`, and is then
//! proven, promoted and cut over exactly like any recovery in place (docs/postgres-recovery.md,
//! "Rewind"). A preview can start from the copy the same way.

use std::time::Duration;

use chrono::{DateTime, Utc};
use trove_common::{recovery::RecoveryOutcome, recovery::StopPoint, status::RecoveryPhase};

use super::allocate_port;
use super::cluster::Cluster;
use super::error::{Failure, RecoveryError};
use super::preview::PreviewState;
use super::replay::{replay_local_and_promote, replay_local_to_pause};
use super::request::{Replay, Reporters};
use super::rewind_copy::{
    CopyPosition, pause_copy, primary_flush_lsn, probe_copy, wait_received, xid_applied,
};
use super::staging::{
    Swap, carry_timeline_history, discard_staging, fail_with_rollback, preview_cluster,
    staging_cluster, timed_cut_over,
};
use super::steps::Steps;
use super::wal_stream::current_timeline;

const WHAT: &str = "rewind";
/// How long the copy may take to receive the primary's WAL up to the moment the rewind began.
/// It streams as the primary writes, so this is milliseconds unless the copy is broken.
const CATCH_UP: Duration = Duration::from_secs(10);

/// Why a rewind did not recover the instance.
pub enum RewindFailed {
    /// The copy cannot reach the target (it applied past it, follows another timeline, or is not
    /// running): nothing was touched and the copy keeps running.
    Unusable(String),
    /// The copy was used and the attempt failed: the live instance was put back as it was; the
    /// copy is gone (it is rebuilt).
    Failed(RecoveryError),
}

/// Whether the copy at `position` (its data no newer than `applied_until`) can stop at `stop`
/// along `timeline`: it must follow that timeline and not have applied past the target. A
/// transaction id has no position to compare; the caller asks the copy whether it applied it
/// ([`xid_applied`]), and where the copy cannot tell, PostgreSQL itself refuses to stop before
/// the copy's consistent point, and the caller then restores a backup.
pub fn reaches(
    position: &CopyPosition,
    applied_until: Option<DateTime<Utc>>,
    stop: StopPoint,
    timeline: u32,
) -> Result<(), String> {
    if position.timeline != timeline {
        return Err(format!(
            "the delayed copy follows timeline {}, the recovery timeline {timeline}",
            position.timeline
        ));
    }
    match stop {
        StopPoint::Latest => Err("\"latest\" needs no rewind".to_owned()),
        StopPoint::Time(target) => match applied_until {
            Some(applied) if applied < target => Ok(()),
            Some(applied) => Err(format!(
                "the delayed copy has applied up to {applied}, past the target {target}"
            )),
            None => Err("the delayed copy's position in time is unknown".to_owned()),
        },
        StopPoint::Lsn(target) | StopPoint::RestorePoint { lsn: target, .. } => {
            match position.replayed {
                Some(replayed) if replayed < target => Ok(()),
                _ => Err("the delayed copy has applied past the target LSN".to_owned()),
            }
        }
        StopPoint::Xid { .. } => Ok(()),
    }
}

/// Recovers `live` in place to `replay`'s target from the delayed copy `copy`, whose data is no
/// newer than `applied_until`. Phases: `verifying` (the copy checked, paused, caught up with the
/// primary and stopped), `replaying`, `verifying_target`, `cutting_over`, `health_check`.
pub async fn rewind_in_place(
    live: &Cluster,
    copy: &Cluster,
    replay: &Replay<'_>,
    applied_until: Option<DateTime<Utc>>,
    reporters: Reporters<'_>,
) -> Result<RecoveryOutcome, RewindFailed> {
    let mut steps = Steps::new(reporters);
    steps.enter(RecoveryPhase::Verifying);
    let wal_end = hold_copy(live, copy, replay, applied_until).await?;
    let staging =
        staging_cluster(live).map_err(|e| RewindFailed::Failed(steps.failed(WHAT, e.into())))?;
    let was_running = live.is_running().await;
    let mut swap = Swap::default();
    let result = async {
        take_copy(live, copy, &staging).await?;
        let outcome = replay_local_and_promote(&staging, replay, wal_end, &mut steps).await?;
        staging.stop().await?;
        let downtime_ms = timed_cut_over(live, &staging, &mut swap, &mut steps).await?;
        Ok::<_, Failure>(RecoveryOutcome {
            downtime_ms: Some(downtime_ms),
            source: Some("rewind".to_owned()),
            ..outcome
        })
    }
    .await;
    match result {
        Ok(outcome) => Ok(outcome),
        Err(failure) => {
            let err = steps.failed(WHAT, failure);
            Err(RewindFailed::Failed(
                fail_with_rollback(live, &staging, &swap, was_running, err).await,
            ))
        }
    }
}

/// Builds the preview `replay` asks for from the delayed copy instead of a backup: phases
/// `verifying` (as for a rewind), `replaying` and `verifying_target`; the copy ends paused at the
/// target, read-only, on a port of its own with the instance's addresses and client rules, and
/// is confirmed, moved or cancelled like any preview. The live instance is never touched.
pub async fn preview_from_copy(
    live: &Cluster,
    copy: &Cluster,
    replay: &Replay<'_>,
    applied_until: Option<DateTime<Utc>>,
    reporters: Reporters<'_>,
) -> Result<PreviewState, RewindFailed> {
    let mut steps = Steps::new(reporters);
    steps.enter(RecoveryPhase::Verifying);
    if !replay.stop.pauses() {
        return Err(RewindFailed::Unusable(
            "\"latest\" cannot be previewed".to_owned(),
        ));
    }
    let wal_end = hold_copy(live, copy, replay, applied_until).await?;
    let port = allocate_port().map_err(|e| RewindFailed::Failed(steps.failed(WHAT, e.into())))?;
    let staging = preview_cluster(live, port);
    let was_running = live.is_running().await;
    let result = async {
        take_copy(live, copy, &staging).await?;
        replay_local_to_pause(&staging, replay, wal_end, &mut steps).await
    }
    .await;
    match result {
        Ok(()) => Ok(PreviewState {
            source: Some("rewind".to_owned()),
            ..PreviewState::paused(&staging, port, Some(replay.timeline)).await
        }),
        Err(failure) => {
            let err = steps.failed(WHAT, failure);
            Err(RewindFailed::Failed(
                fail_with_rollback(live, &staging, &Swap::default(), was_running, err).await,
            ))
        }
    }
}

/// Stops the copy (fast: a restartpoint, where its replay continues) and moves it into
/// `staging`'s place, with the live timeline histories carried over (§3.4).
async fn take_copy(live: &Cluster, copy: &Cluster, staging: &Cluster) -> Result<(), Failure> {
    copy.stop().await?;
    discard_staging(staging).await?;
    tokio::fs::rename(&copy.spec().data_dir, &staging.spec().data_dir)
        .await
        .map_err(anyhow::Error::from)?;
    carry_timeline_history(live, &staging.spec().data_dir).await?;
    Ok(())
}

/// Checks that the copy can reach the target, pauses its replay (it must not move past the
/// target meanwhile) and waits until it has received the primary's WAL written so far, which
/// holds every commit up to now. Returns that WAL's end. On any refusal the copy resumes.
async fn hold_copy(
    live: &Cluster,
    copy: &Cluster,
    replay: &Replay<'_>,
    applied_until: Option<DateTime<Utc>>,
) -> Result<u64, RewindFailed> {
    // The reason reaches the tenant (the recovery's outcome): the details, which name host paths,
    // stay in the agent's log.
    let unusable = |e: anyhow::Error| {
        tracing::info!(error = %format!("{e:#}"), "the delayed copy could not be checked");
        RewindFailed::Unusable("the delayed copy could not be checked".to_owned())
    };
    if !copy.is_running().await {
        return Err(RewindFailed::Unusable(
            "the delayed copy is not running".to_owned(),
        ));
    }
    let live_timeline = current_timeline(live).await.map_err(unusable)?;
    if live_timeline != replay.timeline {
        return Err(RewindFailed::Unusable(format!(
            "the target lies on timeline {}, before the instance's last recovery",
            replay.timeline
        )));
    }
    pause_copy(copy, true).await.map_err(unusable)?;
    let held = async {
        let position = probe_copy(copy).await.map_err(unusable)?;
        let applied = applied_until.max(position.last_commit);
        reaches(&position, applied, replay.stop, replay.timeline)
            .map_err(RewindFailed::Unusable)?;
        if let StopPoint::Xid { xid, .. } = replay.stop
            && xid_applied(copy, xid).await == Some(true)
        {
            return Err(RewindFailed::Unusable(format!(
                "the delayed copy has applied transaction {xid} already"
            )));
        }
        let end = primary_flush_lsn(live).await.map_err(unusable)?;
        wait_received(copy, end, CATCH_UP).await.map_err(unusable)?;
        Ok(end)
    }
    .await;
    if held.is_err()
        && let Err(e) = pause_copy(copy, false).await
    {
        tracing::warn!(error = %format!("{e:#}"), "could not resume the delayed copy");
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0)
            .single()
            .expect("time")
    }

    fn position(timeline: u32, replayed: u64) -> CopyPosition {
        CopyPosition {
            received: Some(replayed + 100),
            replayed: Some(replayed),
            last_commit: None,
            timeline,
            paused: true,
        }
    }

    #[test]
    fn the_copy_serves_only_targets_it_has_not_applied_past() {
        let p = position(3, 0x500);
        assert!(reaches(&p, Some(at(0)), StopPoint::Time(at(10)), 3).is_ok());
        assert!(reaches(&p, Some(at(10)), StopPoint::Time(at(10)), 3).is_err());
        assert!(reaches(&p, None, StopPoint::Time(at(10)), 3).is_err());
        assert!(reaches(&p, Some(at(0)), StopPoint::Time(at(10)), 2).is_err());
        assert!(reaches(&p, None, StopPoint::Lsn(0x501), 3).is_ok());
        assert!(reaches(&p, None, StopPoint::Lsn(0x500), 3).is_err());
        assert!(reaches(&p, None, StopPoint::Latest, 3).is_err());
        let xid = StopPoint::Xid {
            xid: 7,
            inclusive: false,
        };
        assert!(reaches(&p, None, xid, 3).is_ok());
    }
}
