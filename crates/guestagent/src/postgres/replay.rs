//! Replay of a restored data directory and its promotion: to the end of the backup, or on to a
//! point in time with the stop point proven before promotion (docs/postgres-recovery.md §3.3,
//! §3.6). Shared by recovery in place and restore into a new instance; the server runs privately
//! (no TCP) throughout.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Utc};
use sqlx::{Connection as _, PgConnection};
use trove_common::{
    recovery::{RecoveryOutcome, RecoveryProgress, StopPoint},
    rpc::conductor::GuestErrorCode,
    status::RecoveryPhase,
};

use super::archive::ArchiveSource;
use super::cluster::Cluster;
use super::config::RECOVERY_CONF;
use super::error::{FailAs as _, Failure};
use super::os_user::{ensure_dir, remove_file_if_exists, write_owned};
use super::recovery_conf::{
    write_backup_end_pause_settings, write_backup_end_settings, write_local_target_settings,
    write_paused_settings, write_target_settings,
};
use super::request::Replay;
use super::restore_command::{
    RESTORE_CHECKSUM_MISMATCH, RESTORE_FETCH_FAILED, remove_script, write_nothing_more_script,
};
use super::steps::Steps;
use super::stop_line;
use super::wal_fetch::{Fetched, Prefetch};
use super::wal_index::{format_lsn, history_name, parse_lsn, timeline_dir};
use super::wal_plan::{Plan, early_needed, preflight};
use super::wal_stream::{current_timeline, ensure_wal_slot};

/// Upper bound for replay. A dead server is detected much sooner (see [`finish_recovery`]).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// How long a promoted server may take to answer.
pub(super) const HEALTH_DEADLINE: Duration = Duration::from_secs(60);
/// How often replay is polled for progress and for its end.
const REPLAY_POLL: Duration = Duration::from_millis(50);

/// The source's WAL for one replay, opened as the recovery starts: the store listed, the
/// histories fetched, and the segments the backup's manifest says replay will need already on
/// their way while the archive streams in.
pub(super) struct Fetching {
    pub(super) fetched: Arc<Fetched>,
    _early: Option<Prefetch>,
}

impl Fetching {
    /// Opens `replay`'s WAL beside `restored`'s data directory; with `archive`, also starts
    /// fetching what replay will read, from the backup's start in its manifest. A manifest that
    /// cannot be read only means nothing is fetched early.
    pub(super) async fn start(
        restored: &Cluster,
        replay: &Replay<'_>,
        archive: Option<&ArchiveSource<'_>>,
    ) -> Result<Fetching> {
        let fetched = Arc::new(Fetched::open(restored, &replay.wal, replay.timeline).await?);
        let mut early = None;
        if let Some(start) = match archive {
            Some(archive) => manifest_start(archive).await,
            None => None,
        } && let Some(needed) = early_needed(&fetched, replay.timeline, start).await
        {
            early = Some(fetched.spawn_prefetch(needed, replay.wal.prefetch));
        }
        Ok(Fetching {
            fetched,
            _early: early,
        })
    }
}

/// The backup's start LSN from the manifest beside its archive.
async fn manifest_start(archive: &ArchiveSource<'_>) -> Option<u64> {
    let key = trove_common::store::layout::manifest_beside(archive.key);
    let bytes = archive.store.get(&key).await.ok()??;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    parse_lsn(manifest.get("start_lsn")?.as_str()?).ok()
}

/// Replays the backup unpacked in `restored` as `replay` asks (to the end of the backup when
/// None), promotes it to a new timeline and leaves it running privately and healthy. `fetching`
/// is `replay`'s WAL if the caller opened it already. Reports the phases `replaying` and, with a
/// target, `verifying_target`; the checks of the WAL store before replay belong to the caller's
/// `verifying` phase.
pub(super) async fn replay_and_promote(
    restored: &Cluster,
    replay: Option<&Replay<'_>>,
    fetching: Option<Fetching>,
    steps: &mut Steps<'_>,
) -> Result<RecoveryOutcome, Failure> {
    let outcome = match replay {
        None => {
            steps.enter(RecoveryPhase::Replaying);
            restored.write_managed_config().await?;
            write_backup_end_settings(restored).await?;
            restored
                .start_private(restored.spec().port)
                .await
                .fail_as(GuestErrorCode::StartFailed)?;
            finish_recovery(restored)
                .await
                .fail_as(GuestErrorCode::RestoreFailed)?;
            let new_timeline = current_timeline(restored).await?;
            RecoveryOutcome {
                new_timeline: Some(new_timeline),
                ..RecoveryOutcome::default()
            }
        }
        Some(replay) => {
            let fetching = match fetching {
                Some(fetching) => fetching,
                None => Fetching::start(restored, replay, None).await?,
            };
            let result = async {
                let plan = preflight(restored, replay, &fetching.fetched).await?;
                replay_to_target(restored, replay, &plan, Some(&fetching.fetched), steps).await
            }
            .await;
            if let Err(err) = remove_script(&restored.spec().data_dir).await {
                tracing::warn!(error = %format!("{err:#}"), "could not remove the restore command script");
            }
            // Stops what is still fetching and removes the fetch directory.
            drop(fetching);
            result?
        }
    };
    restored
        .wait_healthy(HEALTH_DEADLINE)
        .await
        .fail_as(GuestErrorCode::HealthCheckFailed)?;
    Ok(outcome)
}

