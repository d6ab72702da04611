//! Choosing the recovery target: a time between two commits near the end of the load, read out of
//! the sealed segments in the object store with `pg_waldump`.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use trove_guestagent::testkit::{TestRoot, WalStream, fetch_segment, stored_wal};

/// Segments per 4 GiB of WAL with 16 MiB segments, as in a segment's name.
const SEGMENTS_PER_XLOGID: u64 = 0x1_0000_0000 / (16 * 1024 * 1024);

/// The segment number a segment name (`TTTTTTTTXXXXXXXXYYYYYYYY`, 16 MiB segments) stands for.
pub fn segno(name: &str) -> Option<u64> {
    let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
    let seg = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
    Some(log * SEGMENTS_PER_XLOGID + seg)
}

/// A recovery target strictly between two commits near the end of the sealed WAL on timeline 1
/// in the store: at microsecond resolution (what PostgreSQL parses) equal to no commit of that
/// segment, so the server stops *before* the next commit, as the product's stop-line check
/// expects. Returns the target and the segment it was taken from.
pub async fn pick_target(root: &TestRoot, wal: &WalStream) -> Result<(DateTime<Utc>, String)> {
    let stored = stored_wal(root.store(), wal).await?;
    let timeline = stored
        .timelines
        .get(&1)
        .context("no timeline 1 in the store")?;
    let dir = root.owned_dir("target-scan")?;
    let found = async {
        let sealed = timeline
            .segments
            .iter()
            .rev()
            .filter(|(_, s)| s.sealed.is_some());
        for (name, seg) in sealed.take(4) {
            let path = fetch_segment(root.store(), name, seg, &dir, root.runner().owner()).await?;
            let commits = segment_commits(root, &path).await?;
            if commits.len() < 10 {
                continue;
            }
            for pair in commits.windows(2).rev() {
                let (a, b) = (pair[0], pair[1]);
                if b - a < TimeDelta::microseconds(2) {
                    continue;
                }
                let mid = a + (b - a) / 2;
                let t =
                    mid - TimeDelta::nanoseconds(i64::from(mid.timestamp_subsec_nanos() % 1000));
                if t > a && t < b && !commits.contains(&t) {
                    return Ok((t, name.clone()));
                }
            }
        }
        bail!("no sealed WAL segment near the end of the load holds two separable commits")
    }
    .await;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    found
}

/// Commit times of one WAL segment file, in WAL order (`pg_waldump -r Transaction`).
async fn segment_commits(root: &TestRoot, segment: &Path) -> Result<Vec<DateTime<Utc>>> {
    let mut cmd = root.runner().command(root.bins().path("pg_waldump"));
    cmd.env("TZ", "UTC")
        .args(["-r", "Transaction"])
        .arg(segment)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = cmd.output().await.context("running pg_waldump")?;
    let mut times = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((_, desc)) = line.split_once("desc: COMMIT ") else {
            continue;
        };
        let stamp = desc.split(';').next().unwrap_or(desc).trim();
        let Some(naive) = stamp.strip_suffix(" UTC") else {
            continue;
        };
        let parsed = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
            .with_context(|| format!("bad commit time {stamp:?}"))?;
        times.push(parsed.and_utc());
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_numbers_carry_over_the_log_part() {
        assert_eq!(segno("000000010000000000000003"), Some(3));
        assert_eq!(segno("0000000100000001000000FF"), Some(256 + 255));
        assert_eq!(segno("short"), None);
    }
}
