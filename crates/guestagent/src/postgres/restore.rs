//! Restoring a backup archive: verify its checksum, unpack it into a fresh data directory, and bring
//! up a new instance from it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use super::backup::{join_stderr, spawn_read_to_string};
use super::cluster::Cluster;
use super::os_user::{chown_to, ensure_dir, remove_dir_if_exists, remove_file_if_exists, set_mode};
use super::recover::{finish_recovery, prepare_recovery};
use super::runner::Runner;
use super::{Progress, sibling};

/// How long a freshly restored instance may take to answer `SELECT 1` after promotion.
const HEALTH_DEADLINE: Duration = Duration::from_secs(60);

/// Files from the source server that must not survive into a restored copy: a stale pid file, the
/// source's start options, and `standby.signal`, which would make the copy a standby that never
/// finishes recovery.
const SOURCE_ONLY_FILES: [&str; 3] = ["postmaster.pid", "postmaster.opts", "standby.signal"];

/// Reads `archive` once, computing its SHA-256, and errors with "checksum mismatch" unless it equals
/// `expected_sha256` (hex, any case). `progress` sees `(bytes_hashed, archive_size)`.
pub async fn verify_archive(
    archive: &Path,
    expected_sha256: &str,
    progress: Progress<'_>,
) -> Result<()> {
    let mut file = tokio::fs::File::open(archive)
        .await
        .with_context(|| format!("opening {}", archive.display()))?;
    let total = file
        .metadata()
        .await
        .with_context(|| format!("stat {}", archive.display()))?
        .len();
    let mut hasher = Sha256::new();
    let mut done = 0u64;
    let mut buf = vec![0u8; 1024 * 1024];
    progress(0, total);
    loop {
        let n = file
            .read(&mut buf)
            .await
            .with_context(|| format!("reading {}", archive.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done, total);
    }
    let actual = hex::encode(hasher.finalize());
    if !actual.eq_ignore_ascii_case(expected_sha256.trim()) {
        bail!(
            "checksum mismatch for {}: expected {expected_sha256}, got {actual}",
            archive.display()
        );
    }
    Ok(())
}

/// Unpacks `archive` (`zstd -dc | tar -x`, tar running as the cluster owner so every file belongs to
/// it) into `target`, which must not exist yet; it is created with mode 0700 as PostgreSQL demands.
/// On failure `target` is removed again so that a retry starts clean.
pub async fn unpack_archive(runner: &Runner, archive: &Path, target: &Path) -> Result<()> {
    if tokio::fs::try_exists(target)
        .await
        .with_context(|| format!("checking {}", target.display()))?
    {
        bail!("restore target {} already exists", target.display());
    }
    if let Some(parent) = target.parent() {
        ensure_dir(parent, 0o755, runner.owner()).await?;
    }
    tokio::fs::create_dir(target)
        .await
        .with_context(|| format!("creating {}", target.display()))?;
    let result = async {
        chown_to(target, runner.owner())?;
        set_mode(target, 0o700).await?;
        extract(runner, archive, target).await?;
        for name in SOURCE_ONLY_FILES {
            remove_file_if_exists(&target.join(name)).await?;
        }
        // tar restores the mode of `.` if the archive has that entry; PostgreSQL refuses to start
        // on a data directory readable by others.
        set_mode(target, 0o700).await
    }
    .await;
    if result.is_err() {
        let _ = remove_dir_if_exists(target).await;
    }
    result.with_context(|| format!("unpacking {} into {}", archive.display(), target.display()))
}

async fn extract(runner: &Runner, archive: &Path, target: &Path) -> Result<()> {
    // zstd runs as us: the archive may be readable only by the agent.
    let mut zstd = Command::new("zstd")
        .arg("-dc")
        .arg(archive)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning zstd -dc")?;
    let zstd_stderr = spawn_read_to_string(zstd.stderr.take());
    let plain: Stdio = zstd
        .stdout
        .take()
        .expect("stdout was configured as piped")
        .try_into()
        .context("handing zstd's output to tar")?;
    let tar_output = {
        let mut cmd = runner.command("tar");
        cmd.arg("-xf")
            .arg("-")
            .arg("-C")
            .arg(target)
            .stdin(plain)
            .kill_on_drop(true);
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning tar")?;
        // Drop our copy of the pipe (held by `cmd`) so zstd sees EPIPE if tar dies early.
        drop(cmd);
        child.wait_with_output().await.context("waiting for tar")?
    };
    let zstd_status = zstd.wait().await.context("waiting for zstd -dc")?;
    let zstd_log = join_stderr(zstd_stderr).await;
    if !zstd_status.success() {
        bail!("zstd -dc failed ({zstd_status}): {}", zstd_log.trim());
    }
    if !tar_output.status.success() {
        bail!(
            "tar -x failed ({}): {}",
            tar_output.status,
            String::from_utf8_lossy(&tar_output.stderr).trim()
        );
    }
    Ok(())
}

/// Verifies `archive` against `expected_sha256`, then unpacks it into `target` (see
/// [`verify_archive`] and [`unpack_archive`]). Nothing is written before the checksum matched.
pub async fn restore_backup(
    runner: &Runner,
    archive: &Path,
    expected_sha256: &str,
    target: &Path,
    progress: Progress<'_>,
) -> Result<()> {
    verify_archive(archive, expected_sha256, progress).await?;
    unpack_archive(runner, archive, target).await
}

/// Brings up a NEW instance from a backup (create-from-backup): restore into `spec.data_dir`, point
/// the configuration at this instance's port and socket, recover to the end of the backup, promote,
/// and check health. On failure the server is stopped and the half-restored data directory removed,
/// so a redelivered request can start over.
pub async fn restore_new(
    cluster: &Cluster,
    archive: &Path,
    sha256: &str,
    progress: Progress<'_>,
) -> Result<()> {
    let data_dir = &cluster.spec().data_dir;
    verify_archive(archive, sha256, progress).await?;
    cluster.prepare_aux_dirs().await?;
    unpack_archive(cluster.runner(), archive, data_dir).await?;
    let result = async {
        cluster.write_managed_config().await?;
        prepare_recovery(cluster).await?;
        cluster.start().await?;
        finish_recovery(cluster).await?;
        cluster.wait_healthy(HEALTH_DEADLINE).await
    }
    .await;
    if let Err(err) = result {
        discard_failed_restore(cluster).await;
        return Err(err.context(format!(
            "restoring a new instance into {}",
            data_dir.display()
        )));
    }
    Ok(())
}

/// Stops the server of a failed new-instance restore and removes its data directory, so a
/// redelivered request can start over. Best effort: the caller reports the original error.
pub(super) async fn discard_failed_restore(cluster: &Cluster) {
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
