//! What a point-in-time replay needs from the WAL store, checked before anything runs: every
//! segment from the backup's start along the lineage of the target timeline, and the history files
//! that name that lineage (docs/postgres-recovery.md P5, P6).

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use trove_common::rpc::conductor::GuestErrorCode;

use super::cluster::Cluster;
use super::error::{FailAs as _, Failure};
use super::request::Replay;
use super::wal_fetch::Fetched;
use super::wal_index::{
    StoreFiles, history_name, parse_history, parse_lsn, parse_segment_name, segment_name,
    timeline_end,
};

/// What the preflight learned from the store.
pub(super) struct Plan {
    /// End of the store on the target timeline, before replay started.
    pub(super) store_end: Option<u64>,
    /// The segments replay will ask the store for, in replay order: `(timeline, segment number)`.
    pub(super) needed: Vec<(u32, u64)>,
}

/// Checks, before anything runs, that the store (plus the WAL inside the backup) holds every
/// segment from the backup's start along the lineage of the target timeline: a missing segment
/// would otherwise just end recovery early (docs/postgres-recovery.md P6), and a missing `.history` file
/// would silently follow the wrong branch (P5).
pub(super) async fn preflight(
    restored: &Cluster,
    replay: &Replay<'_>,
    fetched: &Fetched,
) -> Result<Plan, Failure> {
    let start = read_backup_label(&restored.spec().data_dir).await?;
    preflight_from(restored, replay, fetched, start).await
}

/// [`preflight`] of a replay that starts at `start` (LSN, timeline) instead of the backup's
/// start: a preview moved on replays from its last restartpoint, after its `backup_label` is
/// gone. The segments already in the copy's `pg_wal` count as present, as the backup's do.
pub(super) async fn preflight_from(
    restored: &Cluster,
    replay: &Replay<'_>,
    fetched: &Fetched,
    (backup_start, backup_tli): (u64, u32),
) -> Result<Plan, Failure> {
    let data_dir = &restored.spec().data_dir;
    let store = &fetched.files;
    let size = store.segment_size;
    let target_tli = replay.timeline;

    // The lineage: (timeline, where it ends) from the oldest ancestor to the target timeline.
    let mut lineage: Vec<(u32, Option<u64>)> = Vec::new();
    if target_tli > 1 {
        let text = read_history(store, data_dir, target_tli)
            .await
            .fail_as(GuestErrorCode::BackupNotFound)?;
        for entry in parse_history(&text)? {
            lineage.push((entry.timeline, Some(entry.switch_lsn)));
        }
    }
    lineage.push((target_tli, None));
    if !lineage.iter().any(|(tli, _)| *tli == backup_tli) {
        return Err(Failure::new(
            GuestErrorCode::TargetNotReached,
            anyhow!(
                "the backup (timeline {backup_tli}) is not on the history of timeline {target_tli}"
            ),
        ));
    }

    let in_backup = backup_segments(data_dir, size).await?;
    let (needed, missing) = walk_segments(store, &lineage, backup_start, target_tli, &in_backup);
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        return Err(Failure::new(
            GuestErrorCode::BackupNotFound,
            anyhow!(
                "the WAL store has a gap: {} segment(s) missing between the backup and the target, e.g. {}",
                missing.len(),
                shown.join(", ")
            ),
        ));
    }

    let store_end = timeline_end(
        restored.bins(),
        restored.runner(),
        &fetched.root,
        store,
        target_tli,
    )
    .await?;
    Ok(Plan { store_end, needed })
}

