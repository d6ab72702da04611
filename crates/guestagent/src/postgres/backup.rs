//! Full base backups: `pg_basebackup` streamed through `zstd` straight into the object store
//! (a multipart upload, no local copy), with a manifest written once the archive is complete.

use std::process::Stdio;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;
use trove_common::store::BlobStore;

use super::cluster::Cluster;
use super::runner::{join_stderr, spawn_read_to_string};

pub use trove_common::store::layout::{ARCHIVE_FILE, MANIFEST_FILE};

/// What a restore needs to know about a backup; stored as `manifest.json` next to the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub backup_id: String,
    /// Archive file name relative to the manifest, `base.tar.zst`.
    pub file: String,
    /// Lowercase hex SHA-256 of the archive file.
    pub checksum: String,
    pub size_bytes: u64,
    /// WAL position where the backup starts (`X/Y`).
    pub start_lsn: String,
    /// WAL position where the backup becomes consistent; the earliest point it can restore to.
    pub stop_lsn: String,
    pub timeline: u32,
    pub start_time: DateTime<Utc>,
    pub stop_time: DateTime<Utc>,
    /// Server version, e.g. `15.18`.
    pub pg_version: String,
}

/// Where a backup goes: the archive's key and the manifest's key in `store`.
#[derive(Debug, Clone, Copy)]
pub struct BackupDest<'a> {
    pub store: &'a BlobStore,
    pub archive: &'a str,
    pub manifest: &'a str,
}

/// Takes a full backup of the running `cluster` into `dest.archive` and then writes
/// `dest.manifest`. The WAL needed to make the copy consistent travels inside the archive
/// (`-X fetch`), so the backup restores without any WAL archive. The archive streams into the
/// store as it is made; on failure the upload is aborted, so nothing appears under either key.
pub async fn take_backup(
    cluster: &Cluster,
    backup_id: &str,
    dest: BackupDest<'_>,
) -> Result<BackupManifest> {
    let result = async {
        let pg_version = server_version(cluster).await?;
        let start_time = Utc::now();
        let streamed = stream_backup(cluster, dest).await?;
        let stop_time = Utc::now();
        let manifest = BackupManifest {
            backup_id: backup_id.to_owned(),
            file: ARCHIVE_FILE.to_owned(),
            checksum: streamed.sha256,
            size_bytes: streamed.size_bytes,
            start_lsn: streamed.wal.start_lsn,
            stop_lsn: streamed.wal.stop_lsn,
            timeline: streamed.wal.timeline,
            start_time,
            stop_time,
            pg_version,
        };
        let json =
            serde_json::to_vec_pretty(&manifest).context("serializing the backup manifest")?;
        dest.store.put(dest.manifest, Bytes::from(json)).await?;
        anyhow::Ok(manifest)
    }
    .await;
    if result.is_err() {
        // A half-written backup must never look like one: the archive may be complete already.
        let _ = dest.store.delete(dest.archive).await;
        let _ = dest.store.delete(dest.manifest).await;
    }
    result.with_context(|| {
        format!(
            "taking backup {backup_id} of {} into {}",
            cluster.spec().data_dir.display(),
            dest.store.describe()
        )
    })
}

