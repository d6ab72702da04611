//! Recovery of a restored data directory to the end of its backup, and in-place recovery of a running
//! instance with automatic rollback (reference: postgres-pitr.md §3.3 and §3.8 B).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sqlx::Connection as _;

use super::cluster::{Cluster, ClusterSpec};
use super::config::{self, RECOVERY_CONF};
use super::os_user::{remove_dir_if_exists, remove_file_if_exists, write_owned};
use super::restore::restore_backup;
use super::{PhaseReporter, Progress, allocate_port, sibling};

/// Upper bound for replaying the WAL inside a backup. Only the WAL written during the backup is
/// replayed, so minutes are generous; a dead server is detected much sooner (see `finish_recovery`).
pub(super) const RECOVERY_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// How long the server may take to answer after cut-over before we roll back.
pub(super) const HEALTH_DEADLINE: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Recovery settings for "replay the backup's own WAL, then become a primary on a new timeline".
/// - `restore_command = 'false'`: PostgreSQL 15 refuses targeted recovery without one; the WAL we
///   need is already in the backup's `pg_wal`, and `false` reports every other file as absent.
/// - `recovery_target = 'immediate'`: stop as soon as the copy is consistent (end of backup).
/// - `recovery_target_action = 'promote'`: the default, `pause`, leaves a read-only server.
/// - `recovery_target_timeline = 'current'`: the backup's own timeline. The default, `latest`,
///   would try to follow the newest history file in `pg_wal`, which after [`recover_in_place`]
///   carried the live instance's history over may be a branch the backup is not part of.
const RECOVERY_SETTINGS: &str = "\
# Written by the Trove guest agent for one recovery; removed once the server is promoted.
restore_command = 'false'
recovery_target = 'immediate'
recovery_target_action = 'promote'
recovery_target_timeline = 'current'
";

/// Makes a freshly restored data directory recover to the end of the backup on its next start:
/// writes `recovery.signal` and `trove-recovery.conf`. The settings live in their own file so that
/// [`finish_recovery`] can drop them; left behind, a later `recovery.signal` would reuse them.
pub async fn prepare_recovery(cluster: &Cluster) -> Result<()> {
    let data_dir = &cluster.spec().data_dir;
    config::ensure_includes(cluster).await?;
    let owner = cluster.runner().owner();
    write_owned(
        &data_dir.join(RECOVERY_CONF),
        RECOVERY_SETTINGS.as_bytes(),
        0o600,
        owner,
    )
    .await?;
    write_owned(&data_dir.join("recovery.signal"), b"", 0o600, owner).await?;
    Ok(())
}

/// Waits until the started server has left recovery (`pg_is_in_recovery()` is false), then removes
/// `trove-recovery.conf`. Fails early, with the server log, if the server stops while we wait.
pub async fn finish_recovery(cluster: &Cluster) -> Result<()> {
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
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    remove_file_if_exists(&cluster.spec().data_dir.join(RECOVERY_CONF)).await
}

pub(super) async fn in_recovery(cluster: &Cluster) -> Result<bool> {
    let mut conn = cluster.connect().await?;
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut conn)
        .await
        .context("pg_is_in_recovery()")?;
    let _ = conn.close().await;
    Ok(in_recovery)
}

/// What the in-place recovery has changed so far; drives the rollback.
#[derive(Debug, Default)]
pub(super) struct Progressed {
    pub(super) phase: &'static str,
    /// The live data directory has been renamed to `<data_dir>.old`.
    pub(super) live_moved: bool,
    /// The recovered copy now sits at `data_dir`.
    pub(super) new_in_place: bool,
}

impl Progressed {
    /// Records and reports the phase entered; the error of a failed recovery names it.
    pub(super) fn enter(&mut self, name: &'static str, phase: PhaseReporter<'_>) {
        self.phase = name;
        phase(name);
    }
}

/// Recovers a running instance in place to the state of `archive`, with rollback.
///
/// The recovered copy is built and proven beside the live data directory while the instance keeps
/// serving; only then is the instance stopped and the directories swapped. The old directory is
/// never written to and is kept as `<data_dir>.old` afterwards (a pre-recovery restore point). If
/// any step fails, the original directory is put back and restarted, the staging copy is removed,
/// and the error names the phase that failed.
pub async fn recover_in_place(
    cluster: &Cluster,
    archive: &Path,
    sha256: &str,
    phase: PhaseReporter<'_>,
    progress: Progress<'_>,
) -> Result<()> {
    let staging = staging_cluster(cluster)?;
    let was_running = cluster.is_running().await;
    let mut state = Progressed::default();
    let outcome = run_steps(
        cluster, &staging, archive, sha256, phase, progress, &mut state,
    )
    .await;
    match outcome {
        Ok(()) => Ok(()),
        Err(err) => Err(fail_with_rollback(cluster, &staging, &state, was_running, err).await),
    }
}

