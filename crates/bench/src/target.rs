//! Choosing the recovery target: a time between two commits near the end of the load, read out of
//! the WAL store with `pg_waldump`.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use trove_guestagent::postgres::timeline_dir;
use trove_guestagent::testkit::{TestRoot, segment_names};

/// A recovery target strictly between two commits near the end of the completed WAL on timeline
/// 1: at microsecond resolution (what PostgreSQL parses) equal to no commit of that segment, so the
/// server stops *before* the next commit, as the product's stop-line check expects. Returns the
/// target and the segment it was taken from.
pub async fn pick_target(root: &TestRoot, wal_root: &Path) -> Result<(DateTime<Utc>, String)> {
    let dir = timeline_dir(wal_root, 1);
    for name in segment_names(&dir)?.iter().rev().take(4) {
        let commits = segment_commits(root, &dir.join(name)).await?;
        if commits.len() < 10 {
            continue;
        }
        for pair in commits.windows(2).rev() {
            let (a, b) = (pair[0], pair[1]);
            if b - a < TimeDelta::microseconds(2) {
                continue;
            }
            let mid = a + (b - a) / 2;
            let t = mid - TimeDelta::nanoseconds(i64::from(mid.timestamp_subsec_nanos() % 1000));
            if t > a && t < b && !commits.contains(&t) {
                return Ok((t, name.clone()));
            }
        }
    }
    bail!("no completed WAL segment near the end of the load holds two separable commits")
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
