//! Ships an instance's WAL from the local spool (where `pg_receivewal` writes it) to the object
//! store, every few hundred milliseconds and not only when a segment completes, so that a host's
//! death loses at most that much committed work (docs/object-store.md, "WAL").
//!
//! Each pass sends what the spool gained since the last one: the newly written pages of the
//! segment in progress as one chunk, the rest of each completed segment followed by its seal (the
//! segment's sha256), and new history files. Sealed segments leave the spool, except the newest,
//! so local disk stays bounded; a short `.summary` of each stays behind for the WAL reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use trove_common::store::{
    BlobStore,
    wal_keys::{ChunkId, StoredWal, chunk_key, history_key, seal_key},
};

use super::PgBinaries;
use super::os_user::remove_file_if_exists;
use super::runner::Runner;
use super::wal_index::{complete_segment_summary, list_store, segment_name};

/// WAL pages are 8 KiB; a page that was never written is all zeros, a written one starts with a
/// non-zero header.
const PAGE: u64 = 8192;
/// A segment that went up in this many chunks is sent once more whole and its chunks are removed,
/// so a quiet instance (a commit now and then, every pass a chunk) does not pile up thousands of
/// small objects. Under load a segment fills in a few seconds, well below this, and each WAL byte
/// goes up about once.
const COMPACT_AFTER: usize = 64;

/// Summaries of shipped segments kept in the spool per timeline.
const KEEP_SUMMARIES: usize = 64;

/// What the store holds of one segment, as far as this shipper knows.
#[derive(Debug, Clone, Default)]
pub struct ShippedSegment {
    /// Bytes up to here are in the store.
    pub end: u64,
    pub sealed: bool,
    next_seq: u64,
    chunk_keys: Vec<String>,
    /// The last page sent, to notice it filling up without growing the segment.
    last_page: Vec<u8>,
}

/// What the store holds of an instance's WAL: by timeline, by segment name.
#[derive(Debug, Clone, Default)]
pub struct ShipIndex {
    pub timelines: BTreeMap<u32, ShippedTimeline>,
    /// What this shipper uploaded since it started (bytes of WAL objects, objects).
    pub uploaded: Shipped,
}

impl ShipIndex {
    /// How far the store holds WAL on its newest timeline, as an LSN (for 16 MiB segments).
    /// The last page sent may have been read half-written, so up to one page before it may
    /// still be missing until the next pass.
    pub fn shipped_lsn(&self) -> Option<(u32, u64)> {
        let (&tli, _) = self.timelines.last_key_value()?;
        Some((tli, *self.stored_ends().get(&tli)?))
    }

