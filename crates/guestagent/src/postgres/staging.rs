//! The staged copy of an in-place recovery and its swap with the live data directory: build the
//! copy beside the live data while the instance keeps serving, swap the two with renames, and put
//! the original back on any failure (docs/postgres-recovery.md §3.8 B). Used by every recovery in
//! place, whatever its target.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::cluster::Cluster;
use super::error::RecoveryError;
use super::os_user::{remove_dir_if_exists, write_owned};
use super::replay::HEALTH_DEADLINE;
use super::spec::ClusterSpec;
use super::{allocate_port, sibling};

/// What the swap has changed so far; drives the rollback.
#[derive(Debug, Default)]
pub(super) struct Swap {
    /// The live data directory has been renamed to `<data_dir>.old`.
    live_moved: bool,
    /// The recovered copy now sits at `data_dir`.
    new_in_place: bool,
}

/// The staging copy: beside the live data directory (same file system, so the swap is two renames),
/// its own log, and a port of its own that tenants never see.
pub(super) fn staging_cluster(cluster: &Cluster) -> Result<Cluster> {
    Ok(staging_on(cluster, allocate_port()?, String::new()))
}

/// The staging copy of a preview: on `port`, listening on the instance's own addresses, so its
/// users (their passwords are in the data) and client rules (the instance's `pg_hba.conf`) work.
pub(super) fn preview_cluster(cluster: &Cluster, port: u16) -> Cluster {
    let listen = cluster.spec().listen_addresses.clone();
    staging_on(cluster, port, listen)
}

fn staging_on(cluster: &Cluster, port: u16, listen_addresses: String) -> Cluster {
    let live = cluster.spec();
    let spec = ClusterSpec {
        data_dir: sibling(&live.data_dir, "staging"),
        socket_dir: live.socket_dir.clone(),
        log_file: sibling(&live.log_file, "staging"),
        port,
        listen_addresses,
        // The same rules as the live server: once swapped in, the copy serves the instance.
        hba_file: live.hba_file.clone(),
    };
    cluster.with_spec(spec)
}

/// [`cut_over`], then the health check, timed: the downtime runs from stopping the live server
/// to the instance's port answering on the recovered data. The health check's failure is
/// reported as such.
pub(super) async fn timed_cut_over(
    cluster: &Cluster,
    staging: &Cluster,
    swap: &mut Swap,
    steps: &mut super::steps::Steps<'_>,
) -> std::result::Result<u64, super::error::Failure> {
    use super::error::FailAs as _;
    use trove_common::{rpc::conductor::GuestErrorCode, status::RecoveryPhase};
    steps.enter(RecoveryPhase::CuttingOver);
    let mut stopped_at = None;
    cut_over(cluster, staging, swap, &mut stopped_at)
        .await
        .fail_as(GuestErrorCode::StartFailed)?;
    steps.enter(RecoveryPhase::HealthCheck);
    cluster
        .wait_healthy(HEALTH_DEADLINE)
        .await
        .fail_as(GuestErrorCode::HealthCheckFailed)?;
    let downtime = stopped_at.map_or(0, |at: std::time::Instant| at.elapsed().as_millis());
    Ok(u64::try_from(downtime).unwrap_or(u64::MAX))
}

fn old_dir(cluster: &Cluster) -> PathBuf {
    sibling(&cluster.spec().data_dir, "old")
}

/// Rolls back (see [`rollback`]) after `err` and returns the error to report, which also carries
/// a failed rollback.
pub(super) async fn fail_with_rollback(
    cluster: &Cluster,
    staging: &Cluster,
    swap: &Swap,
    was_running: bool,
    mut err: RecoveryError,
) -> RecoveryError {
    tracing::warn!(error = %err, phase = %err.phase, "in-place recovery failed; rolling back");
    if let Err(rollback_err) = rollback(cluster, staging, swap, was_running).await {
        err.source = err
            .source
            .context(format!("rollback also failed: {rollback_err:#}"));
    }
    err
}

/// Stops the live server, swaps the (stopped, promoted) staged copy into its place, keeping the
/// old directory as `<data_dir>.old`, and starts the instance on it. `state` records each rename
/// so that [`rollback`] can undo exactly what happened.
async fn cut_over(
    cluster: &Cluster,
    staging: &Cluster,
    swap: &mut Swap,
    stopped_at: &mut Option<std::time::Instant>,
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
    *stopped_at = Some(std::time::Instant::now());
    cluster.stop_immediate().await?;
    tokio::fs::rename(&data_dir, &old)
        .await
        .with_context(|| format!("renaming {} to {}", data_dir.display(), old.display()))?;
    swap.live_moved = true;
    tokio::fs::rename(&staging_dir, &data_dir)
        .await
        .with_context(|| {
            format!(
                "renaming {} to {}",
                staging_dir.display(),
                data_dir.display()
            )
        })?;
    swap.new_in_place = true;
    // The copy was configured for the staging port; give it the instance's own.
    cluster.write_managed_config().await?;
    cluster.start().await
}

/// Copies the live instance's timeline history files (`0000000N.history`) into the staged copy.
/// At promotion PostgreSQL picks one more than the highest timeline whose history it can see; the
/// backup alone only shows its own, so a second recovery from the same backup would reuse the
/// timeline ID of the first one, and WAL of two different histories would share file names once
/// archived (docs/postgres-recovery.md §3.4). Reading the live directory does not modify it.
pub(super) async fn carry_timeline_history(live: &Cluster, staging_dir: &Path) -> Result<()> {
    let source = live.spec().data_dir.join("pg_wal");
    let target = staging_dir.join("pg_wal");
    // A copy without `pg_wal` cannot start; leave that failure to the start, which names it.
    if !tokio::fs::try_exists(&target)
        .await
        .with_context(|| format!("checking {}", target.display()))?
    {
        return Ok(());
    }
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
    swap: &Swap,
    was_running: bool,
) -> Result<()> {
    let data_dir = &cluster.spec().data_dir;
    let staging_dir = &staging.spec().data_dir;
    if swap.live_moved {
        if swap.new_in_place {
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