/// Replays a stopped standby's copy, whose `pg_wal` already holds everything up to `wal_end`, on
/// to `replay`'s target without the store (a rewind), proves the stop point and promotes it as
/// [`replay_and_promote`] does: phases `replaying` and `verifying_target`.
pub(super) async fn replay_local_and_promote(
    restored: &Cluster,
    replay: &Replay<'_>,
    wal_end: u64,
    steps: &mut Steps<'_>,
) -> Result<RecoveryOutcome, Failure> {
    let plan = Plan {
        store_end: Some(wal_end),
        needed: Vec::new(),
    };
    let outcome = replay_to_target(restored, replay, &plan, None, steps).await?;
    restored
        .wait_healthy(HEALTH_DEADLINE)
        .await
        .fail_as(GuestErrorCode::HealthCheckFailed)?;
    Ok(outcome)
}

async fn replay_to_target(
    restored: &Cluster,
    replay: &Replay<'_>,
    plan: &Plan,
    fetched: Option<&Arc<Fetched>>,
    steps: &mut Steps<'_>,
) -> Result<RecoveryOutcome, Failure> {
    let (reached, log_start) =
        replay_until_stopped(restored, replay, plan, fetched, steps, Visibility::Private).await?;
    steps.enter(RecoveryPhase::VerifyingTarget);
    async {
        verify_stop(restored, replay, plan, reached, log_start).await?;
        promote(
            restored,
            reached == Reached::Paused,
            Some(replay.timeline),
            replay.history_dest,
        )
        .await
    }
    .await
    .fail_as(GuestErrorCode::TargetNotReached)
}

/// Whom the replaying server listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visibility {
    /// The unix socket only (`listen_addresses = ''`): a copy tenants must not see yet.
    Private,
    /// The addresses and port in the copy's spec: a preview tenants read.
    Listening,
}

async fn start_replay(restored: &Cluster, visibility: Visibility) -> Result<()> {
    match visibility {
        Visibility::Private => restored.start_private(restored.spec().port).await,
        Visibility::Listening => restored.start().await,
    }
}

/// Starts the restored copy with `replay`'s target settings and waits until replay pauses at
/// the target (or, for "latest", promotes). Returns how it ended and where this replay's server
/// log starts.
async fn replay_until_stopped(
    restored: &Cluster,
    replay: &Replay<'_>,
    plan: &Plan,
    fetched: Option<&Arc<Fetched>>,
    steps: &mut Steps<'_>,
    visibility: Visibility,
) -> Result<(Reached, u64), Failure> {
    steps.enter(RecoveryPhase::Replaying);
    restored.write_managed_config().await?;
    let log_start = log_len(restored).await;
    let _prefetch = match fetched {
        Some(fetched) => {
            write_target_settings(restored, replay, &fetched.root).await?;
            fetched.write_expected(&plan.needed).await?;
            // Whatever the early fetch did not cover (it skips what it already took on).
            Some(fetched.spawn_prefetch(plan.needed.clone(), replay.wal.prefetch))
        }
        // The WAL is in the copy's own `pg_wal` already.
        None => {
            write_local_target_settings(restored, replay.stop, replay.timeline).await?;
            None
        }
    };
    // The server may already stop during `pg_ctl start` (replay runs before it accepts
    // connections), so both steps are classified by what it logged.
    let work = async {
        match start_replay(restored, visibility).await {
            Ok(()) => wait_for_target(restored, replay, plan, steps)
                .await
                .map_err(|e| (GuestErrorCode::RestoreFailed, e)),
            Err(e) => Err((GuestErrorCode::StartFailed, e)),
        }
    };
    match work.await {
        Ok(reached) => Ok((reached, log_start)),
        Err((step_code, err)) => {
            let log = read_log_from(restored, log_start).await.unwrap_or_default();
            Err(Failure::new(
                replay_failure_code(&log).unwrap_or(step_code),
                err,
            ))
        }
    }
}