/// Names the failed phase, rolls back (see [`rollback`]) and returns the error to report, which
/// also carries a failed rollback.
pub(super) async fn fail_with_rollback(
    cluster: &Cluster,
    staging: &Cluster,
    state: &Progressed,
    was_running: bool,
    err: anyhow::Error,
) -> anyhow::Error {
    let err = err.context(format!(
        "in-place recovery failed during phase {}",
        state.phase
    ));
    tracing::warn!(error = %format!("{err:#}"), phase = state.phase, "in-place recovery failed; rolling back");
    match rollback(cluster, staging, state, was_running).await {
        Ok(()) => err,
        Err(rollback_err) => err.context(format!("rollback also failed: {rollback_err:#}")),
    }
}

/// The staging copy: beside the live data directory (same file system, so the swap is two renames),
/// its own log, and a port of its own that tenants never see.
pub(super) fn staging_cluster(cluster: &Cluster) -> Result<Cluster> {
    let live = cluster.spec();
    let spec = ClusterSpec {
        data_dir: sibling(&live.data_dir, "staging"),
        socket_dir: live.socket_dir.clone(),
        log_file: sibling(&live.log_file, "staging"),
        port: allocate_port()?,
        listen_addresses: String::new(),
    };
    Ok(cluster.with_spec(spec))
}

fn old_dir(cluster: &Cluster) -> PathBuf {
    sibling(&cluster.spec().data_dir, "old")
}

async fn run_steps(
    cluster: &Cluster,
    staging: &Cluster,
    archive: &Path,
    sha256: &str,
    phase: PhaseReporter<'_>,
    progress: Progress<'_>,
    state: &mut Progressed,
) -> Result<()> {
    let staging_dir = staging.spec().data_dir.clone();

    state.enter("fetching", phase);
    // A staging directory left by a crash mid-recovery is worthless: its state is unknown.
    discard_staging(staging).await?;
    let size = tokio::fs::metadata(archive)
        .await
        .with_context(|| format!("reading {}", archive.display()))?
        .len();
    tracing::debug!(archive = %archive.display(), size_bytes = size, "backup archive available");

    state.enter("verifying", phase);
    restore_backup(cluster.runner(), archive, sha256, &staging_dir, progress).await?;

    state.enter("replaying", phase);
    carry_timeline_history(cluster, &staging_dir).await?;
    staging.write_managed_config().await?;
    prepare_recovery(staging).await?;
    staging.start_private(staging.spec().port).await?;
    finish_recovery(staging).await?;
    staging.wait_healthy(HEALTH_DEADLINE).await?;
    // A clean shutdown leaves a checkpointed copy that starts without crash recovery.
    staging.stop().await?;

    state.enter("cutting_over", phase);
    cut_over(cluster, staging, state).await?;

    state.enter("health_check", phase);
    cluster.wait_healthy(HEALTH_DEADLINE).await?;
    Ok(())
}

