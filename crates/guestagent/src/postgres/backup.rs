//! Full base backups: `pg_basebackup` streamed through `zstd` into one checksummed archive plus a manifest.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

use super::cluster::Cluster;
use super::os_user::{create_private_file, ensure_dir, remove_file_if_exists};
use super::runner::{join_stderr, spawn_read_to_string};
use super::sibling;

/// File name of the archive inside a backup directory.
pub const ARCHIVE_FILE: &str = "base.tar.zst";
/// File name of the manifest inside a backup directory.
pub const MANIFEST_FILE: &str = "manifest.json";

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

/// Takes a full backup of the running `cluster` into `dest_dir/base.tar.zst` and writes
/// `dest_dir/manifest.json`. The WAL needed to make the copy consistent travels inside the archive
/// (`-X fetch`), so the backup restores without any WAL archive. Partial files are removed on failure.
///
/// The directory (0700) and its files (0600) belong to the agent's own user: the archive holds
/// every tenant row, and only the agent reads it back (a restore streams it into `tar`).
pub async fn take_backup(
    cluster: &Cluster,
    backup_id: &str,
    dest_dir: &Path,
) -> Result<BackupManifest> {
    ensure_dir(dest_dir, 0o700, None).await?;
    let archive = dest_dir.join(ARCHIVE_FILE);
    let archive_tmp = sibling(&archive, "tmp");
    let manifest_path = dest_dir.join(MANIFEST_FILE);
    let manifest_tmp = sibling(&manifest_path, "tmp");

    let result = async {
        let pg_version = server_version(cluster).await?;
        let start_time = Utc::now();
        let streamed = stream_backup(cluster, &archive_tmp).await?;
        let stop_time = Utc::now();
        tokio::fs::rename(&archive_tmp, &archive)
            .await
            .context("renaming the finished archive into place")?;

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
        let mut file = create_private_file(&manifest_tmp, 0o600).await?;
        file.write_all(&json)
            .await
            .context("writing the manifest")?;
        file.sync_all().await.context("syncing the manifest")?;
        drop(file);
        tokio::fs::rename(&manifest_tmp, &manifest_path)
            .await
            .context("renaming the manifest into place")?;
        sync_dir(dest_dir).await?;
        anyhow::Ok(manifest)
    }
    .await;

    if result.is_err() {
        // A half-written archive must never look like a backup, so remove even the renamed one.
        for path in [&archive_tmp, &manifest_tmp, &archive, &manifest_path] {
            let _ = remove_file_if_exists(path).await;
        }
    }
    result.with_context(|| {
        format!(
            "taking backup {backup_id} of {}",
            cluster.spec().data_dir.display()
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

/// Runs `pg_basebackup | zstd` as two processes (no shell) and copies zstd's output into `tmp`,
/// hashing on the way so the archive is read only once.
async fn stream_backup(cluster: &Cluster, tmp: &Path) -> Result<Streamed> {
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

    let copy = async {
        let mut file = create_private_file(tmp, 0o600).await?;
        let mut hasher = Sha256::new();
        let mut size_bytes = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = compressed
                .read(&mut buf)
                .await
                .context("reading zstd output")?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])
                .await
                .with_context(|| format!("writing {}", tmp.display()))?;
            size_bytes += n as u64;
        }
        file.sync_all()
            .await
            .with_context(|| format!("syncing {}", tmp.display()))?;
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
    if !bb_status.success() {
        bail!("pg_basebackup failed ({bb_status}): {}", bb_log.trim());
    }
    if !zstd_status.success() {
        bail!("zstd failed ({zstd_status}): {}", zstd_log.trim());
    }
    let (sha256, size_bytes) = copied?;
    let wal = parse_wal_range(&bb_log)
        .with_context(|| format!("parsing pg_basebackup output: {}", bb_log.trim()))?;
    Ok(Streamed {
        sha256,
        size_bytes,
        wal,
    })
}

pub(crate) async fn sync_dir(dir: &Path) -> Result<()> {
    let handle = tokio::fs::File::open(dir)
        .await
        .with_context(|| format!("opening {}", dir.display()))?;
    handle
        .sync_all()
        .await
        .with_context(|| format!("syncing {}", dir.display()))
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
