//! Point-in-time recovery: restore a base backup, replay WAL from the instance's WAL store to a
//! target time (or to its end), prove the stop point, then promote to a new timeline
//! (postgres-pitr.md §3.3–§3.8).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection as _, PgConnection};

use super::cluster::Cluster;
use super::config::{self, RECOVERY_CONF, conf_string};
use super::os_user::{ensure_dir, write_owned};
use super::recover::{
    HEALTH_DEADLINE, Progressed, RECOVERY_DEADLINE, carry_timeline_history, cut_over,
    discard_staging, fail_with_rollback, finish_recovery, staging_cluster,
};
use super::restore::{discard_failed_restore, restore_backup, unpack_archive, verify_archive};
use super::restore_command::{preverify_segments, remove_script, shell_quote, write_script};
use super::wal_index::{
    format_lsn, history_name, list_store, parse_history, parse_lsn, parse_segment_name, scan,
    segment_name, timeline_dir,
};
use super::wal_stream::{current_timeline, ensure_wal_slot};
use super::{PhaseReporter, Progress};

/// How often replay progress is polled and reported.
const REPLAY_POLL: Duration = Duration::from_millis(50);

/// Where a recovery stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecoveryTarget {
    /// The state after the last transaction that committed at or before this time.
    Time(DateTime<Utc>),
    /// Everything in the store. Mapped to "no target", since a time of "now" fails on an idle
    /// database (postgres-pitr.md §3.5).
    Latest,
}

/// What a finished point-in-time recovery reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PitrOutcome {
    /// The timeline the recovered server now writes on.
    pub new_timeline: u32,
    /// Commit time of the last transaction replayed.
    pub last_replayed_commit: Option<DateTime<Utc>>,
    /// Where replay stopped (`X/Y`).
    pub stop_lsn: String,
}

/// Replay progress, reported about every 250 ms while WAL is replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayProgress {
    pub replayed_lsn: String,
    /// End of the store on the target timeline, when replaying to [`RecoveryTarget::Latest`]; a
    /// time target's stop position is not known before replay reaches it.
    pub target_lsn: Option<String>,
    /// End of the store on the target timeline when replay started: a time target stops at or
    /// before it, so replayed/end bounds the progress from below.
    pub store_end_lsn: Option<String>,
}

/// Receives [`ReplayProgress`] reports.
pub type ReplayReporter<'a> = &'a (dyn Fn(ReplayProgress) + Send + Sync);

/// Recovers a running instance in place to `target` on the lineage of `target_timeline`, replaying
/// WAL from `wal_root`, with the staging, cut-over and rollback discipline of
/// [`super::recover_in_place`].
///
/// Phases: `fetching`, `verifying` (archive checksum, WAL continuity from the backup's start),
/// `replaying`, `verifying_target` (stop line and last commit against the target, then promotion
/// to a new timeline whose `.history` is put into the store), `cutting_over`, `health_check`.
/// `target_timeline` is the instance's current timeline: following its history gives the right
/// data both before and after an earlier recovery. On failure the live instance keeps, or gets
/// back, its untouched data directory, running.
#[allow(clippy::too_many_arguments)]
pub async fn recover_in_place_to(
    cluster: &Cluster,
    archive: &Path,
    sha256: &str,
    wal_root: &Path,
    target: RecoveryTarget,
    target_timeline: u32,
    phase: PhaseReporter<'_>,
    progress: Progress<'_>,
    replay: ReplayReporter<'_>,
) -> Result<PitrOutcome> {
    let staging = staging_cluster(cluster)?;
    let was_running = cluster.is_running().await;
    let mut state = Progressed::default();
    let request = Request {
        archive,
        sha256,
        wal_root,
        target,
        target_timeline,
        replay,
    };
    let outcome = in_place_steps(cluster, &staging, &request, phase, progress, &mut state).await;
    if let Err(err) = remove_script(&staging.spec().data_dir).await {
        tracing::warn!(error = %format!("{err:#}"), "could not remove the restore command script");
    }
    match outcome {
        Ok(outcome) => Ok(outcome),
        Err(err) => Err(fail_with_rollback(cluster, &staging, &state, was_running, err).await),
    }
}

