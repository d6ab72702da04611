//! What a local WAL directory holds (an instance's spool, or the fetch directory of a replay):
//! per-timeline segment ranges, gaps, lineage and the latest commit.
//!
//! Layout (the receiver's in the spool, [`super::wal_fetch`]'s in a fetch directory):
//! `<root>/tl<N>/` per timeline N (decimal), holding completed segments (`<24 hex>`), at most one
//! segment in progress (`<24 hex>.partial`), the timeline's history file (`<8 hex>.history`) and
//! sidecars (`<segment>.sha256` in `sha256sum` format in a fetch directory, `<segment>.summary`
//! with the segment's last commit time in the spool, kept after the segment itself is shipped).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, NaiveDateTime, Utc};

use trove_common::recovery::{self, WalTimeline};

pub(crate) use trove_common::recovery::format_lsn;

use super::PgBinaries;
use super::os_user::{OsUser, ensure_dir, is_root, remove_dir_if_exists, write_owned};
use super::runner::Runner;

/// `initdb`'s default; the store reads the real size from the files when it has any.
pub(crate) const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;
const PARTIAL_SUFFIX: &str = ".partial";
const SUMMARY_SUFFIX: &str = ".summary";

/// One timeline's entry in a `.history` file: WAL of `timeline` is valid up to `switch_lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    pub timeline: u32,
    pub switch_lsn: u64,
}

/// Files of one timeline found in the store.
#[derive(Debug, Default)]
pub(crate) struct TimelineFiles {
    pub complete: BTreeMap<u64, PathBuf>,
    pub partial: BTreeMap<u64, PathBuf>,
    pub history: Option<PathBuf>,
    /// `<segment>.summary` files, which outlive a shipped segment in the spool.
    pub summaries: BTreeMap<u64, PathBuf>,
}

impl TimelineFiles {
    pub fn has_segment(&self, segno: u64) -> bool {
        self.complete.contains_key(&segno) || self.partial.contains_key(&segno)
    }

    pub fn segnos(&self) -> BTreeSet<u64> {
        self.complete
            .keys()
            .chain(self.partial.keys())
            .copied()
            .collect()
    }
}

/// Everything found under a store root, by timeline.
#[derive(Debug, Default)]
pub(crate) struct StoreFiles {
    pub timelines: BTreeMap<u32, TimelineFiles>,
    pub segment_size: u64,
}

/// `X/Y` (hex halves) as PostgreSQL prints an LSN.
pub(crate) fn parse_lsn(text: &str) -> Result<u64> {
    recovery::parse_lsn(text).with_context(|| format!("bad lsn {text:?}"))
}

fn segments_per_xlogid(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size
}

/// `TTTTTTTTXXXXXXXXYYYYYYYY` → (timeline, segment number), as PostgreSQL's `XLogFromFileName`.
pub(crate) fn parse_segment_name(name: &str, segment_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some((tli, log * segments_per_xlogid(segment_size) + seg))
}

pub(crate) fn segment_name(tli: u32, segno: u64, segment_size: u64) -> String {
    let per = segments_per_xlogid(segment_size);
    format!("{tli:08X}{:08X}{:08X}", segno / per, segno % per)
}

/// `0000000N.history` → N.
pub(crate) fn parse_history_name(name: &str) -> Option<u32> {
    let tli = name.strip_suffix(".history")?;
    if tli.len() != 8 || !tli.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(tli, 16).ok()
}

pub(crate) fn history_name(tli: u32) -> String {
    format!("{tli:08X}.history")
}

/// The store directory of timeline `tli`: `<wal_root>/tl<tli>`.
pub fn timeline_dir(wal_root: &Path, tli: u32) -> PathBuf {
    wal_root.join(format!("tl{tli}"))
}

/// The entries of a `.history` file: `parentTLI <tab> switchpoint <tab> reason`, oldest first.
pub(crate) fn parse_history(text: &str) -> Result<Vec<HistoryEntry>> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (fields.next(), fields.next()) else {
            bail!("malformed history line {line:?}");
        };
        entries.push(HistoryEntry {
            timeline: tli
                .parse()
                .with_context(|| format!("bad timeline in history line {line:?}"))?,
            switch_lsn: parse_lsn(lsn)?,
        });
    }
    Ok(entries)
}

