//! The accident listing on the guest: reads the instance's WAL from the object store between two
//! times with `pg_waldump` and lists each committed transaction with what it did per relation,
//! named through the relation journal (docs/api.md, "Find the accident").
//!
//! Segments are taken along the lineage of the newest timeline, walking back from the newest one
//! until a segment's last commit precedes `since` (that segment is read too: a transaction that
//! commits later may have started in it), at most [`MAX_SEGMENTS`]; then they are dumped forward,
//! one `pg_waldump` per run of one timeline, so records that cross a segment boundary are read.

mod classify;
mod parse;

use std::collections::VecDeque;
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use trove_common::{
    store::{
        BlobStore,
        wal_keys::{StoredWal, history_key},
    },
    wal_activity::{Activity, ActivityFilter, MAX_TRANSACTIONS, RelationJournal, Transaction},
};

use super::PgBinaries;
use super::os_user::{ensure_dir, remove_dir_if_exists, write_owned};
use super::runner::Runner;
use super::wal_fetch::assemble_segment;
use super::wal_index::{
    DEFAULT_SEGMENT_SIZE, parse_history, parse_segment_name, segment_name, waldump_commits,
};

/// At most this much WAL (1 GiB of 16 MiB segments) is read for one listing.
pub const MAX_SEGMENTS: usize = 64;

/// What one listing asks for.
#[derive(Debug, Clone)]
pub struct ActivityRequest {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub filter: ActivityFilter,
}

/// Lists the activity of the instance whose WAL is under `wal_dir`, using `scratch` (a directory
/// of the agent's) for the segments it reads.
pub async fn list_activity(
    store: &BlobStore,
    wal_dir: &str,
    bins: &PgBinaries,
    runner: &Runner,
    scratch: &Path,
    req: &ActivityRequest,
    journal: &RelationJournal,
) -> Result<Activity> {
    let entries = store.list(wal_dir).await?;
    let stored = StoredWal::from_listing(wal_dir, &entries);
    let Some(&tli) = stored.timelines.keys().max() else {
        return Ok(Activity::default());
    };
    let mut lineage: Vec<(u32, Option<u64>)> = Vec::new();
    if tli > 1 {
        let key = history_key(wal_dir, tli);
        if let Some(bytes) = store.get(&key).await? {
            let text = String::from_utf8_lossy(&bytes);
            for e in parse_history(&text)? {
                lineage.push((e.timeline, Some(e.switch_lsn)));
            }
        }
    }
    lineage.push((tli, None));
    let order = lineage_segments(&stored, &lineage, DEFAULT_SEGMENT_SIZE);

    let tmp = scratch.join(format!(".activity-{}", uuid::Uuid::new_v4()));
    let result = async {
        ensure_dir(&tmp, 0o700, runner.owner()).await?;
        let (selected, reached_since) =
            select_segments(store, &stored, bins, runner, &tmp, &order, req.since).await?;
        let mut activity = dump_forward(bins, runner, &tmp, &selected, req, journal).await?;
        activity.truncated |= !reached_since;
        activity.segments = selected.len();
        Ok(activity)
    }
    .await;
    if let Err(err) = remove_dir_if_exists(&tmp).await {
        tracing::warn!(error = %format!("{err:#}"), "could not remove a listing directory");
    }
    result
}

/// Every segment the store holds along `lineage`, in WAL order: for each segment number, the
/// file of the newest timeline whose range covers it, as replay would read it (a missing one is
/// a gap, skipped).
fn lineage_segments(
    stored: &StoredWal,
    lineage: &[(u32, Option<u64>)],
    size: u64,
) -> Vec<(u32, u64)> {
    let mut ranges: Vec<(u32, u64, Option<u64>)> = Vec::new();
    let mut begin = 0u64;
    for (tli, end) in lineage {
        ranges.push((*tli, begin / size, end.map(|e| e / size)));
        begin = end.unwrap_or(begin);
    }
    let has = |tli: u32, segno: u64| {
        stored
            .timelines
            .get(&tli)
            .is_some_and(|t| t.segments.contains_key(&segment_name(tli, segno, size)))
    };
    let segnos: Vec<u64> = lineage
        .iter()
        .filter_map(|(tli, _)| stored.timelines.get(tli))
        .flat_map(|t| t.segments.keys())
        .filter_map(|name| parse_segment_name(name, size).map(|(_, s)| s))
        .collect();
    let (Some(&first), Some(&last)) = (segnos.iter().min(), segnos.iter().max()) else {
        return Vec::new();
    };
    (first..=last)
        .filter_map(|segno| {
            // Only the newest covering timeline's file: an older one's holds an abandoned tail.
            ranges
                .iter()
                .rev()
                .find(|(_, from, to)| *from <= segno && to.is_none_or(|to| segno <= to))
                .filter(|(tli, _, _)| has(*tli, segno))
                .map(|&(tli, _, _)| (tli, segno))
        })
        .collect()
}

