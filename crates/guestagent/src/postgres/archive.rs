//! Backup archives on the way back in: streamed from the object store through `zstd -dc | tar`
//! into a fresh data directory, hashed on the way. A missing archive is refused before anything is
//! written; a damaged one is found when the stream ends, and the directory is then removed. Either
//! way only a directory that is not yet live data (a staging copy, a new instance) is touched.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;
use trove_common::{rpc::conductor::GuestErrorCode, store::BlobStore};

use super::Progress;
use super::error::{FailAs as _, Failure};
use super::os_user::{chown_to, ensure_dir, remove_dir_if_exists, remove_file_if_exists, set_mode};
use super::runner::Runner;
use super::runner::{join_stderr, spawn_read_to_string};

/// Files from the source server that must not survive into a restored copy: a stale pid file, the
/// source's start options, and `standby.signal`, which would make the copy a standby that never
/// finishes recovery.
const SOURCE_ONLY_FILES: [&str; 3] = ["postmaster.pid", "postmaster.opts", "standby.signal"];

/// Ranges of the archive fetched at once while it unpacks: several requests in flight keep the
/// unpack fed where one connection's throughput is the limit.
const FETCH_PART: u64 = 8 * 1024 * 1024;
const FETCH_PARALLEL: usize = 4;

/// A backup archive in the store and the checksum it must have.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveSource<'a> {
    pub store: &'a BlobStore,
    /// Key of `base.tar.zst`.
    pub key: &'a str,
    /// Its sha256, hex (any case).
    pub sha256: &'a str,
}

/// Streams `source` into `target`, which must not exist yet; it is created with mode 0700 as
/// PostgreSQL demands and every file belongs to the cluster's OS user (tar runs as it).
///
/// Fails with [`GuestErrorCode::BackupNotFound`] before creating anything when the archive is not
/// in the store, [`GuestErrorCode::ChecksumMismatch`] when its bytes do not hash to
/// `source.sha256`, and [`GuestErrorCode::RestoreFailed`] when it does not unpack. On any failure
/// `target` is removed, so a retry starts clean. `progress` sees `(bytes_read, archive_size)`.
pub async fn restore_backup(
    runner: &Runner,
    source: ArchiveSource<'_>,
    target: &Path,
    progress: Progress<'_>,
) -> Result<(), Failure> {
    let Some((total, stream)) = source
        .store
        .get_parallel(source.key, FETCH_PART, FETCH_PARALLEL)
        .await?
    else {
        return Err(Failure::new(
            GuestErrorCode::BackupNotFound,
            anyhow!(
                "backup archive {} is not in {}",
                source.key,
                source.store.describe()
            ),
        ));
    };
    if tokio::fs::try_exists(target)
        .await
        .with_context(|| format!("checking {}", target.display()))?
    {
        return Err(anyhow!("restore target {} already exists", target.display()).into());
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
        let (actual, unpacked) = extract(runner, stream, total, target, progress).await?;
        if !actual.eq_ignore_ascii_case(source.sha256.trim()) {
            return Err(Failure::new(
                GuestErrorCode::ChecksumMismatch,
                anyhow!(
                    "checksum mismatch for {}: expected {}, got {actual}",
                    source.key,
                    source.sha256
                ),
            ));
        }
        unpacked
            .with_context(|| format!("unpacking {} into {}", source.key, target.display()))
            .fail_as(GuestErrorCode::RestoreFailed)?;
        for name in SOURCE_ONLY_FILES {
            remove_file_if_exists(&target.join(name)).await?;
        }
        // tar restores the mode of `.` if the archive has that entry; PostgreSQL refuses to start
        // on a data directory readable by others.
        set_mode(target, 0o700).await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = remove_dir_if_exists(target).await;
    }
    result
}