/// Stops the live server, swaps the (stopped, promoted) staged copy into its place, keeping the
/// old directory as `<data_dir>.old`, and starts the instance on it. `state` records each rename
/// so that [`rollback`] can undo exactly what happened.
pub(super) async fn cut_over(
    cluster: &Cluster,
    staging: &Cluster,
    state: &mut Progressed,
) -> Result<()> {
    let data_dir = cluster.spec().data_dir.clone();
    let staging_dir = staging.spec().data_dir.clone();
    let old = old_dir(cluster);
    // The previous pre-recovery copy is replaced: move it aside at once and delete it in the
    // background, so a large directory's removal does not add to the downtime.
    if tokio::fs::try_exists(&old)
        .await
        .with_context(|| format!("checking {}", old.display()))?
    {
        let doomed = sibling(&old, &format!("trash-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::rename(&old, &doomed)
            .await
            .with_context(|| format!("moving {} aside", old.display()))?;
        tokio::spawn(async move {
            if let Err(err) = remove_dir_if_exists(&doomed).await {
                tracing::warn!(error = %format!("{err:#}"), dir = %doomed.display(), "could not remove a replaced data directory");
            }
        });
    }
    // Immediate, not fast: a fast stop writes a shutdown checkpoint of data we are about to set
    // aside (0.6-1.2 s under load, all of it downtime). The old directory stays crash-consistent,
    // and a rollback restarts it with ordinary crash recovery.
    cluster.stop_immediate().await?;
    tokio::fs::rename(&data_dir, &old)
        .await
        .with_context(|| format!("renaming {} to {}", data_dir.display(), old.display()))?;
    state.live_moved = true;
    tokio::fs::rename(&staging_dir, &data_dir)
        .await
        .with_context(|| {
            format!(
                "renaming {} to {}",
                staging_dir.display(),
                data_dir.display()
            )
        })?;
    state.new_in_place = true;
    // The copy was configured for the staging port; give it the instance's own.
    cluster.write_managed_config().await?;
    cluster.start().await
}

/// Copies the live instance's timeline history files (`0000000N.history`) into the staged copy.
/// At promotion PostgreSQL picks one more than the highest timeline whose history it can see; the
/// backup alone only shows its own, so a second recovery from the same backup would reuse the
/// timeline ID of the first one, and WAL of two different histories would share file names once
/// archived (postgres-pitr.md §3.4). Reading the live directory does not modify it.
pub(super) async fn carry_timeline_history(live: &Cluster, staging_dir: &Path) -> Result<()> {
    let source = live.spec().data_dir.join("pg_wal");
    let target = staging_dir.join("pg_wal");
    let mut entries = tokio::fs::read_dir(&source)
        .await
        .with_context(|| format!("listing {}", source.display()))?;
    while let Some(entry) = entries
        .next_entry()
        .await
        .with_context(|| format!("listing {}", source.display()))?
    {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_history_file) {
            continue;
        }
        let dest = target.join(&name);
        // History files never change once written, so a copy the backup already holds is the same.
        if tokio::fs::try_exists(&dest)
            .await
            .with_context(|| format!("checking {}", dest.display()))?
        {
            continue;
        }
        let bytes = tokio::fs::read(entry.path())
            .await
            .with_context(|| format!("reading {}", entry.path().display()))?;
        write_owned(&dest, &bytes, 0o600, live.runner().owner()).await?;
    }
    Ok(())
}

/// `0000000N.history`: eight hex digits of timeline ID.
fn is_history_file(name: &str) -> bool {
    name.strip_suffix(".history")
        .is_some_and(|tli| tli.len() == 8 && tli.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Stops a server on the staging directory, if any, and removes the directory.
pub(super) async fn discard_staging(staging: &Cluster) -> Result<()> {
    let dir = &staging.spec().data_dir;
    if tokio::fs::try_exists(dir)
        .await
        .with_context(|| format!("checking {}", dir.display()))?
    {
        staging.stop().await?;
        remove_dir_if_exists(dir).await?;
    }
    Ok(())
}

/// Puts the original data directory back and restarts it if it was running. Never touches the
/// contents of the original directory.
async fn rollback(
    cluster: &Cluster,
    staging: &Cluster,
    state: &Progressed,
    was_running: bool,
) -> Result<()> {
    let data_dir = &cluster.spec().data_dir;
    let staging_dir = &staging.spec().data_dir;
    if state.live_moved {
        if state.new_in_place {
            // The recovered copy occupies the live path; stop it and move it back to staging.
            cluster
                .stop()
                .await
                .context("stopping the recovered copy")?;
            tokio::fs::rename(data_dir, staging_dir)
                .await
                .context("moving the recovered copy aside")?;
        }
        let old = old_dir(cluster);
        tokio::fs::rename(&old, data_dir)
            .await
            .with_context(|| format!("moving {} back to {}", old.display(), data_dir.display()))?;
    }
    let discarded = discard_staging(staging).await;
    if was_running {
        cluster
            .start()
            .await
            .context("restarting the original data directory")?;
        cluster
            .wait_healthy(HEALTH_DEADLINE)
            .await
            .context("original data directory after rollback")?;
    }
    discarded.context("removing the staging directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_history_file_matches_only_timeline_history() {
        assert!(is_history_file("00000002.history"));
        assert!(is_history_file("0000000A.history"));
        assert!(!is_history_file("000000010000000000000002"));
        assert!(!is_history_file("000000010000000000000002.00000028.backup"));
        assert!(!is_history_file("00000002.history.tmp"));
    }
}