/// The segments replay from `backup_start` along `lineage` to the newest one of `target_tli`
/// reads: those the store has (`needed`, in replay order) and those neither the store nor the
/// backup (`in_backup`) has (`missing`).
fn walk_segments(
    store: &StoreFiles,
    lineage: &[(u32, Option<u64>)],
    backup_start: u64,
    target_tli: u32,
    in_backup: &[(u32, u64)],
) -> (Vec<(u32, u64)>, Vec<String>) {
    let size = store.segment_size;
    let in_store = |tli: u32, segno: u64| {
        store
            .timelines
            .get(&tli)
            .is_some_and(|files| files.has_segment(segno))
    };
    // Segment ranges per timeline as PostgreSQL derives them: each entry begins where the previous
    // one ended. PostgreSQL reads a segment from the newest timeline whose range covers it and
    // falls back to older ones if that file is absent, which would replay the abandoned branch;
    // so the newest covering timeline's file is the one that must be there. (After a recovery
    // that stopped on an ancestor, PostgreSQL records the target timeline as parent with a switch
    // point before that timeline began; ranges by begin/end handle that as it does.)
    let mut ranges: Vec<(u32, u64, Option<u64>)> = Vec::new();
    let mut begin = 0u64;
    for (tli, end) in lineage {
        ranges.push((*tli, begin / size, end.map(|end| end / size)));
        begin = end.unwrap_or(begin);
    }
    let newest_on_target = store
        .timelines
        .get(&target_tli)
        .and_then(|files| files.complete.keys().chain(files.partial.keys()).max())
        .copied();
    // With no WAL on the target timeline yet (a fresh branch whose receiver has not started), only
    // the ancestors up to the branch segment are checked; a target past the branch point then
    // fails at the end of WAL, as it must.
    let last_needed = match newest_on_target {
        Some(newest) => newest,
        None => (begin / size).saturating_sub(1),
    };
    let mut missing: Vec<String> = Vec::new();
    let mut needed: Vec<(u32, u64)> = Vec::new();
    for segno in backup_start / size..=last_needed {
        let newest = ranges
            .iter()
            .rev()
            .find(|(_, from, to)| *from <= segno && to.is_none_or(|to| segno <= to));
        if let Some(&(tli, _, _)) = newest {
            if in_store(tli, segno) {
                needed.push((tli, segno));
            } else if !in_backup.contains(&(tli, segno)) {
                missing.push(segment_name(tli, segno, size));
            }
        }
    }
    (needed, missing)
}

/// What replay will read from the store, guessed before the backup is unpacked: from the
/// backup's start as its manifest records it and the target timeline's history in the store.
/// Lets the fetch begin while the archive is still streaming in; None when the store lacks the
/// history (the preflight then decides).
pub(super) async fn early_needed(
    fetched: &Fetched,
    target_tli: u32,
    backup_start: u64,
) -> Option<Vec<(u32, u64)>> {
    let store = &fetched.files;
    let mut lineage: Vec<(u32, Option<u64>)> = Vec::new();
    if target_tli > 1 {
        let path = store.timelines.get(&target_tli)?.history.clone()?;
        let text = tokio::fs::read_to_string(&path).await.ok()?;
        for entry in parse_history(&text).ok()? {
            lineage.push((entry.timeline, Some(entry.switch_lsn)));
        }
    }
    lineage.push((target_tli, None));
    Some(walk_segments(store, &lineage, backup_start, target_tli, &[]).0)
}

/// `START WAL LOCATION: 0/2000028 (file …)` and `START TIMELINE: 1` from `backup_label`.
async fn read_backup_label(data_dir: &Path) -> Result<(u64, u32)> {
    let path = data_dir.join("backup_label");
    let text = tokio::fs::read_to_string(&path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    let mut start = None;
    let mut tli = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("START WAL LOCATION: ") {
            let lsn = rest.split_whitespace().next().unwrap_or_default();
            start = Some(parse_lsn(lsn)?);
        } else if let Some(rest) = line.strip_prefix("START TIMELINE: ") {
            tli = Some(
                rest.trim()
                    .parse()
                    .with_context(|| format!("bad START TIMELINE in {}", path.display()))?,
            );
        }
    }
    Ok((
        start.context("backup_label without START WAL LOCATION")?,
        tli.context("backup_label without START TIMELINE")?,
    ))
}

async fn read_history(store: &StoreFiles, data_dir: &Path, tli: u32) -> Result<String> {
    let in_store = store.timelines.get(&tli).and_then(|f| f.history.clone());
    let path = match in_store {
        Some(path) => path,
        None => data_dir.join("pg_wal").join(history_name(tli)),
    };
    tokio::fs::read_to_string(&path).await.with_context(|| {
        format!("timeline {tli} has no history file in the WAL store or the data directory")
    })
}

/// Segments the backup brought along in its own `pg_wal` (`-X fetch`).
async fn backup_segments(data_dir: &Path, size: u64) -> Result<Vec<(u32, u64)>> {
    let dir = data_dir.join("pg_wal");
    let mut found = Vec::new();
    let mut entries = tokio::fs::read_dir(&dir)
        .await
        .with_context(|| format!("listing {}", dir.display()))?;
    while let Some(entry) = entries
        .next_entry()
        .await
        .with_context(|| format!("listing {}", dir.display()))?
    {
        if let Some(parsed) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_segment_name(n, size))
        {
            found.push(parsed);
        }
    }
    Ok(found)
}