/// Pipes the stream into `zstd -dc | tar -x` and returns the stream's sha256 with how unpacking
/// went. A damaged archive usually also makes zstd or tar fail; the caller lets the checksum
/// decide what the failure is called.
async fn extract(
    runner: &Runner,
    mut stream: futures_util::stream::BoxStream<'static, Result<bytes::Bytes>>,
    total: u64,
    target: &Path,
    progress: Progress<'_>,
) -> Result<(String, Result<()>), Failure> {
    // zstd runs as us; tar runs as the cluster owner so that every file belongs to it.
    let mut zstd = Command::new("zstd")
        .arg("-dc")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning zstd -dc")?;
    let zstd_stderr = spawn_read_to_string(zstd.stderr.take());
    let mut zstd_in = zstd.stdin.take().context("zstd without stdin")?;
    let plain: Stdio = zstd
        .stdout
        .take()
        .context("zstd without stdout")?
        .try_into()
        .context("handing zstd's output to tar")?;
    let tar = {
        let mut cmd = runner.command("tar");
        cmd.arg("-xf")
            .arg("-")
            .arg("-C")
            .arg(target)
            .stdin(plain)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().context("spawning tar")?;
        // Drop our copy of the pipe (held by `cmd`) so zstd sees EPIPE if tar dies early.
        drop(cmd);
        child
    };
    let tar_output = tokio::spawn(tar.wait_with_output());

    let mut hasher = Sha256::new();
    let mut done = 0u64;
    progress(0, total);
    let mut read_error = None;
    let mut write_error = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                read_error = Some(err);
                break;
            }
        };
        hasher.update(&chunk);
        done += chunk.len() as u64;
        progress(done, total);
        // Once zstd is gone (a damaged archive), keep hashing: the checksum names the failure.
        if write_error.is_none()
            && let Err(err) = zstd_in.write_all(&chunk).await
        {
            write_error = Some(err);
        }
    }
    drop(zstd_in);
    let zstd_status = zstd.wait().await.context("waiting for zstd -dc")?;
    let zstd_log = join_stderr(zstd_stderr).await;
    let tar_output = tar_output
        .await
        .context("tar task failed")?
        .context("waiting for tar")?;
    if let Some(err) = read_error {
        return Err(Failure::new(
            GuestErrorCode::RestoreFailed,
            err.context("the archive stream from the store broke off"),
        ));
    }
    let actual = hex::encode(hasher.finalize());
    let unpacked: Result<()> = (|| {
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
        if let Some(err) = write_error {
            bail!("feeding zstd: {err}");
        }
        Ok(())
    })();
    Ok((actual, unpacked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trove_common::store::StoreConfig;

    fn scratch() -> (std::path::PathBuf, BlobStore) {
        let dir = std::env::temp_dir().join(format!("trove-archive-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let store = BlobStore::open(&StoreConfig {
            path: dir.join("store"),
            ..StoreConfig::default()
        })
        .expect("a local store");
        (dir, store)
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    async fn restore(store: &BlobStore, sha256: &str, target: &Path) -> Result<(), Failure> {
        let source = ArchiveSource {
            store,
            key: "backups/b/base.tar.zst",
            sha256,
        };
        restore_backup(&Runner::direct(), source, target, &|_, _| {}).await
    }

    #[tokio::test]
    async fn a_missing_archive_is_backup_not_found_and_creates_nothing() {
        let (dir, store) = scratch();
        let target = dir.join("data");
        let err = restore(&store, "00", &target)
            .await
            .expect_err("nothing to restore");
        assert_eq!(err.code, GuestErrorCode::BackupNotFound);
        assert!(!target.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_damaged_archive_is_a_checksum_mismatch_and_leaves_no_directory() {
        let (dir, store) = scratch();
        store
            .put(
                "backups/b/base.tar.zst",
                b"the archive as it is now".to_vec().into(),
            )
            .await
            .expect("put");
        let recorded = sha256_hex(b"the archive as it was");
        let target = dir.join("data");
        let err = restore(&store, &recorded, &target)
            .await
            .expect_err("checksum differs");
        assert_eq!(err.code, GuestErrorCode::ChecksumMismatch);
        assert!(!target.exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn an_archive_that_does_not_unpack_is_restore_failed_and_leaves_no_directory() {
        let (dir, store) = scratch();
        let bytes = b"not zstd at all";
        store
            .put("backups/b/base.tar.zst", bytes.to_vec().into())
            .await
            .expect("put");
        let target = dir.join("data");
        let err = restore(&store, &sha256_hex(bytes), &target)
            .await
            .expect_err("zstd refuses it");
        assert_eq!(err.code, GuestErrorCode::RestoreFailed);
        assert!(!target.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