/// Brings up a NEW instance in `cluster` from another instance's backup plus that instance's WAL
/// store, recovered to `target` on the lineage of `target_timeline`. The store is only read. The
/// new timeline's `.history` file is copied to `history_dest/tl<N>/` when given (the new
/// instance's own store), so its own later recoveries can follow its lineage. The server runs
/// privately (no TCP) until the target is proven. On failure the half-restored data directory is
/// removed, so a redelivered request can start over.
#[allow(clippy::too_many_arguments)]
pub async fn restore_new_to(
    cluster: &Cluster,
    archive: &Path,
    sha256: &str,
    wal_root: &Path,
    target: RecoveryTarget,
    target_timeline: u32,
    history_dest: Option<&Path>,
    replay: ReplayReporter<'_>,
) -> Result<PitrOutcome> {
    let data_dir = &cluster.spec().data_dir;
    verify_archive(archive, sha256, &|_, _| {}).await?;
    cluster.prepare_aux_dirs().await?;
    unpack_archive(cluster.runner(), archive, data_dir).await?;
    let request = Request {
        archive,
        sha256,
        wal_root,
        target,
        target_timeline,
        replay,
    };
    let result = async {
        let plan = preflight(cluster, &request).await?;
        cluster.write_managed_config().await?;
        let stop = replay_and_promote(cluster, &request, &plan, history_dest).await?;
        // Restart with the normal configuration, reachable by tenants.
        cluster.stop().await?;
        cluster.start().await?;
        cluster.wait_healthy(HEALTH_DEADLINE).await?;
        anyhow::Ok(stop)
    }
    .await;
    if let Err(err) = remove_script(data_dir).await {
        tracing::warn!(error = %format!("{err:#}"), "could not remove the restore command script");
    }
    match result {
        Ok(outcome) => Ok(outcome),
        Err(err) => {
            discard_failed_restore(cluster).await;
            Err(err.context(format!(
                "point-in-time restore of a new instance into {}",
                data_dir.display()
            )))
        }
    }
}

struct Request<'a> {
    archive: &'a Path,
    sha256: &'a str,
    wal_root: &'a Path,
    target: RecoveryTarget,
    target_timeline: u32,
    replay: ReplayReporter<'a>,
}

/// What the preflight learned from the store.
struct Plan {
    /// End of the store on the target timeline, before replay started.
    store_end: Option<u64>,
    /// First segment replay needs (the backup's start).
    start_segno: u64,
}

/// Checks the store's segments against their checksums beside replay, off its critical path
/// (see [`preverify_segments`]); stopped when replay is over, however it ends.
struct Preverifier(tokio::task::JoinHandle<()>);

impl Preverifier {
    fn start(request: &Request<'_>, data_dir: &Path, plan: &Plan) -> Self {
        Self(tokio::spawn(preverify_segments(
            request.wal_root.to_path_buf(),
            data_dir.to_path_buf(),
            plan.start_segno,
        )))
    }
}