/// Fetches segments from the newest back until one's last commit precedes `since`; returns them
/// in WAL order, and whether `since` was reached (not cut by [`MAX_SEGMENTS`]).
async fn select_segments(
    store: &BlobStore,
    stored: &StoredWal,
    bins: &PgBinaries,
    runner: &Runner,
    tmp: &Path,
    order: &[(u32, u64)],
    since: DateTime<Utc>,
) -> Result<(Vec<(u32, u64)>, bool)> {
    let size = DEFAULT_SEGMENT_SIZE;
    let mut selected = Vec::new();
    let mut reached = true;
    for (i, &(tli, segno)) in order.iter().rev().enumerate() {
        if i == MAX_SEGMENTS {
            reached = false;
            break;
        }
        let name = segment_name(tli, segno, size);
        let seg = stored
            .timelines
            .get(&tli)
            .and_then(|t| t.segments.get(&name))
            .with_context(|| format!("segment {name} is not in the listing"))?;
        let bytes = assemble_segment(store, &name, seg, size).await?;
        let dir = tmp.join(format!("tl{tli}"));
        ensure_dir(&dir, 0o700, runner.owner()).await?;
        let path = dir.join(&name);
        write_owned(&path, &bytes, 0o600, runner.owner()).await?;
        selected.push((tli, segno));
        let last_commit = waldump_commits(bins, runner, &path, None)
            .await?
            .last_commit;
        if last_commit.is_some_and(|t| t < since) {
            break;
        }
    }
    selected.reverse();
    Ok((selected, reached))
}

/// Dumps the selected segments in WAL order, one `pg_waldump` per run of one timeline, and keeps
/// the newest [`MAX_TRANSACTIONS`] transactions that committed in the window and pass the filter.
async fn dump_forward(
    bins: &PgBinaries,
    runner: &Runner,
    tmp: &Path,
    selected: &[(u32, u64)],
    req: &ActivityRequest,
    journal: &RelationJournal,
) -> Result<Activity> {
    let size = DEFAULT_SEGMENT_SIZE;
    let mut parser = parse::Parser::default();
    let mut kept: VecDeque<Transaction> = VecDeque::new();
    let mut truncated = false;
    for run in selected.chunk_by(|a, b| a.0 == b.0 && a.1 + 1 == b.1) {
        let (tli, first) = run[0];
        let last = run[run.len() - 1].1;
        let mut cmd = runner.command(bins.path("pg_waldump"));
        // Commit times in UTC; the zone is not printed in full otherwise.
        cmd.env("TZ", "UTC")
            .arg("-p")
            .arg(tmp.join(format!("tl{tli}")))
            .arg(segment_name(tli, first, size))
            .arg(segment_name(tli, last, size))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("running pg_waldump")?;
        let stdout = child.stdout.take().context("pg_waldump's output")?;
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            let Some(commit) = parser.feed(&line) else {
                continue;
            };
            if commit.time < req.since || commit.time > req.until {
                continue;
            }
            let Some(mut t) = classify::classify(&commit, tli, journal) else {
                continue;
            };
            t.changes.retain(|c| req.filter.keeps(c));
            if t.changes.is_empty() {
                continue;
            }
            if kept.len() == MAX_TRANSACTIONS {
                kept.pop_front();
                truncated = true;
            }
            kept.push_back(t);
        }
        // The end of the newest segment is invalid WAL (zeros): pg_waldump exits non-zero there.
        let _ = child.wait().await;
    }
    Ok(Activity {
        transactions: kept.into(),
        truncated,
        segments: 0,
    })
}

#[cfg(test)]
mod tests {
    use trove_common::store::wal_keys::{StoredSegment, StoredTimeline};

    use super::*;

    fn timeline(tli: u32, segnos: &[u64]) -> StoredTimeline {
        StoredTimeline {
            history: None,
            segments: segnos
                .iter()
                .map(|&s| {
                    (
                        segment_name(tli, s, DEFAULT_SEGMENT_SIZE),
                        StoredSegment::default(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_lineage_reads_each_segment_from_the_newest_timeline_that_covers_it() {
        let mut stored = StoredWal::default();
        stored.timelines.insert(1, timeline(1, &[1, 2, 3, 4, 5]));
        // Branched inside segment 3; segment 5 of the branch is missing from the store.
        stored.timelines.insert(2, timeline(2, &[3, 4, 6]));
        // An abandoned branch off timeline 1 is not on timeline 2's lineage.
        stored.timelines.insert(3, timeline(3, &[2, 3]));
        let lineage = [(1, Some(0x0300_0100)), (2, None)];
        assert_eq!(
            lineage_segments(&stored, &lineage, DEFAULT_SEGMENT_SIZE),
            vec![(1, 1), (1, 2), (2, 3), (2, 4), (2, 6)]
        );
        assert!(
            lineage_segments(&StoredWal::default(), &[(1, None)], DEFAULT_SEGMENT_SIZE).is_empty()
        );
    }
}
