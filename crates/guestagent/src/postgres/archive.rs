//! Backup archives on the way back in: verify the checksum, then unpack into a fresh data
//! directory. Nothing is unpacked before the checksum matched.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;
use trove_common::rpc::conductor::GuestErrorCode;

use super::Progress;
use super::error::{FailAs as _, Failure};
use super::os_user::{chown_to, ensure_dir, remove_dir_if_exists, remove_file_if_exists, set_mode};
use super::runner::Runner;
use super::runner::{join_stderr, spawn_read_to_string};

/// Files from the source server that must not survive into a restored copy: a stale pid file, the
/// source's start options, and `standby.signal`, which would make the copy a standby that never
/// finishes recovery.
const SOURCE_ONLY_FILES: [&str; 3] = ["postmaster.pid", "postmaster.opts", "standby.signal"];

/// Reads `archive` once, computing its SHA-256, and fails with
/// [`GuestErrorCode::ChecksumMismatch`] unless it equals `expected_sha256` (hex, any case), or
/// [`GuestErrorCode::BackupNotFound`] if there is no archive. `progress` sees
/// `(bytes_hashed, archive_size)`.
pub async fn verify_archive(
    archive: &Path,
    expected_sha256: &str,
    progress: Progress<'_>,
) -> Result<(), Failure> {
    let mut file = match tokio::fs::File::open(archive).await {
        Ok(file) => file,
        Err(err) => {
            let code = if err.kind() == std::io::ErrorKind::NotFound {
                GuestErrorCode::BackupNotFound
            } else {
                GuestErrorCode::Internal
            };
            return Err(Failure::new(
                code,
                anyhow::Error::new(err).context(format!("opening {}", archive.display())),
            ));
        }
    };
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
        return Err(Failure::new(
            GuestErrorCode::ChecksumMismatch,
            anyhow::anyhow!(
                "checksum mismatch for {}: expected {expected_sha256}, got {actual}",
                archive.display()
            ),
        ));
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
        ensure_dir(parent, 0o700, runner.owner()).await?;
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
) -> Result<(), Failure> {
    verify_archive(archive, expected_sha256, progress).await?;
    unpack_archive(runner, archive, target)
        .await
        .fail_as(GuestErrorCode::RestoreFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("trove-archive-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[tokio::test]
    async fn a_missing_archive_is_backup_not_found() {
        let dir = scratch();
        let err = verify_archive(&dir.join("absent.tar.zst"), "00", &|_, _| {})
            .await
            .expect_err("nothing to verify");
        assert_eq!(err.code, GuestErrorCode::BackupNotFound);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_damaged_archive_is_a_checksum_mismatch_and_nothing_is_unpacked() {
        let dir = scratch();
        let archive = dir.join("base.tar.zst");
        std::fs::write(&archive, b"the archive as it is now").expect("write");
        let recorded = sha256_hex(b"the archive as it was");
        let target = dir.join("data");
        let err = restore_backup(&Runner::direct(), &archive, &recorded, &target, &|_, _| {})
            .await
            .expect_err("checksum differs");
        assert_eq!(err.code, GuestErrorCode::ChecksumMismatch);
        assert!(!target.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn an_archive_that_does_not_unpack_is_restore_failed_and_leaves_no_directory() {
        let dir = scratch();
        let archive = dir.join("base.tar.zst");
        let bytes = b"not zstd at all";
        std::fs::write(&archive, bytes).expect("write");
        let target = dir.join("data");
        let err = restore_backup(
            &Runner::direct(),
            &archive,
            &sha256_hex(bytes),
            &target,
            &|_, _| {},
        )
        .await
        .expect_err("zstd refuses it");
        assert_eq!(err.code, GuestErrorCode::RestoreFailed);
        assert!(!target.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