impl Drop for Preverifier {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn in_place_steps(
    cluster: &Cluster,
    staging: &Cluster,
    request: &Request<'_>,
    phase: PhaseReporter<'_>,
    progress: Progress<'_>,
    state: &mut Progressed,
) -> Result<PitrOutcome> {
    let staging_dir = staging.spec().data_dir.clone();

    state.enter("fetching", phase);
    // A staging directory left by a crash mid-recovery is worthless: its state is unknown.
    discard_staging(staging).await?;
    let size = tokio::fs::metadata(request.archive)
        .await
        .with_context(|| format!("reading {}", request.archive.display()))?
        .len();
    tracing::debug!(archive = %request.archive.display(), size_bytes = size, "backup archive available");

    state.enter("verifying", phase);
    restore_backup(
        cluster.runner(),
        request.archive,
        request.sha256,
        &staging_dir,
        progress,
    )
    .await?;
    carry_timeline_history(cluster, &staging_dir).await?;
    let plan = preflight(staging, request).await?;

    state.enter("replaying", phase);
    staging.write_managed_config().await?;
    let log_start = log_len(staging).await;
    write_recovery_settings(staging, request).await?;
    let preverifier = Preverifier::start(request, &staging_dir, &plan);
    staging.start_private(staging.spec().port).await?;
    let reached = wait_for_target(staging, request, &plan).await?;
    drop(preverifier);

    state.enter("verifying_target", phase);
    let outcome = verify_and_promote(
        staging,
        request,
        &plan,
        reached,
        log_start,
        Some(request.wal_root),
    )
    .await?;
    staging.wait_healthy(HEALTH_DEADLINE).await?;
    // A clean shutdown leaves a checkpointed copy that starts without crash recovery.
    staging.stop().await?;

    state.enter("cutting_over", phase);
    cut_over(cluster, staging, state).await?;

    state.enter("health_check", phase);
    cluster.wait_healthy(HEALTH_DEADLINE).await?;
    Ok(outcome)
}

/// Replay, verification and promotion of a restored data directory (the new-instance path).
async fn replay_and_promote(
    cluster: &Cluster,
    request: &Request<'_>,
    plan: &Plan,
    history_dest: Option<&Path>,
) -> Result<PitrOutcome> {
    let log_start = log_len(cluster).await;
    write_recovery_settings(cluster, request).await?;
    let preverifier = Preverifier::start(request, &cluster.spec().data_dir, plan);
    cluster.start_private(cluster.spec().port).await?;
    let reached = wait_for_target(cluster, request, plan).await?;
    drop(preverifier);
    verify_and_promote(cluster, request, plan, reached, log_start, history_dest).await
}

/// Checks, before anything runs, that the store (plus the WAL inside the backup) holds every
/// segment from the backup's start along the lineage of the target timeline: a missing segment
/// would otherwise just end recovery early (postgres-pitr.md P6), and a missing `.history` file
/// would silently follow the wrong branch (P5).
async fn preflight(restored: &Cluster, request: &Request<'_>) -> Result<Plan> {
    let data_dir = &restored.spec().data_dir;
    let (backup_start, backup_tli) = read_backup_label(data_dir).await?;
    let store = list_store(request.wal_root).await?;
    let size = store.segment_size;
    let target_tli = request.target_timeline;

    // The lineage: (timeline, where it ends) from the oldest ancestor to the target timeline.
    let mut lineage: Vec<(u32, Option<u64>)> = Vec::new();
    if target_tli > 1 {
        let text = read_history(&store, data_dir, target_tli).await?;
        for entry in parse_history(&text)? {
            lineage.push((entry.timeline, Some(entry.switch_lsn)));
        }
    }
    lineage.push((target_tli, None));
    ensure!(
        lineage.iter().any(|(tli, _)| *tli == backup_tli),
        "the backup (timeline {backup_tli}) is not on the history of timeline {target_tli}"
    );

    let in_backup = backup_segments(data_dir, size).await?;
    let present = |tli: u32, segno: u64| {
        store
            .timelines
            .get(&tli)
            .is_some_and(|files| files.has_segment(segno))
            || in_backup.contains(&(tli, segno))
    };
    // Segment ranges per timeline as PostgreSQL derives them: each entry begins where the previous
    // one ended. PostgreSQL reads a segment from the newest timeline whose range covers it and
    // falls back to older ones if that file is absent, which would replay the abandoned branch;
    // so the newest covering timeline's file is the one that must be there. (After a recovery
    // that stopped on an ancestor, PostgreSQL records the target timeline as parent with a switch
    // point before that timeline began; ranges by begin/end handle that as it does.)
    let mut ranges: Vec<(u32, u64, Option<u64>)> = Vec::new();
    let mut begin = 0u64;
    for (tli, end) in &lineage {
        ranges.push((*tli, begin / size, end.map(|end| end / size)));
        begin = end.unwrap_or(begin);
    }
    let newest_on_target = store
        .timelines
        .get(&target_tli)
        .and_then(|files| files.complete.keys().chain(files.partial.keys()).max())
        .copied();
    // With no WAL on the target timeline yet (a fresh branch whose receiver has not started), only
    // the ancestors up to the branch segment are checked; a target past the branch point then
    // fails at the end of WAL, as it must.
    let last_needed = match newest_on_target {
        Some(newest) => newest,
        None => (begin / size).saturating_sub(1),
    };
    let mut missing: Vec<String> = Vec::new();
    for segno in backup_start / size..=last_needed {
        let newest = ranges
            .iter()
            .rev()
            .find(|(_, from, to)| *from <= segno && to.is_none_or(|to| segno <= to));
        if let Some(&(tli, _, _)) = newest
            && !present(tli, segno)
        {
            missing.push(segment_name(tli, segno, size));
        }
    }
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        bail!(
            "the WAL store has a gap: {} segment(s) missing between the backup and the target, e.g. {}",
            missing.len(),
            shown.join(", ")
        );
    }