/// Lists the store. A missing root is an empty store.
pub(crate) async fn list_store(wal_root: &Path) -> Result<StoreFiles> {
    let mut store = StoreFiles {
        segment_size: DEFAULT_SEGMENT_SIZE,
        ..StoreFiles::default()
    };
    let mut size_seen = false;
    let mut dirs = match tokio::fs::read_dir(wal_root).await {
        Ok(dirs) => dirs,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(store),
        Err(err) => return Err(err).with_context(|| format!("listing {}", wal_root.display())),
    };
    let mut segments: Vec<(String, PathBuf, bool)> = Vec::new();
    let mut summaries: Vec<(String, PathBuf)> = Vec::new();
    while let Some(dir) = dirs
        .next_entry()
        .await
        .with_context(|| format!("listing {}", wal_root.display()))?
    {
        let is_tl_dir = dir.file_name().to_str().is_some_and(|n| {
            n.strip_prefix("tl")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        });
        if !is_tl_dir {
            continue;
        }
        let mut files = tokio::fs::read_dir(dir.path())
            .await
            .with_context(|| format!("listing {}", dir.path().display()))?;
        while let Some(file) = files
            .next_entry()
            .await
            .with_context(|| format!("listing {}", dir.path().display()))?
        {
            let Some(name) = file.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(tli) = parse_history_name(&name) {
                store.timelines.entry(tli).or_default().history = Some(file.path());
                continue;
            }
            if let Some(plain) = name.strip_suffix(SUMMARY_SUFFIX) {
                if plain.len() == 24 && plain.bytes().all(|b| b.is_ascii_hexdigit()) {
                    summaries.push((plain.to_owned(), file.path()));
                }
                continue;
            }
            let (plain, partial) = match name.strip_suffix(PARTIAL_SUFFIX) {
                Some(plain) => (plain.to_owned(), true),
                None => (name.clone(), false),
            };
            if plain.len() == 24 && plain.bytes().all(|b| b.is_ascii_hexdigit()) {
                if !size_seen && let Ok(meta) = file.metadata().await {
                    // Segment sizes are powers of two from 1 MiB to 1 GiB; anything else is a
                    // file being created, so keep the default.
                    if meta.len().is_power_of_two() && meta.len() >= 1024 * 1024 {
                        store.segment_size = meta.len();
                        size_seen = true;
                    }
                }
                segments.push((plain, file.path(), partial));
            }
        }
    }
    for (plain, path) in summaries {
        if let Some((tli, segno)) = parse_segment_name(&plain, store.segment_size) {
            store
                .timelines
                .entry(tli)
                .or_default()
                .summaries
                .insert(segno, path);
        }
    }
    for (plain, path, partial) in segments {
        let Some((tli, segno)) = parse_segment_name(&plain, store.segment_size) else {
            continue;
        };
        let files = store.timelines.entry(tli).or_default();
        if partial {
            files.partial.insert(segno, path);
        } else {
            files.complete.insert(segno, path);
        }
    }
    Ok(store)
}