/// `15.18` from `server_version` (`15.18 (Debian 15.18-1.pgdg120+1)`).
async fn server_version(cluster: &Cluster) -> Result<String> {
    let mut conn = cluster.connect().await?;
    let full: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut conn)
        .await
        .context("reading server_version")?;
    Ok(full
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

struct Streamed {
    sha256: String,
    size_bytes: u64,
    wal: WalRange,
}

/// Runs `pg_basebackup | zstd` as two processes (no shell) and streams zstd's output into the
/// store, hashing on the way so the archive is read only once and never lands on local disk.
async fn stream_backup(cluster: &Cluster, dest: BackupDest<'_>) -> Result<Streamed> {
    let spec = cluster.spec();
    let mut basebackup = {
        let mut cmd = cluster
            .runner()
            .command(cluster.bins().path("pg_basebackup"));
        cmd.arg("-h")
            .arg(&spec.socket_dir)
            .arg("-p")
            .arg(spec.port.to_string())
            .args([
                "-U",
                "postgres",
                "-D",
                "-",
                "-Ft",
                "-X",
                "fetch",
                "--checkpoint=fast",
                "-v",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If we are cancelled, nothing should keep streaming into a pipe no one reads.
            .kill_on_drop(true);
        cmd.spawn().context("spawning pg_basebackup")?
    };
    let bb_stderr = spawn_read_to_string(basebackup.stderr.take());
    let bb_stdout: Stdio = basebackup
        .stdout
        .take()
        .expect("stdout was configured as piped")
        .try_into()
        .context("handing pg_basebackup's output to zstd")?;
    // The Command is dropped right after spawning so that we hold no copy of the pipe: if zstd dies,
    // pg_basebackup then gets EPIPE instead of blocking forever.
    let mut zstd = Command::new("zstd")
        .args(["-q", "-1", "-c"])
        .current_dir("/")
        .stdin(bb_stdout)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning zstd")?;
    let zstd_stderr = spawn_read_to_string(zstd.stderr.take());
    let mut compressed = zstd.stdout.take().expect("stdout was configured as piped");

    let mut upload = dest.store.writer(dest.archive)?;
    let copy = async {
        let mut hasher = Sha256::new();
        let mut size_bytes = 0u64;
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = compressed
                .read(&mut buf)
                .await
                .context("reading zstd output")?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            upload
                .write_all(&buf[..n])
                .await
                .with_context(|| format!("uploading {}", dest.archive))?;
            size_bytes += n as u64;
        }
        anyhow::Ok((hex::encode(hasher.finalize()), size_bytes))
    };
    let copied = copy.await;

    let zstd_status = zstd.wait().await.context("waiting for zstd")?;
    let bb_status = basebackup
        .wait()
        .await
        .context("waiting for pg_basebackup")?;
    let bb_log = join_stderr(bb_stderr).await;
    let zstd_log = join_stderr(zstd_stderr).await;
    let failed = if !bb_status.success() {
        Some(anyhow::anyhow!(
            "pg_basebackup failed ({bb_status}): {}",
            bb_log.trim()
        ))
    } else if !zstd_status.success() {
        Some(anyhow::anyhow!(
            "zstd failed ({zstd_status}): {}",
            zstd_log.trim()
        ))
    } else {
        copied.as_ref().err().map(|e| anyhow::anyhow!("{e:#}"))
    };
    if let Some(err) = failed {
        // Nothing of an aborted multipart upload becomes visible.
        if let Err(abort) = upload.abort().await {
            tracing::warn!(error = %abort, key = dest.archive, "could not abort a backup upload");
        }
        return Err(err);
    }
    upload
        .shutdown()
        .await
        .with_context(|| format!("completing the upload of {}", dest.archive))?;
    let (sha256, size_bytes) = copied?;
    let wal = parse_wal_range(&bb_log)
        .with_context(|| format!("parsing pg_basebackup output: {}", bb_log.trim()))?;
    Ok(Streamed {
        sha256,
        size_bytes,
        wal,
    })
}

#[derive(Debug, PartialEq, Eq)]
struct WalRange {
    start_lsn: String,
    stop_lsn: String,
    timeline: u32,
}

/// Reads the WAL range from `pg_basebackup -v` output:
/// `write-ahead log start point: 0/2000028 on timeline 1` and `write-ahead log end point: 0/2000100`.
fn parse_wal_range(stderr: &str) -> Result<WalRange> {
    const START: &str = "write-ahead log start point: ";
    const END: &str = "write-ahead log end point: ";
    let mut start = None;
    let mut stop = None;
    for line in stderr.lines() {
        if let Some(rest) = line.split_once(START).map(|(_, rest)| rest) {
            let (lsn, timeline) = rest
                .trim()
                .split_once(" on timeline ")
                .with_context(|| format!("no timeline in start point line {line:?}"))?;
            let timeline: u32 = timeline
                .trim()
                .parse()
                .with_context(|| format!("bad timeline in {line:?}"))?;
            start = Some((lsn.to_owned(), timeline));
        } else if let Some(rest) = line.split_once(END).map(|(_, rest)| rest) {
            stop = Some(rest.trim().to_owned());
        }
    }
    let (start_lsn, timeline) =
        start.context("no write-ahead log start point in pg_basebackup output")?;
    let stop_lsn = stop.context("no write-ahead log end point in pg_basebackup output")?;
    Ok(WalRange {
        start_lsn,
        stop_lsn,
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_wal_range_reads_start_stop_and_timeline() {
        let stderr = "pg_basebackup: initiating base backup, waiting for checkpoint to complete\n\
                      pg_basebackup: checkpoint completed\n\
                      pg_basebackup: write-ahead log start point: 0/2000028 on timeline 3\n\
                      pg_basebackup: write-ahead log end point: 0/2000100\n\
                      pg_basebackup: syncing data to disk ...\n\
                      pg_basebackup: base backup completed\n";
        let range = parse_wal_range(stderr).expect("parses");
        assert_eq!(
            range,
            WalRange {
                start_lsn: "0/2000028".into(),
                stop_lsn: "0/2000100".into(),
                timeline: 3
            }
        );
    }

    #[test]
    fn parse_wal_range_fails_without_end_point() {
        assert!(
            parse_wal_range(
                "pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1\n"
            )
            .is_err()
        );
    }
}