    let store_end = scan(restored.bins(), restored.runner(), request.wal_root)
        .await?
        .into_iter()
        .find(|state| state.timeline == target_tli)
        .and_then(|state| state.latest_lsn)
        .map(|lsn| parse_lsn(&lsn))
        .transpose()?;
    Ok(Plan {
        store_end,
        start_segno: backup_start / size,
    })
}

/// `START WAL LOCATION: 0/2000028 (file …)` and `START TIMELINE: 1` from `backup_label`.
async fn read_backup_label(data_dir: &Path) -> Result<(u64, u32)> {
    let path = data_dir.join("backup_label");
    let text = tokio::fs::read_to_string(&path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    let mut start = None;
    let mut tli = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("START WAL LOCATION: ") {
            let lsn = rest.split_whitespace().next().unwrap_or_default();
            start = Some(parse_lsn(lsn)?);
        } else if let Some(rest) = line.strip_prefix("START TIMELINE: ") {
            tli = Some(
                rest.trim()
                    .parse()
                    .with_context(|| format!("bad START TIMELINE in {}", path.display()))?,
            );
        }
    }
    Ok((
        start.context("backup_label without START WAL LOCATION")?,
        tli.context("backup_label without START TIMELINE")?,
    ))
}

async fn read_history(
    store: &super::wal_index::StoreFiles,
    data_dir: &Path,
    tli: u32,
) -> Result<String> {
    let in_store = store.timelines.get(&tli).and_then(|f| f.history.clone());
    let path = match in_store {
        Some(path) => path,
        None => data_dir.join("pg_wal").join(history_name(tli)),
    };
    tokio::fs::read_to_string(&path).await.with_context(|| {
        format!("timeline {tli} has no history file in the WAL store or the data directory")
    })
}

/// Segments the backup brought along in its own `pg_wal` (`-X fetch`).
async fn backup_segments(data_dir: &Path, size: u64) -> Result<Vec<(u32, u64)>> {
    let dir = data_dir.join("pg_wal");
    let mut found = Vec::new();
    let mut entries = tokio::fs::read_dir(&dir)
        .await
        .with_context(|| format!("listing {}", dir.display()))?;
    while let Some(entry) = entries
        .next_entry()
        .await
        .with_context(|| format!("listing {}", dir.display()))?
    {
        if let Some(parsed) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_segment_name(n, size))
        {
            found.push(parsed);
        }
    }
    Ok(found)
}

