//! WAL for one replay, from the object store into a private directory beside the data directory
//! (`<data>.walfetch/tl<N>/…`, the spool's layout), where the restore command finds it
//! (docs/object-store.md, "Replay from the store").
//!
//! The store is listed once, when the recovery starts: the plan is checked against that listing.
//! History files and the target timeline's newest segment are fetched at once (the plan reads
//! them). The segments replay will need, guessed from the backup's manifest, are fetched in
//! replay order, `prefetch` at a time, while the archive is still streaming in, and the rest
//! while replay runs. A segment is put together from its chunks and checked against its seal on
//! the way in; the restore command waits for a segment that is still on its way.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use trove_common::store::{
    BlobStore,
    wal_keys::{StoredSegment, StoredWal},
};

use super::cluster::Cluster;
use super::os_user::{OsUser, chown_to, ensure_dir, remove_dir_if_exists, set_mode, write_owned};
use super::request::WalSource;
use super::sibling;
use super::wal_index::{
    DEFAULT_SEGMENT_SIZE, StoreFiles, history_name, parse_segment_name, segment_name,
};

/// The fetch directory of a replay into `data_dir`.
pub(super) fn fetch_root(data_dir: &Path) -> PathBuf {
    sibling(data_dir, "walfetch")
}

/// Names the restore command must wait for (one per line) rather than report absent.
pub(super) fn expected_path(root: &Path) -> PathBuf {
    root.join(".expected")
}

/// Segments checked against their seal, one path per line exactly as the restore command names
/// them (`<root>/tl<N>/<segment>`): it does not hash them again.
pub(super) fn verified_path(root: &Path) -> PathBuf {
    root.join(".verified")
}

/// The marker a failed fetch leaves, so the restore command stops waiting and fails replay.
pub(super) fn failed_marker(root: &Path, name: &str) -> PathBuf {
    root.join(format!(".failed-{name}"))
}

/// The marker a segment whose objects are damaged leaves: replay fails as on a checksum mismatch.
pub(super) fn damaged_marker(root: &Path, name: &str) -> PathBuf {
    root.join(format!(".damaged-{name}"))
}

/// A segment's objects are there but do not make a segment (a chunk that does not decompress,
/// or decompresses to the wrong length): damage, not absence.
#[derive(Debug)]
struct Damaged(String);

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Damaged {}

/// An instance's WAL as listed in the store, mirrored on demand into `root`.
pub(super) struct Fetched {
    pub root: PathBuf,
    /// What the store holds, with the local path each file has (or will have) under `root`.
    pub files: StoreFiles,
    stored: StoredWal,
    store: BlobStore,
    wal_dir: String,
    owner: Option<OsUser>,
    /// Segments some fetch has taken on (two prefetches may ask for the same one).
    claimed: std::sync::Mutex<HashSet<(u32, u64)>>,
}