/// Sidecars belong to whoever owns the segment's directory (the `postgres` user, which runs the
/// restore command that reads them), so a root agent chowns them to it.
async fn dir_owner(path: &Path) -> Result<Option<OsUser>> {
    if !is_root()? {
        return Ok(None);
    }
    let dir = path.parent().context("segment path without a directory")?;
    let meta = tokio::fs::metadata(dir)
        .await
        .with_context(|| format!("stat {}", dir.display()))?;
    Ok(Some(OsUser {
        name: format!("uid {}", meta.uid()),
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Cached result of dumping one completed segment; completed segments never change.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SegmentSummary {
    pub last_commit: Option<DateTime<Utc>>,
}

/// What `pg_waldump` found in one segment.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Dumped {
    pub(crate) last_commit: Option<DateTime<Utc>>,
    /// End of valid WAL, when the dump stopped at invalid WAL (a `.partial`).
    end_of_wal: Option<u64>,
}

/// The store's state, one entry per timeline that has any file, in timeline order.
///
/// Cheap enough to call every second: it lists the directories, dumps only the newest segment of
/// each timeline with `pg_waldump` (the `.partial` changes all the time), and remembers the last
/// commit of every completed segment in a `<segment>.summary` sidecar.
pub async fn scan(bins: &PgBinaries, runner: &Runner, wal_root: &Path) -> Result<Vec<WalTimeline>> {
    scan_until(bins, runner, wal_root, None).await
}

/// [`scan`] of a spool, counting only the WAL the object store holds: `stored` gives, per
/// timeline, the LSN up to which the store has it (a timeline without an entry has nothing
/// there). The spool runs up to one shipping pass ahead of the store; the window must not.
pub async fn scan_until(
    bins: &PgBinaries,
    runner: &Runner,
    wal_root: &Path,
    stored: Option<&BTreeMap<u32, u64>>,
) -> Result<Vec<WalTimeline>> {
    let store = list_store(wal_root).await?;
    let mut states = Vec::new();
    for (&tli, files) in &store.timelines {
        let limit = stored.map(|ends| ends.get(&tli).copied().unwrap_or(0));
        states.push(
            timeline_state(bins, runner, wal_root, &store, tli, files, limit)
                .await
                .with_context(|| format!("scanning timeline {tli} in {}", wal_root.display()))?,
        );
    }
    Ok(states)
}

/// The holes in a timeline's segments, as first and last missing segment: before the first one
/// back to the branch point (`switch_lsn` of the parent), and between any two.
fn gaps_of(
    segnos: &BTreeSet<u64>,
    switch_lsn: Option<u64>,
    tli: u32,
    size: u64,
) -> Vec<(String, String)> {
    let name = |segno: u64| segment_name(tli, segno, size);
    let mut gaps = Vec::new();
    if let (Some(&first), Some(switch)) = (segnos.first(), switch_lsn) {
        let branch_segno = switch / size;
        if branch_segno < first {
            gaps.push((name(branch_segno), name(first - 1)));
        }
    }
    let mut previous: Option<u64> = None;
    for &segno in segnos {
        if let Some(prev) = previous
            && segno > prev + 1
        {
            gaps.push((name(prev + 1), name(segno - 1)));
        }
        previous = Some(segno);
    }
    gaps
}

/// A spool's [`scan`] with the segments the store holds (`index`): the spool keeps only the
/// newest ones, the store all that retention left, so the first segment and the gaps come from
/// both together.
pub fn merge_store_index(
    mut states: Vec<WalTimeline>,
    index: &super::wal_ship::ShipIndex,
) -> Vec<WalTimeline> {
    let size = DEFAULT_SEGMENT_SIZE;
    for state in &mut states {
        let Some(shipped) = index.timelines.get(&state.timeline) else {
            continue;
        };
        let mut segnos: BTreeSet<u64> = shipped
            .segments
            .iter()
            .filter(|(_, seg)| seg.end > 0)
            .filter_map(|(name, _)| parse_segment_name(name, size).map(|(_, segno)| segno))
            .collect();
        for name in [&state.first_segment, &state.last_segment]
            .into_iter()
            .flatten()
        {
            if let Some((_, segno)) = parse_segment_name(name, size) {
                segnos.insert(segno);
            }
        }
        let switch = state.switch_lsn.as_deref().and_then(|l| parse_lsn(l).ok());
        state.first_segment = segnos
            .first()
            .map(|&s| segment_name(state.timeline, s, size));
        state.last_segment = segnos
            .last()
            .map(|&s| segment_name(state.timeline, s, size));
        state.gaps = gaps_of(&segnos, switch, state.timeline, size);
    }
    states
}

/// Where WAL of timeline `tli` ends in `root` (the end of valid WAL in its newest segment), if it
/// has any.
pub(crate) async fn timeline_end(
    bins: &PgBinaries,
    runner: &Runner,
    root: &Path,
    files: &StoreFiles,
    tli: u32,
) -> Result<Option<u64>> {
    let size = files.segment_size;
    let Some(timeline) = files.timelines.get(&tli) else {
        return Ok(None);
    };
    let Some(&newest) = timeline.segnos().last() else {
        return Ok(None);
    };
    let Some(path) = timeline.partial.get(&newest) else {
        return Ok(Some((newest + 1) * size));
    };
    let dumped = dump_partial(
        bins,
        runner,
        root,
        path,
        &segment_name(tli, newest, size),
        None,
    )
    .await?;
    Ok(Some(dumped.end_of_wal.unwrap_or((newest + 1) * size)))
}

async fn timeline_state(
    bins: &PgBinaries,
    runner: &Runner,
    wal_root: &Path,
    store: &StoreFiles,
    tli: u32,
    files: &TimelineFiles,
    limit: Option<u64>,
) -> Result<WalTimeline> {
    let size = store.segment_size;
    let name = |segno: u64| segment_name(tli, segno, size);
    let (parent, switch_lsn) = match &files.history {
        Some(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("reading {}", path.display()))?;
            match parse_history(&text)?.last() {
                Some(entry) => (Some(entry.timeline), Some(entry.switch_lsn)),
                None => (None, None),
            }
        }
        None => (None, None),
    };
    let segnos = files.segnos();
    let first = segnos.first().copied();
    let last = segnos.last().copied();
    let gaps = gaps_of(&segnos, switch_lsn, tli, size);

    let mut latest_commit = None;
    let mut latest_lsn = None;
    // Segments already shipped and gone from the spool still have their summary.
    let walk: BTreeSet<u64> = segnos
        .iter()
        .chain(files.summaries.keys())
        .copied()
        .collect();
    let mut newest = true;
    for &segno in walk.iter().rev() {
        if limit.is_some_and(|limit| segno * size >= limit) {
            // Not in the store yet: the host's death would lose it.
            continue;
        }
        // Where the store's WAL ends inside this segment, if it does.
        let cut = limit.filter(|limit| *limit < (segno + 1) * size);
        let dumped = if let Some(path) = files.complete.get(&segno).filter(|_| cut.is_none()) {
            let summary = complete_segment_summary(bins, runner, path).await?;
            Dumped {
                last_commit: summary.last_commit,
                end_of_wal: None,
            }
        } else if let Some(path) = files
            .partial
            .get(&segno)
            .or_else(|| files.complete.get(&segno))
        {
            // The receiver may have just created the `.partial` (header not written yet) or
            // renamed it away since the listing: read on from the segment before.
            // One quick retry: a fresh segment's header is written within milliseconds, and
            // falling back to the previous segment would report an older `latest`.
            let first = dump_partial(bins, runner, wal_root, path, &name(segno), cut).await;
            let dumped = match first {
                Ok(d) => Ok(d),
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                    dump_partial(bins, runner, wal_root, path, &name(segno), cut).await
                }
            };
            match dumped {
                Ok(d) => d,
                Err(err) => {
                    tracing::debug!(error = %format!("{err:#}"), "partial segment not readable yet");
                    Dumped::default()
                }
            }
        } else if let Some(path) = files.summaries.get(&segno) {
            match tokio::fs::read(path)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<SegmentSummary>(&b).ok())
            {
                Some(summary) => Dumped {
                    last_commit: summary.last_commit,
                    end_of_wal: None,
                },
                None => continue,
            }
        } else {
            continue;
        };
        if newest {
            let end = dumped.end_of_wal.unwrap_or((segno + 1) * size);
            latest_lsn = Some(cut.map_or(end, |cut| end.min(cut)));
            newest = false;
        }
        if dumped.last_commit.is_some() {
            latest_commit = dumped.last_commit;
            break;
        }
    }

    Ok(WalTimeline {
        timeline: tli,
        parent,
        switch_lsn: switch_lsn.map(format_lsn),
        first_segment: first.map(name),
        last_segment: last.map(name),
        gaps,
        latest_commit,
        latest_lsn: latest_lsn.map(format_lsn),
    })
}