/// Replays the backup unpacked in `restored` as `replay` asks (to the end of the backup when
/// None) and leaves the server running, paused there in hot standby (read-only), listening on
/// its spec's addresses and port: a preview. The stop point is proven as before a promotion; the
/// promotion waits for [`promote_preview`]. A target of "latest" cannot pause (replay ends where
/// the WAL ends) and is refused.
pub(super) async fn replay_and_pause(
    restored: &Cluster,
    replay: Option<&Replay<'_>>,
    fetching: Option<Fetching>,
    steps: &mut Steps<'_>,
) -> Result<(), Failure> {
    match replay {
        None => {
            steps.enter(RecoveryPhase::Replaying);
            restored.write_managed_config().await?;
            write_backup_end_pause_settings(restored).await?;
            start_replay(restored, Visibility::Listening)
                .await
                .fail_as(GuestErrorCode::StartFailed)?;
            wait_paused(restored)
                .await
                .fail_as(GuestErrorCode::RestoreFailed)?;
        }
        Some(replay) => {
            if !replay.stop.pauses() {
                return Err(Failure::new(
                    GuestErrorCode::TargetNotReached,
                    anyhow::anyhow!(
                        "a preview needs a target replay can pause at; \"latest\" is none"
                    ),
                ));
            }
            let fetching = match fetching {
                Some(fetching) => fetching,
                None => Fetching::start(restored, replay, None).await?,
            };
            let result = async {
                let plan = preflight(restored, replay, &fetching.fetched).await?;
                replay_to_pause(restored, replay, &plan, &fetching, steps).await
            }
            .await;
            end_fetching(restored, fetching).await;
            result?;
        }
    }
    restored
        .wait_healthy(HEALTH_DEADLINE)
        .await
        .fail_as(GuestErrorCode::HealthCheckFailed)
}

/// Starts `restored` listening with `replay`'s target, waits until replay pauses there, proves
/// the stop point, and leaves settings that keep it paused there across a restart: phases
/// `replaying` and `verifying_target`. The caller ends `fetching` ([`end_fetching`]) whatever
/// happened. Shared by a preview's first staging and its moves.
pub(super) async fn replay_to_pause(
    restored: &Cluster,
    replay: &Replay<'_>,
    plan: &Plan,
    fetching: &Fetching,
    steps: &mut Steps<'_>,
) -> Result<(), Failure> {
    let (reached, log_start) = replay_until_stopped(
        restored,
        replay,
        plan,
        Some(&fetching.fetched),
        steps,
        Visibility::Listening,
    )
    .await?;
    steps.enter(RecoveryPhase::VerifyingTarget);
    verify_stop(restored, replay, plan, reached, log_start)
        .await
        .fail_as(GuestErrorCode::TargetNotReached)?;
    // The fetch directory goes below; promotion must not fetch from it. The settings say so for
    // a restart, the script for a server that missed the reload.
    write_paused_settings(restored, replay.stop, replay.timeline).await?;
    reload(restored).await?;
    Ok(())
}

/// As [`replay_to_pause`] for a stopped standby's copy whose `pg_wal` already holds everything
/// up to `wal_end` (a preview from the delayed copy): no store, the settings keep it paused at
/// the target with `restore_command = 'false'` from the start. Phases `replaying` and
/// `verifying_target`; ends with the preview answering.
pub(super) async fn replay_local_to_pause(
    restored: &Cluster,
    replay: &Replay<'_>,
    wal_end: u64,
    steps: &mut Steps<'_>,
) -> Result<(), Failure> {
    if !replay.stop.pauses() {
        return Err(Failure::new(
            GuestErrorCode::TargetNotReached,
            anyhow::anyhow!("a preview needs a target replay can pause at; \"latest\" is none"),
        ));
    }
    let plan = Plan {
        store_end: Some(wal_end),
        needed: Vec::new(),
    };
    let (reached, log_start) =
        replay_until_stopped(restored, replay, &plan, None, steps, Visibility::Listening).await?;
    steps.enter(RecoveryPhase::VerifyingTarget);
    verify_stop(restored, replay, &plan, reached, log_start)
        .await
        .fail_as(GuestErrorCode::TargetNotReached)?;
    restored
        .wait_healthy(HEALTH_DEADLINE)
        .await
        .fail_as(GuestErrorCode::HealthCheckFailed)
}