impl Fetched {
    /// Lists `source` and fetches its history files (in parallel) and the newest segment of
    /// `target_tli` (where the plan needs the end of the store) into a fresh fetch directory
    /// beside `restored`'s data directory.
    pub(super) async fn open(
        restored: &Cluster,
        source: &WalSource<'_>,
        target_tli: u32,
    ) -> Result<Fetched> {
        let root = fetch_root(&restored.spec().data_dir);
        let owner = restored.runner().owner().cloned();
        remove_dir_if_exists(&root).await?;
        ensure_dir(&root, 0o700, owner.as_ref()).await?;
        let entries = source.store.list(source.dir).await?;
        let stored = StoredWal::from_listing(source.dir, &entries);
        // The managed servers' segment size (initdb's default). Sealed segments do not show it:
        // a segment ended by a WAL switch is stored without its zero tail.
        let size = DEFAULT_SEGMENT_SIZE;
        let mut files = StoreFiles {
            segment_size: size,
            ..StoreFiles::default()
        };
        write_owned(&verified_path(&root), b"", 0o600, owner.as_ref()).await?;
        let mut histories = Vec::new();
        for (&tli, timeline) in &stored.timelines {
            let dir = root.join(format!("tl{tli}"));
            ensure_dir(&dir, 0o700, owner.as_ref()).await?;
            let local = files.timelines.entry(tli).or_default();
            if let Some(key) = &timeline.history {
                let path = dir.join(history_name(tli));
                local.history = Some(path.clone());
                histories.push((key.clone(), path));
            }
            for (name, seg) in &timeline.segments {
                let Some((_, segno)) = parse_segment_name(name, size) else {
                    continue;
                };
                if seg.sealed.is_some() {
                    local.complete.insert(segno, dir.join(name));
                } else {
                    local
                        .partial
                        .insert(segno, dir.join(format!("{name}.partial")));
                }
            }
        }
        futures_util::stream::iter(histories)
            .map(|(key, path)| {
                let (store, owner) = (source.store, owner.as_ref());
                async move {
                    let bytes = store
                        .get(&key)
                        .await?
                        .with_context(|| format!("{key} vanished from the store"))?;
                    write_owned(&path, &bytes, 0o600, owner).await
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<Result<()>>>()
            .await
            .into_iter()
            .collect::<Result<()>>()?;
        let fetched = Fetched {
            root,
            files,
            stored,
            store: source.store.clone(),
            wal_dir: source.dir.to_owned(),
            owner,
            claimed: std::sync::Mutex::new(HashSet::new()),
        };
        let newest = fetched
            .files
            .timelines
            .get(&target_tli)
            .and_then(|t| t.segnos().last().copied());
        if let Some(segno) = newest {
            fetched.fetch(target_tli, segno).await?;
        }
        Ok(fetched)
    }

    fn local_path(&self, tli: u32, segno: u64) -> Option<&PathBuf> {
        let timeline = self.files.timelines.get(&tli)?;
        timeline
            .complete
            .get(&segno)
            .or_else(|| timeline.partial.get(&segno))
    }

    /// Fetches one segment unless some fetch took it on already. A sealed segment gets its
    /// `.sha256` sidecar first; when it matches, its path goes on the verified list so the
    /// restore command does not hash it again. A mismatch is left for the restore command to
    /// refuse.
    async fn fetch(&self, tli: u32, segno: u64) -> Result<()> {
        let size = self.files.segment_size;
        let name = segment_name(tli, segno, size);
        let dest = self
            .local_path(tli, segno)
            .with_context(|| format!("segment {name} is not in the store's listing"))?
            .clone();
        let first = self
            .claimed
            .lock()
            .map(|mut claimed| claimed.insert((tli, segno)))
            .unwrap_or(true);
        if !first {
            return Ok(());
        }
        let listed = self
            .stored
            .timelines
            .get(&tli)
            .and_then(|t| t.segments.get(&name))
            .with_context(|| format!("segment {name} is not in the store's listing"))?;
        let mut seg = listed.clone();
        let bytes = match self.assemble(&name, &seg, size).await {
            Ok(bytes) => bytes,
            Err(err) => {
                // The source may have sent the segment again whole and removed the chunks we
                // listed (a quiet instance's segment, or one sealed since): list it afresh.
                tracing::debug!(segment = %name, error = %format!("{err:#}"), "listing the segment again");
                seg = self.relist(tli, &name).await?;
                self.assemble(&name, &seg, size).await?
            }
        };
        if let Some(sha) = &seg.sealed {
            let sidecar = dest.with_file_name(format!("{name}.sha256"));
            write_owned(
                &sidecar,
                format!("{sha}  {name}\n").as_bytes(),
                0o600,
                self.owner.as_ref(),
            )
            .await?;
            let actual = hex::encode(Sha256::digest(&bytes));
            write_plain(&dest, &bytes, self.owner.as_ref()).await?;
            if actual == *sha {
                let list = verified_path(&self.root);
                let line = format!("{}/tl{tli}/{name}\n", self.root.to_string_lossy());
                let mut f = tokio::fs::OpenOptions::new()
                    .append(true)
                    .open(&list)
                    .await
                    .with_context(|| format!("opening {}", list.display()))?;
                f.write_all(line.as_bytes()).await?;
            } else {
                tracing::warn!(segment = %name, "WAL segment in the store does not match its seal");
            }
        } else {
            write_plain(&dest, &bytes, self.owner.as_ref()).await?;
        }
        Ok(())
    }

    /// One segment as the store holds it now.
    async fn relist(&self, tli: u32, name: &str) -> Result<StoredSegment> {
        let dir = self.wal_dir.as_str();
        let prefix = format!("{dir}/tl{tli}/{name}");
        let entries = self.store.list(&prefix).await?;
        StoredWal::from_listing(dir, &entries)
            .timelines
            .remove(&tli)
            .and_then(|mut t| t.segments.remove(name))
            .with_context(|| format!("segment {name} is no longer in the store"))
    }

    async fn assemble(&self, name: &str, seg: &StoredSegment, size: u64) -> Result<Vec<u8>> {
        assemble_segment(&self.store, name, seg, size).await
    }

    /// Fetches `needed` in order, `depth` at a time, then ends. The restore command waits for
    /// the names in [`expected_path`]; a segment that cannot be fetched gets a
    /// [`failed_marker`] so that replay fails instead of waiting.
    pub(super) async fn write_expected(&self, needed: &[(u32, u64)]) -> Result<()> {
        let size = self.files.segment_size;
        let mut text = String::new();
        for &(tli, segno) in needed {
            text.push_str(&segment_name(tli, segno, size));
            text.push('\n');
        }
        write_owned(
            &expected_path(&self.root),
            text.as_bytes(),
            0o600,
            self.owner.as_ref(),
        )
        .await
    }

    /// Fetches `needed` in order, `depth` at a time, in a task of its own that stops when the
    /// returned handle is dropped. A segment that cannot be fetched gets a [`failed_marker`], so
    /// that replay fails instead of waiting for it.
    pub(super) fn spawn_prefetch(
        self: &Arc<Self>,
        needed: Vec<(u32, u64)>,
        depth: usize,
    ) -> Prefetch {
        let fetched = self.clone();
        Prefetch(tokio::spawn(async move {
            let size = fetched.files.segment_size;
            let fetched = &fetched;
            futures_util::stream::iter(needed)
                .map(|(tli, segno)| async move {
                    (segment_name(tli, segno, size), fetched.fetch(tli, segno).await)
                })
                .buffered(depth.max(1))
                .for_each(|(name, result)| async move {
                    if let Err(err) = result {
                        tracing::warn!(segment = %name, error = %format!("{err:#}"), "could not fetch a WAL segment from the store");
                        let marker = if err.chain().any(|e| e.is::<Damaged>()) {
                            damaged_marker(&fetched.root, &name)
                        } else {
                            failed_marker(&fetched.root, &name)
                        };
                        if let Err(e) = write_owned(&marker, b"", 0o600, fetched.owner.as_ref()).await {
                            tracing::warn!(error = %format!("{e:#}"), "could not mark a failed fetch");
                        }
                    }
                })
                .await;
        }))
    }
}

/// The segment's bytes: its chunks applied in upload order over zeros (an unwritten WAL page
/// is zeros, which is also how the receiver pads a segment in progress).
pub async fn assemble_segment(
    store: &BlobStore,
    name: &str,
    seg: &StoredSegment,
    size: u64,
) -> Result<Vec<u8>> {
    let len = usize::try_from(size).context("segment size")?;
    let mut bytes = vec![0u8; len];
    for chunk in seg.read_plan() {
        let data = store
            .get(&chunk.key)
            .await?
            .with_context(|| format!("{} vanished from the store", chunk.key))?;
        let (start, end) = (chunk.id.start, chunk.id.end);
        if end > size {
            bail!("chunk {} does not fit segment {name}", chunk.key);
        }
        let want = usize::try_from(end - start).context("chunk size")?;
        let data = tokio::task::spawn_blocking(move || zstd::bulk::decompress(&data, want))
            .await
            .context("decompression task failed")?
            .map_err(|e| Damaged(format!("{} does not decompress: {e}", chunk.key)))?;
        if data.len() != want {
            return Err(Damaged(format!(
                "chunk {} of segment {name} holds {} bytes, not {want}",
                chunk.key,
                data.len()
            ))
            .into());
        }
        bytes[start as usize..end as usize].copy_from_slice(&data);
    }
    Ok(bytes)
}

/// A running prefetch; dropping it stops it.
pub(super) struct Prefetch(tokio::task::JoinHandle<()>);

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for Fetched {
    /// The fetch directory does not outlive the replay that reads it, however that ends.
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.root)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %err, dir = %self.root.display(), "could not remove a WAL fetch directory");
        }
    }
}

/// Writes `bytes` to `path` through a temporary name, owned by `owner`. Not synced: the fetch
/// directory does not outlive the replay that reads it.
async fn write_plain(path: &Path, bytes: &[u8], owner: Option<&OsUser>) -> Result<()> {
    let tmp = sibling(path, "part");
    let written = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)
            .await
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(file);
        set_mode(&tmp, 0o600).await?;
        chown_to(&tmp, owner)?;
        tokio::fs::rename(&tmp, path)
            .await
            .with_context(|| format!("renaming {}", tmp.display()))
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written.map_err(|e| anyhow!("{e:#}"))
}