/// `recovery.signal` plus `trove-recovery.conf` for this target (postgres-pitr.md §3.3):
/// - the target time is written in UTC with an explicit offset, so the server's `timezone` cannot
///   shift it (P4), and the log prints times in UTC for [`verify_stop_line`];
/// - `pause` at the target, so the stop point can be checked before promotion (P8);
/// - the timeline is explicit, so a recovery follows the lineage the caller chose (§3.4).
async fn write_recovery_settings(restored: &Cluster, request: &Request<'_>) -> Result<()> {
    let data_dir = &restored.spec().data_dir;
    config::ensure_includes(restored).await?;
    let script = write_script(restored.runner(), data_dir, request.wal_root).await?;
    let command = format!("{} \"%f\" \"%p\"", shell_quote(&script.to_string_lossy()));
    let mut settings = format!(
        "# Written by the Trove guest agent for one point-in-time recovery; removed at promotion.\n\
         restore_command = {command}\n\
         recovery_target_timeline = '{tli}'\n\
         timezone = 'UTC'\n\
         log_timezone = 'UTC'\n",
        command = conf_string(&command),
        tli = request.target_timeline,
    );
    if let RecoveryTarget::Time(time) = request.target {
        settings.push_str(&format!(
            "recovery_target_time = '{}'\n\
             recovery_target_inclusive = on\n\
             recovery_target_action = 'pause'\n",
            time.format("%Y-%m-%d %H:%M:%S%.6f+00")
        ));
    }
    let owner = restored.runner().owner();
    write_owned(
        &data_dir.join(RECOVERY_CONF),
        settings.as_bytes(),
        0o600,
        owner,
    )
    .await?;
    write_owned(&data_dir.join("recovery.signal"), b"", 0o600, owner).await
}

/// How replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// Paused at the target time, still in recovery.
    Paused,
    /// Replayed to the end of WAL and promoted (no target).
    Promoted,
}