/// Retires the restore command script (a paused preview must not fetch any more) and stops
/// what is still fetching, removing the fetch directory.
pub(super) async fn end_fetching(restored: &Cluster, fetching: Fetching) {
    let data_dir = &restored.spec().data_dir;
    if let Err(err) = write_nothing_more_script(restored.runner(), data_dir).await {
        tracing::warn!(error = %format!("{err:#}"), "could not retire the restore command script");
    }
    drop(fetching);
}

/// Ends the paused replay of a preview (`pg_wal_replay_resume()`) and completes the promotion as
/// [`replay_and_promote`] does: along `timeline` (None: the end of a backup) the new timeline is
/// checked, WAL reserved and its `.history` put into `history_dest`.
pub(super) async fn promote_preview(
    restored: &Cluster,
    timeline: Option<u32>,
    history_dest: Option<&Path>,
) -> Result<RecoveryOutcome, Failure> {
    let outcome = promote(restored, true, timeline, history_dest)
        .await
        .fail_as(GuestErrorCode::TargetNotReached)?;
    if let Err(err) = remove_script(&restored.spec().data_dir).await {
        tracing::warn!(error = %format!("{err:#}"), "could not remove the restore command script");
    }
    restored
        .wait_healthy(HEALTH_DEADLINE)
        .await
        .fail_as(GuestErrorCode::HealthCheckFailed)?;
    Ok(outcome)
}

async fn reload(cluster: &Cluster) -> Result<()> {
    let mut conn = cluster.connect().await?;
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut conn)
        .await
        .context("reloading the settings")?;
    let _ = conn.close().await;
    Ok(())
}

/// Waits until replay pauses: where the backup is consistent for a copy without a target, at
/// the target for one restarted with its paused settings.
pub(super) async fn wait_paused(cluster: &Cluster) -> Result<()> {
    let until = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    loop {
        let polled = async {
            let mut conn = cluster.connect().await?;
            let row: (bool, String) = sqlx::query_as(
                "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() \
                 THEN pg_get_wal_replay_pause_state() ELSE 'not paused' END",
            )
            .fetch_one(&mut conn)
            .await
            .context("polling replay state")?;
            let _ = conn.close().await;
            anyhow::Ok(row)
        }
        .await;
        match polled {
            Ok((true, state)) if state == "paused" => return Ok(()),
            Ok((false, _)) => bail!("the server ended recovery without pausing"),
            Ok(_) => {}
            Err(err) => {
                if !cluster.is_running().await {
                    let tail = cluster.log_tail().await;
                    return Err(err.context(format!(
                        "postgresql stopped during replay (server log tail: {tail})"
                    )));
                }
            }
        }
        if tokio::time::Instant::now() >= until {
            bail!("replay did not pause within {RECOVERY_DEADLINE:?}");
        }
        tokio::time::sleep(REPLAY_POLL).await;
    }
}

/// Why a replay that did not reach its target stopped. The server is a separate process that
/// reports only through its log: the restore command's refusal of a damaged segment, or the
/// startup process running out of WAL before the target.
fn replay_failure_code(log: &str) -> Option<GuestErrorCode> {
    if log.contains(RESTORE_CHECKSUM_MISMATCH) {
        Some(GuestErrorCode::ChecksumMismatch)
    } else if log.contains(RESTORE_FETCH_FAILED) {
        Some(GuestErrorCode::BackupNotFound)
    } else if log.contains("recovery ended before configured recovery target was reached") {
        Some(GuestErrorCode::TargetNotReached)
    } else {
        None
    }
}

/// Waits until the started server has left recovery (`pg_is_in_recovery()` is false), then removes
/// `trove-recovery.conf`. Fails early, with the server log, if the server stops while we wait.
pub(super) async fn finish_recovery(cluster: &Cluster) -> Result<()> {
    let until = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    loop {
        match in_recovery(cluster).await {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                if !cluster.is_running().await {
                    let tail = cluster.log_tail().await;
                    return Err(err.context(format!(
                        "postgresql stopped during recovery (server log tail: {tail})"
                    )));
                }
                tracing::debug!(error = %format!("{err:#}"), "server not answering yet during recovery");
            }
        }
        if tokio::time::Instant::now() >= until {
            bail!(
                "postgresql in {} still in recovery after {RECOVERY_DEADLINE:?}",
                cluster.spec().data_dir.display()
            );
        }
        tokio::time::sleep(REPLAY_POLL).await;
    }
    remove_file_if_exists(&cluster.spec().data_dir.join(RECOVERY_CONF)).await
}