pub(crate) async fn complete_segment_summary(
    bins: &PgBinaries,
    runner: &Runner,
    path: &Path,
) -> Result<SegmentSummary> {
    let sidecar = with_suffix(path, SUMMARY_SUFFIX);
    if let Ok(bytes) = tokio::fs::read(&sidecar).await
        && let Ok(summary) = serde_json::from_slice::<SegmentSummary>(&bytes)
    {
        return Ok(summary);
    }
    let dumped = waldump_commits(bins, runner, path, None).await?;
    let summary = SegmentSummary {
        last_commit: dumped.last_commit,
    };
    // The cache is an optimisation: a store we cannot write to still scans, just slower.
    let cached = async {
        let json = serde_json::to_vec(&summary)?;
        let owner = dir_owner(path).await?;
        write_owned(&sidecar, &json, 0o600, owner.as_ref()).await
    };
    if let Err(err) = cached.await {
        tracing::debug!(error = %format!("{err:#}"), path = %sidecar.display(), "could not cache a segment summary");
    }
    Ok(summary)
}

/// `pg_waldump` refuses a file not named like a segment, so the `.partial` is dumped through a
/// symlink with the plain name, in a private directory beside the store (nothing is copied).
async fn dump_partial(
    bins: &PgBinaries,
    runner: &Runner,
    wal_root: &Path,
    partial: &Path,
    plain_name: &str,
    end: Option<u64>,
) -> Result<Dumped> {
    let tmp = wal_root.join(format!(".scan-{}", uuid::Uuid::new_v4()));
    let result = async {
        ensure_dir(&tmp, 0o700, runner.owner()).await?;
        let link = tmp.join(plain_name);
        tokio::fs::symlink(partial, &link)
            .await
            .with_context(|| format!("linking {}", link.display()))?;
        waldump_commits(bins, runner, &link, end).await
    }
    .await;
    if let Err(err) = remove_dir_if_exists(&tmp).await {
        tracing::warn!(error = %format!("{err:#}"), "could not remove a scan directory");
    }
    result
}