/// Polls the recovering server, reporting progress, until replay pauses at the target (time
/// targets) or the server has promoted (`Latest`). A server that dies on the way (target not
/// reached, restore command failed) fails this with its log tail.
async fn wait_for_target(
    restored: &Cluster,
    request: &Request<'_>,
    plan: &Plan,
) -> Result<Reached> {
    let until = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    let target_lsn = match request.target {
        RecoveryTarget::Latest => plan.store_end.map(format_lsn),
        RecoveryTarget::Time(_) => None,
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
                    (request.replay)(ReplayProgress {
                        replayed_lsn: lsn.clone(),
                        target_lsn: target_lsn.clone(),
                        store_end_lsn: plan.store_end.map(format_lsn),
                    });
                    last_reported = Some(lsn);
                }
                match (request.target, in_recovery, pause_state.as_str()) {
                    (RecoveryTarget::Time(_), true, "paused") => return Ok(Reached::Paused),
                    (RecoveryTarget::Time(_), false, _) => bail!(
                        "the server ended recovery without pausing at the target (server log tail: {})",
                        restored.log_tail().await
                    ),
                    (RecoveryTarget::Latest, false, _) => return Ok(Reached::Promoted),
                    (RecoveryTarget::Latest, true, "paused") => {
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

/// Proves the stop point, promotes (for a paused server), checks the new timeline, reserves WAL
/// for the streamer and puts the new timeline's `.history` into `history_dest`.
async fn verify_and_promote(
    restored: &Cluster,
    request: &Request<'_>,
    plan: &Plan,
    reached: Reached,
    log_start: u64,
    history_dest: Option<&Path>,
) -> Result<PitrOutcome> {
    let (stop_lsn, last_commit) = replay_position(restored).await?;
    match (request.target, reached) {
        (RecoveryTarget::Time(target), Reached::Paused) => {
            if let Some(last) = last_commit {
                ensure!(
                    last <= target,
                    "replay went past the target: last replayed commit at {last}, target {target}"
                );
            }
            let log = read_log_from(restored, log_start).await?;
            verify_stop_line(&log, target)?;
            let mut conn = restored.connect().await?;
            sqlx::query("SELECT pg_wal_replay_resume()")
                .execute(&mut conn)
                .await
                .context("resuming replay to promote")?;
            let _ = conn.close().await;
        }
        (RecoveryTarget::Latest, Reached::Promoted) => {
            if let Some(end) = plan.store_end {
                ensure!(
                    parse_lsn(&stop_lsn)? >= end,
                    "recovery stopped at {stop_lsn}, before the end of the WAL store at {}",
                    format_lsn(end)
                );
            }
        }
        (target, reached) => bail!("replay to {target:?} ended as {reached:?}"),
    }
    // Waits for promotion and drops the recovery settings, so a restart never re-enters recovery.
    finish_recovery(restored).await?;

    let new_timeline = current_timeline(restored).await?;
    ensure!(
        new_timeline > request.target_timeline,
        "promotion did not start a new timeline: on {new_timeline}, recovered along {}",
        request.target_timeline
    );
    // Reserve the new timeline's WAL from its first segment, before any tenant writes: the
    // streamer that starts after cut-over then receives the timeline from its branch point on.
    ensure_wal_slot(restored).await?;
    if let Some(dest) = history_dest {
        store_history(restored, dest, new_timeline).await?;
    }
    Ok(PitrOutcome {
        new_timeline,
        last_replayed_commit: last_commit,
        stop_lsn,
    })
}

async fn replay_position(restored: &Cluster) -> Result<(String, Option<DateTime<Utc>>)> {
    let mut conn = restored.connect().await?;
    let (lsn, last): (Option<String>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp()")
            .fetch_one(&mut conn)
            .await
            .context("reading the replay position")?;
    let _ = conn.close().await;
    Ok((lsn.context("the server replayed no WAL")?, last))
}

/// The server log must show where recovery stopped and why: `recovery stopping before commit of
/// transaction 735, time 2026-11-25 17:04:57.209137+00`, with that time after the target. Without
/// such a line no target was applied (postgres-pitr.md §3.6).
fn verify_stop_line(log: &str, target: DateTime<Utc>) -> Result<()> {
    if log.contains("recovery ended before configured recovery target was reached") {
        bail!("recovery ended before the target was reached: the WAL store ends too early");
    }
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("recovery stopping before "))
        .context("the server log shows no recovery stop point, so no target was applied")?;
    let stamp = line
        .rsplit_once(", time ")
        .map(|(_, s)| s.trim())
        .with_context(|| format!("no time in stop line {line:?}"))?;
    let stopped = DateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f%#z")
        .with_context(|| format!("bad time in stop line {line:?}"))?
        .with_timezone(&Utc);
    ensure!(
        stopped > target,
        "recovery stopped before a transaction at {stopped}, which is not after the target {target}"
    );
    Ok(())
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
/// `<dest>/tl<N>/`, so the next recovery can follow this branch (postgres-pitr.md §3.4).
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

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    #[test]
    fn verify_stop_line_accepts_a_stop_after_the_target() {
        let log = "2026-11-25 17:06:20.698 UTC [1] LOG:  recovery stopping before commit of transaction 735, time 2026-11-25 17:04:57.209137+00\n";
        assert!(verify_stop_line(log, at("2026-11-25T17:04:57.2+00:00")).is_ok());
        assert!(verify_stop_line(log, at("2026-11-25T17:04:57.3+00:00")).is_err());
    }

    #[test]
    fn verify_stop_line_rejects_a_log_without_a_stop_point() {
        let log =
            "LOG:  consistent recovery state reached at 0/5000100\nLOG:  redo done at 0/5000100\n";
        let err = verify_stop_line(log, at("2026-11-25T17:04:57+00:00")).expect_err("no stop line");
        assert!(format!("{err:#}").contains("no recovery stop point"));
    }
}