async fn in_recovery(cluster: &Cluster) -> Result<bool> {
    let mut conn = cluster.connect().await?;
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut conn)
        .await
        .context("pg_is_in_recovery()")?;
    let _ = conn.close().await;
    Ok(in_recovery)
}

/// How replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// Paused at its target (time, LSN or transaction), still in recovery.
    Paused,
    /// Replayed to the end of WAL and promoted (no target).
    Promoted,
}

/// Polls the recovering server, reporting progress, until replay pauses at the target (time
/// and the other targets) or the server has promoted (`Latest`). A server that dies on the way (target not
/// reached, restore command failed) fails this with its log tail.
async fn wait_for_target(
    restored: &Cluster,
    replay: &Replay<'_>,
    plan: &Plan,
    steps: &Steps<'_>,
) -> Result<Reached> {
    let until = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    let target_lsn = match replay.stop {
        StopPoint::Latest => plan.store_end.map(format_lsn),
        StopPoint::Lsn(lsn) | StopPoint::RestorePoint { lsn, .. } => Some(format_lsn(lsn)),
        StopPoint::Time(_) | StopPoint::Xid { .. } => None,
    };
    let mut conn: Option<PgConnection> = None;
    let mut last_reported: Option<String> = None;
    loop {
        let polled = async {
            if conn.is_none() {
                conn = Some(restored.connect().await?);
            }
            let c = conn.as_mut().context("connection just opened")?;
            let row: (bool, Option<String>, String) = sqlx::query_as(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, \
                 CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() \
                 ELSE 'not paused' END",
            )
            .fetch_one(c)
            .await
            .context("polling replay state")?;
            anyhow::Ok(row)
        }
        .await;
        match polled {
            Ok((in_recovery, lsn, pause_state)) => {
                if let Some(lsn) = lsn
                    && last_reported.as_deref() != Some(lsn.as_str())
                {
                    steps.progress(RecoveryProgress {
                        replayed_lsn: Some(lsn.clone()),
                        target_lsn: target_lsn.clone(),
                        store_end_lsn: plan.store_end.map(format_lsn),
                        ..RecoveryProgress::default()
                    });
                    last_reported = Some(lsn);
                }
                match (replay.stop, in_recovery, pause_state.as_str()) {
                    (s, true, "paused") if s.pauses() => return Ok(Reached::Paused),
                    (s, false, _) if s.pauses() => bail!(
                        "the server ended recovery without pausing at the target (server log tail: {})",
                        restored.log_tail().await
                    ),
                    (StopPoint::Latest, false, _) => return Ok(Reached::Promoted),
                    (StopPoint::Latest, true, "paused") => {
                        bail!("replay paused although no target was set")
                    }
                    _ => {}
                }
            }
            Err(err) => {
                conn = None;
                if !restored.is_running().await {
                    let tail = restored.log_tail().await;
                    return Err(err.context(format!(
                        "postgresql stopped during replay (server log tail: {tail})"
                    )));
                }
                tracing::debug!(error = %format!("{err:#}"), "recovering server not answering yet");
            }
        }
        if tokio::time::Instant::now() >= until {
            bail!("replay did not reach its target within {RECOVERY_DEADLINE:?}");
        }
        tokio::time::sleep(REPLAY_POLL).await;
    }
}

/// Proves the stop point: before the target time, at or past the target LSN, and the server
/// log's own stop line; for "latest", at the end of the WAL store.
async fn verify_stop(
    restored: &Cluster,
    replay: &Replay<'_>,
    plan: &Plan,
    reached: Reached,
    log_start: u64,
) -> Result<()> {
    let (stop_lsn, last_commit) = replay_position(restored).await?;
    match (replay.stop, reached) {
        (stop, Reached::Paused) if stop.pauses() => {
            if let (StopPoint::Time(target), Some(last)) = (stop, last_commit) {
                ensure!(
                    last <= target,
                    "replay went past the target: last replayed commit at {last}, target {target}"
                );
            }
            if let StopPoint::Lsn(target) = stop {
                ensure!(
                    parse_lsn(&stop_lsn)? >= target,
                    "replay paused at {stop_lsn}, before the target {}",
                    format_lsn(target)
                );
            }
            let log = read_log_from(restored, log_start).await?;
            stop_line::verify(&log, stop)
        }
        (StopPoint::Latest, Reached::Promoted) => {
            if let Some(end) = plan.store_end {
                ensure!(
                    parse_lsn(&stop_lsn)? >= end,
                    "recovery stopped at {stop_lsn}, before the end of the WAL store at {}",
                    format_lsn(end)
                );
            }
            Ok(())
        }
        (target, reached) => bail!("replay to {target:?} ended as {reached:?}"),
    }
}