/// Runs `pg_waldump -r Transaction <segment>` and reads the last COMMIT time and, if the dump ends
/// at invalid WAL, where valid WAL ends. A non-zero exit is expected at the end of a `.partial`
/// (and for a record running into the next segment), so whatever it printed is used.
/// With `end`, the dump stops there (`-e`): commits after it are not counted, and the end of
/// valid WAL is at most `end`.
pub(crate) async fn waldump_commits(
    bins: &PgBinaries,
    runner: &Runner,
    segment: &Path,
    end: Option<u64>,
) -> Result<Dumped> {
    let mut cmd = runner.command(bins.path("pg_waldump"));
    // pg_waldump prints commit times in its local zone, with only an abbreviation.
    cmd.env("TZ", "UTC").args(["-r", "Transaction"]);
    if let Some(end) = end {
        cmd.arg(format!("--end={}", format_lsn(end)));
    }
    cmd.arg(segment)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let output = cmd
        .output()
        .await
        .with_context(|| format!("running pg_waldump on {}", segment.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut dumped = parse_waldump(&stdout, &stderr)?;
    if let Some(end) = end {
        dumped.end_of_wal = Some(dumped.end_of_wal.map_or(end, |e| e.min(end)));
    }
    if !output.status.success() && dumped.last_commit.is_none() && dumped.end_of_wal.is_none() {
        // Nothing usable: not the benign "end of valid WAL" case.
        if !stderr.contains("error in WAL record") {
            bail!(
                "pg_waldump on {} failed ({}): {}",
                segment.display(),
                output.status,
                stderr.trim()
            );
        }
    }
    Ok(dumped)
}

fn parse_waldump(stdout: &str, stderr: &str) -> Result<Dumped> {
    let mut dumped = Dumped::default();
    for line in stdout.lines() {
        let Some((_, desc)) = line.split_once("desc: ") else {
            continue;
        };
        // `COMMIT 2026-11-25 17:04:57.209137 UTC; inval msgs: …`; COMMIT_PREPARED carries the
        // gxid first (`COMMIT_PREPARED 5: 2026-…`).
        let stamp = if let Some(rest) = desc.strip_prefix("COMMIT ") {
            rest
        } else if let Some(rest) = desc.strip_prefix("COMMIT_PREPARED ") {
            rest.split_once(": ").map(|(_, s)| s).unwrap_or(rest)
        } else {
            continue;
        };
        let stamp = stamp.split(';').next().unwrap_or(stamp).trim();
        dumped.last_commit = Some(parse_waldump_time(stamp)?);
    }
    // `error in WAL record at 0/4000068: invalid record length at 0/4000090: wanted 24, got 0`:
    // the second position is where valid WAL ends.
    for line in stderr.lines() {
        let Some((_, reason)) = line.split_once("error in WAL record at ") else {
            continue;
        };
        let Some((start, reason)) = reason.split_once(": ") else {
            continue;
        };
        let end = reason
            .split_once(" at ")
            .and_then(|(_, rest)| rest.split(|c: char| c == ':' || c.is_whitespace()).next())
            .and_then(|lsn| parse_lsn(lsn).ok());
        // Some messages name no position; the last good record's start is then a lower bound.
        dumped.end_of_wal = end.or_else(|| parse_lsn(start).ok());
    }
    Ok(dumped)
}

fn parse_waldump_time(stamp: &str) -> Result<DateTime<Utc>> {
    let naive = stamp
        .strip_suffix(" UTC")
        .with_context(|| format!("commit time {stamp:?} is not in UTC"))?;
    let naive = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
        .with_context(|| format!("bad commit time {stamp:?}"))?;
    Ok(naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let size = DEFAULT_SEGMENT_SIZE;
        assert_eq!(
            parse_segment_name("000000020000000100000003", size),
            Some((2, 259))
        );
        assert_eq!(segment_name(2, 259, size), "000000020000000100000003");
        assert_eq!(parse_segment_name("00000002000000010000000", size), None);
        assert_eq!(parse_history_name("0000000A.history"), Some(10));
        assert_eq!(history_name(10), "0000000A.history");
    }

    #[test]
    fn lsns_round_trip() {
        assert_eq!(parse_lsn("0/4000090").expect("valid"), 0x0400_0090);
        assert_eq!(format_lsn(0x1_0400_0090), "1/4000090");
        assert!(parse_lsn("04000090").is_err());
    }

    #[test]
    fn parse_history_reads_every_ancestor() {
        let text = "1\t0/5000100\treached consistency\n\n2\t0/7000000\tbefore 2026-11-24 23:25:01.25008+00\n";
        assert_eq!(
            parse_history(text).expect("valid"),
            vec![
                HistoryEntry {
                    timeline: 1,
                    switch_lsn: 0x0500_0100
                },
                HistoryEntry {
                    timeline: 2,
                    switch_lsn: 0x0700_0000
                }
            ]
        );
    }

    #[test]
    fn parse_waldump_takes_the_last_commit_and_the_end_of_valid_wal() {
        let stdout = "rmgr: Transaction len (rec/tot):     34/    34, tx:        725, lsn: 0/0300FAD0, prev 0/0300FA90, desc: COMMIT 2026-11-25 17:04:57.114046 UTC\n\
                      rmgr: Transaction len (rec/tot):    405/   405, tx:        726, lsn: 0/04000068, prev 0/04000028, desc: COMMIT 2026-11-25 17:04:57.209137 UTC; inval msgs: catcache 80\n";
        let stderr = "pg_waldump: error: error in WAL record at 0/4000068: invalid record length at 0/4000090: wanted 24, got 0\n";
        let dumped = parse_waldump(stdout, stderr).expect("parses");
        assert_eq!(
            dumped.last_commit.map(|t| t.to_rfc3339()),
            Some("2026-11-25T17:04:57.209137+00:00".to_owned())
        );
        assert_eq!(dumped.end_of_wal, Some(0x0400_0090));
    }

    #[test]
    fn parse_waldump_rejects_a_zone_other_than_utc() {
        let stdout = "rmgr: Transaction len (rec/tot): 34/ 34, tx: 1, lsn: 0/1, prev 0/0, desc: COMMIT 2026-11-25 12:04:57.114046 EST\n";
        assert!(parse_waldump(stdout, "").is_err());
    }
}