    /// Per timeline, the LSN up to which the store holds its WAL (see [`Self::shipped_lsn`]).
    pub fn stored_ends(&self) -> BTreeMap<u32, u64> {
        let size = super::wal_index::DEFAULT_SEGMENT_SIZE;
        self.timelines
            .iter()
            .filter_map(|(&tli, timeline)| {
                let (name, seg) = timeline.segments.iter().rev().find(|(_, s)| s.end > 0)?;
                let (_, segno) = super::wal_index::parse_segment_name(name, size)?;
                Some((tli, segno * size + seg.end))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ShippedTimeline {
    pub history: bool,
    pub segments: BTreeMap<String, ShippedSegment>,
}

/// Shared between the shipper and the WAL reports.
pub type SharedShipIndex = Arc<Mutex<ShipIndex>>;

/// Counters of one pass, for the benchmark and the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shipped {
    pub bytes: u64,
    pub objects: u64,
}

/// Ships one instance's spool to `wal_dir` in the store.
pub struct Shipper {
    store: BlobStore,
    spool: PathBuf,
    wal_dir: String,
    index: SharedShipIndex,
    loaded: bool,
    bins: PgBinaries,
    runner: Runner,
    /// Totals since the shipper started.
    pub total: Shipped,
}

impl Shipper {
    pub fn new(
        store: BlobStore,
        spool: PathBuf,
        wal_dir: String,
        index: SharedShipIndex,
        bins: PgBinaries,
        runner: Runner,
    ) -> Self {
        Self {
            store,
            spool,
            wal_dir,
            index,
            loaded: false,
            bins,
            runner,
            total: Shipped::default(),
        }
    }

    /// Learns what the store already holds (after a restart of the agent or the receiver).
    async fn load(&mut self) -> Result<()> {
        let entries = self.store.list(&self.wal_dir).await?;
        let stored = StoredWal::from_listing(&self.wal_dir, &entries);
        let mut index = ShipIndex::default();
        for (tli, timeline) in stored.timelines {
            let shipped = index.timelines.entry(tli).or_default();
            shipped.history = timeline.history.is_some();
            for (name, seg) in timeline.segments {
                shipped.segments.insert(
                    name,
                    ShippedSegment {
                        end: seg.end(),
                        sealed: seg.sealed.is_some(),
                        next_seq: seg.next_seq(),
                        chunk_keys: seg.chunks.iter().map(|c| c.key.clone()).collect(),
                        last_page: Vec::new(),
                    },
                );
            }
        }
        *self.lock() = index;
        self.loaded = true;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShipIndex> {
        // A panic elsewhere cannot leave the index half-updated in a way that matters: it only
        // ever grows, and the next load rebuilds it from the store.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn segment(&self, tli: u32, name: &str) -> ShippedSegment {
        self.lock()
            .timelines
            .get(&tli)
            .and_then(|t| t.segments.get(name))
            .cloned()
            .unwrap_or_default()
    }

    fn set_segment(&self, tli: u32, name: &str, seg: ShippedSegment) {
        self.lock()
            .timelines
            .entry(tli)
            .or_default()
            .segments
            .insert(name.to_owned(), seg);
    }

    /// One pass over the spool; returns what it sent.
    pub async fn ship_once(&mut self) -> Result<Shipped> {
        if !self.loaded {
            self.load().await?;
        }
        let files = list_store(&self.spool).await?;
        let size = files.segment_size;
        let mut sent = Shipped::default();
        for (&tli, timeline) in &files.timelines {
            let has_history = self.lock().timelines.get(&tli).is_some_and(|t| t.history);
            if let Some(path) = &timeline.history
                && !has_history
            {
                let bytes = tokio::fs::read(path)
                    .await
                    .with_context(|| format!("reading {}", path.display()))?;
                sent.bytes += bytes.len() as u64;
                sent.objects += 1;
                self.store
                    .put(&history_key(&self.wal_dir, tli), Bytes::from(bytes))
                    .await?;
                self.lock().timelines.entry(tli).or_default().history = true;
            }
            for (&segno, path) in &timeline.complete {
                let name = segment_name(tli, segno, size);
                if !self.segment(tli, &name).sealed {
                    self.seal(tli, &name, path, size, &mut sent).await?;
                }
            }
            for (&segno, path) in &timeline.partial {
                let name = segment_name(tli, segno, size);
                match self.ship_partial(tli, &name, path, &mut sent).await {
                    Ok(()) => {}
                    // Renamed to its complete name since the listing: the next pass seals it.
                    Err(err) if is_not_found(&err) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        self.prune_spool(&files).await?;
        self.total.bytes += sent.bytes;
        self.total.objects += sent.objects;
        self.lock().uploaded = self.total;
        Ok(sent)
    }

    async fn put_chunk(
        &self,
        tli: u32,
        name: &str,
        seg: &mut ShippedSegment,
        start: u64,
        bytes: Vec<u8>,
        sent: &mut Shipped,
    ) -> Result<()> {
        let id = ChunkId {
            seq: seg.next_seq,
            start,
            end: start + bytes.len() as u64,
        };
        let key = chunk_key(&self.wal_dir, tli, name, id);
        let tail = bytes.len().saturating_sub(PAGE as usize);
        seg.last_page = bytes[tail..].to_vec();
        // Level 1: a few milliseconds per segment, and WAL (page images, padding) shrinks a lot.
        let packed = tokio::task::spawn_blocking(move || zstd::bulk::compress(&bytes, 1))
            .await
            .context("compression task failed")?
            .context("compressing a WAL chunk")?;
        sent.bytes += packed.len() as u64;
        sent.objects += 1;
        self.store.put(&key, Bytes::from(packed)).await?;
        seg.next_seq += 1;
        seg.end = seg.end.max(id.end);
        seg.chunk_keys.push(key);
        Ok(())
    }

    /// Sends the pages of the segment in progress written since the last pass.
    async fn ship_partial(
        &self,
        tli: u32,
        name: &str,
        path: &Path,
        sent: &mut Shipped,
    ) -> Result<()> {
        let mut seg = self.segment(tli, name);
        if seg.sealed {
            return Ok(());
        }
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let end = written_end(&mut file).await?;
        // The last page sent may have filled up since; send it again with whatever follows.
        let start = seg.end.saturating_sub(PAGE).min(end);
        if end <= start {
            return Ok(());
        }
        let bytes = read_range(&mut file, start, end).await?;
        if end == seg.end && bytes == seg.last_page {
            return Ok(());
        }
        if seg.chunk_keys.len() >= COMPACT_AFTER {
            let whole = read_range(&mut file, 0, end).await?;
            let old_keys = std::mem::take(&mut seg.chunk_keys);
            self.put_chunk(tli, name, &mut seg, 0, whole, sent).await?;
            self.set_segment(tli, name, seg);
            self.forget_chunks(&old_keys).await;
            return Ok(());
        }
        self.put_chunk(tli, name, &mut seg, start, bytes, sent)
            .await?;
        self.set_segment(tli, name, seg);
        Ok(())
    }

    /// Removes chunks a later whole upload made redundant; a failure only leaves garbage that
    /// readers skip (they start at the last chunk from byte 0).
    async fn forget_chunks(&self, keys: &[String]) {
        if let Err(err) = self.store.delete_many(keys).await {
            tracing::debug!(error = %format!("{err:#}"), "could not remove compacted WAL chunks");
        }
    }

    /// Sends the rest of a completed segment, then its seal.
    async fn seal(
        &self,
        tli: u32,
        name: &str,
        path: &Path,
        size: u64,
        sent: &mut Shipped,
    ) -> Result<()> {
        let mut seg = self.segment(tli, name);
        let whole = tokio::fs::read(path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        let len = whole.len() as u64;
        if len != size {
            // Still being renamed or truncated; the next pass sees it settled.
            return Ok(());
        }
        // A segment ended early by a WAL switch (every backup makes one) is zeros after the
        // switch: those pages are not sent, readers fill them in.
        let written = written_end_of(&whole);
        let start = seg.end.saturating_sub(PAGE);
        let compact = seg.chunk_keys.len() >= COMPACT_AFTER;
        let (from, old_keys) = if compact {
            (0, std::mem::take(&mut seg.chunk_keys))
        } else {
            (start, Vec::new())
        };
        if from < written {
            let (a, b) = (
                usize::try_from(from).unwrap_or(whole.len()),
                usize::try_from(written).unwrap_or(whole.len()),
            );
            self.put_chunk(tli, name, &mut seg, from, whole[a..b].to_vec(), sent)
                .await?;
        }
        let sha = hex::encode(Sha256::digest(&whole));
        self.store
            .put(&seal_key(&self.wal_dir, tli, name, &sha), Bytes::new())
            .await?;
        sent.objects += 1;
        seg.sealed = true;
        self.set_segment(tli, name, seg);
        self.forget_chunks(&old_keys).await;
        Ok(())
    }

    /// Removes sealed segments from the spool, keeping each timeline's newest completed segment
    /// (the receiver resumes after the newest file it finds) and a summary of each for reports.
    async fn prune_spool(&self, files: &super::wal_index::StoreFiles) -> Result<()> {
        for (&tli, timeline) in &files.timelines {
            let newest = timeline.complete.keys().max().copied();
            for (&segno, path) in &timeline.complete {
                if Some(segno) == newest {
                    continue;
                }
                let name = segment_name(tli, segno, files.segment_size);
                if !self.segment(tli, &name).sealed {
                    continue;
                }
                complete_segment_summary(&self.bins, &self.runner, path).await?;
                remove_file_if_exists(path).await?;
                remove_file_if_exists(&with_suffix(path, ".sha256")).await?;
            }
            // Summaries let a report find the last commit of a quiet instance in a segment long
            // shipped; a few dozen are plenty.
            let surplus = timeline.summaries.len().saturating_sub(KEEP_SUMMARIES);
            for path in timeline.summaries.values().take(surplus) {
                remove_file_if_exists(path).await?;
            }
        }
        Ok(())
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
    })
}

/// Where the written part of a zero-padded `.partial` ends, rounded up to a whole page: the first
/// page whose header is still zero, found by bisection (the receiver writes pages in order).
async fn written_end(file: &mut tokio::fs::File) -> Result<u64> {
    let len = file
        .metadata()
        .await
        .context("stat of a WAL segment")?
        .len();
    let pages = len / PAGE;
    let (mut lo, mut hi) = (0u64, pages);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if page_written(file, mid).await? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo * PAGE)
}

/// [`written_end`] of a segment in memory.
fn written_end_of(bytes: &[u8]) -> u64 {
    let page = PAGE as usize;
    let written = |i: usize| {
        bytes
            .get(i * page..i * page + 16)
            .is_some_and(|header| header.iter().any(|&b| b != 0))
    };
    let (mut lo, mut hi) = (0usize, bytes.len() / page);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if written(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    (lo * page) as u64
}

async fn page_written(file: &mut tokio::fs::File, page: u64) -> Result<bool> {
    let mut header = [0u8; 16];
    file.seek(std::io::SeekFrom::Start(page * PAGE)).await?;
    file.read_exact(&mut header).await?;
    Ok(header.iter().any(|&b| b != 0))
}

async fn read_range(file: &mut tokio::fs::File, start: u64, end: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(end - start).context("WAL range too large")?;
    let mut buf = vec![0u8; len];
    file.seek(std::io::SeekFrom::Start(start)).await?;
    file.read_exact(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_written_end_is_the_first_page_with_a_zero_header() {
        let path = std::env::temp_dir().join(format!("trove-ship-{}", uuid::Uuid::new_v4()));
        let mut bytes = vec![0u8; (PAGE * 16) as usize];
        for page in 0..5 {
            bytes[(page * PAGE) as usize] = 0xD1;
        }
        // A half-written page 5: its header is there.
        bytes[(5 * PAGE) as usize + 3] = 1;
        std::fs::write(&path, &bytes).expect("write");
        let mut file = tokio::fs::File::open(&path).await.expect("open");
        assert_eq!(written_end(&mut file).await.expect("end"), 6 * PAGE);
        assert_eq!(written_end_of(&bytes), 6 * PAGE);
        std::fs::write(&path, vec![0u8; (PAGE * 16) as usize]).expect("write");
        let mut file = tokio::fs::File::open(&path).await.expect("open");
        assert_eq!(written_end(&mut file).await.expect("end"), 0);
        let _ = std::fs::remove_file(path);
    }
}