/// Promotes a server whose stop point is proven (`resume`: it is paused there), then, along
/// `timeline`, checks the new timeline, reserves WAL for the streamer and puts the new
/// timeline's `.history` into `history_dest`.
async fn promote(
    restored: &Cluster,
    resume: bool,
    timeline: Option<u32>,
    history_dest: Option<&Path>,
) -> Result<RecoveryOutcome> {
    let (stop_lsn, last_commit) = replay_position(restored).await?;
    if resume {
        let mut conn = restored.connect().await?;
        sqlx::query("SELECT pg_wal_replay_resume()")
            .execute(&mut conn)
            .await
            .context("resuming replay to promote")?;
        let _ = conn.close().await;
    }
    // Waits for promotion and drops the recovery settings, so a restart never re-enters recovery.
    finish_recovery(restored).await?;

    let new_timeline = current_timeline(restored).await?;
    let Some(timeline) = timeline else {
        return Ok(RecoveryOutcome {
            new_timeline: Some(new_timeline),
            ..RecoveryOutcome::default()
        });
    };
    ensure!(
        new_timeline > timeline,
        "promotion did not start a new timeline: on {new_timeline}, recovered along {timeline}"
    );
    // Reserve the new timeline's WAL from its first segment, before any tenant writes: the
    // streamer that starts after cut-over then receives the timeline from its branch point on.
    ensure_wal_slot(restored).await?;
    if let Some(dest) = history_dest {
        store_history(restored, dest, new_timeline).await?;
    }
    Ok(RecoveryOutcome {
        new_timeline: Some(new_timeline),
        last_replayed_commit: last_commit,
        stop_lsn: Some(stop_lsn),
        ..RecoveryOutcome::default()
    })
}

pub(super) async fn replay_position(restored: &Cluster) -> Result<(String, Option<DateTime<Utc>>)> {
    let mut conn = restored.connect().await?;
    let (lsn, last): (Option<String>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp()")
            .fetch_one(&mut conn)
            .await
            .context("reading the replay position")?;
    let _ = conn.close().await;
    Ok((lsn.context("the server replayed no WAL")?, last))
}

async fn log_len(cluster: &Cluster) -> u64 {
    tokio::fs::metadata(&cluster.spec().log_file)
        .await
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The server log written since `start` (all of it if the file shrank meanwhile).
async fn read_log_from(cluster: &Cluster, start: u64) -> Result<String> {
    let path = &cluster.spec().log_file;
    let bytes = tokio::fs::read(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let tail = bytes.get(start..).unwrap_or(&bytes);
    Ok(String::from_utf8_lossy(tail).into_owned())
}

/// Copies `0000000N.history` of the new timeline from the server's `pg_wal` into
/// `<dest>/tl<N>/`, so the next recovery can follow this branch (docs/postgres-recovery.md §3.4).
async fn store_history(restored: &Cluster, dest: &Path, tli: u32) -> Result<()> {
    let name = history_name(tli);
    let source = restored.spec().data_dir.join("pg_wal").join(&name);
    let bytes = tokio::fs::read(&source)
        .await
        .with_context(|| format!("reading {}", source.display()))?;
    let owner = restored.runner().owner();
    ensure_dir(dest, 0o700, owner).await?;
    let dir = timeline_dir(dest, tli);
    ensure_dir(&dir, 0o700, owner).await?;
    write_owned(&dir.join(&name), &bytes, 0o600, owner).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_replay_is_classified_by_what_the_server_logged() {
        let damaged = "FATAL:  could not restore file\ntrove restore_command: checksum mismatch for /s/tl1/x\n";
        assert_eq!(
            replay_failure_code(damaged),
            Some(GuestErrorCode::ChecksumMismatch)
        );
        let short = "FATAL:  recovery ended before configured recovery target was reached\n";
        assert_eq!(
            replay_failure_code(short),
            Some(GuestErrorCode::TargetNotReached)
        );
        assert_eq!(replay_failure_code("LOG:  redo starts"), None);
    }
}
