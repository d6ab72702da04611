//! Local copies of what the object store holds, made outside any timing: a local store with the
//! same objects, for the same recovery against a directory, and plain files (the archive and the
//! assembled WAL segments) for PostgreSQL alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use trove_common::store::{BlobStore, StoreBackend, StoreConfig};
use trove_guestagent::testkit::{TestRoot, WalStream, fetch_segment, stored_wal};

use crate::target::segno;

/// Every key prefix the benchmark writes under: backups and WAL.
const TOP_DIRS: [&str; 2] = ["backups", "wal"];

/// A local store under the root (`StoreBackend::Local`).
pub fn local_store(root: &TestRoot) -> Result<BlobStore> {
    BlobStore::open(&StoreConfig {
        backend: StoreBackend::Local,
        path: root.path().join("local-store"),
        ..StoreConfig::default()
    })
}

/// What one [`mirror`] copied.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Mirrored {
    pub objects: u64,
    pub bytes: u64,
    pub removed: u64,
    pub secs: f64,
}

/// Makes `to` hold exactly the objects of `from` (under [`TOP_DIRS`]): copies what is missing or
/// of another size, removes what `from` no longer has. Objects are never rewritten in place under
/// the same name (docs/object-store.md), so key and size tell a copy apart.
pub async fn mirror(from: &BlobStore, to: &BlobStore) -> Result<Mirrored> {
    let started = Instant::now();
    let mut done = Mirrored::default();
    for top in TOP_DIRS {
        let source = from.list(top).await?;
        let mut present: std::collections::HashMap<String, u64> = to
            .list(top)
            .await?
            .into_iter()
            .map(|e| (e.key, e.size))
            .collect();
        for entry in source {
            if present.remove(&entry.key) == Some(entry.size) {
                continue;
            }
            let bytes = from
                .get(&entry.key)
                .await?
                .with_context(|| format!("{} vanished while mirroring", entry.key))?;
            done.bytes += bytes.len() as u64;
            done.objects += 1;
            to.put(&entry.key, bytes).await?;
        }
        let stale: Vec<String> = present.into_keys().collect();
        done.removed += stale.len() as u64;
        to.delete_many(&stale).await?;
    }
    done.secs = started.elapsed().as_secs_f64();
    Ok(done)
}

/// What PostgreSQL alone replays from: the archive as a file and timeline 1's WAL as segment
/// files (`<name>`, or `<name>.partial` for the one in progress), readable by its OS user.
pub struct FloorInputs {
    pub archive: PathBuf,
    pub wal_dir: PathBuf,
    pub segments: usize,
    pub secs: f64,
}

/// Downloads the archive `key` and every segment of timeline 1 of `wal` from `first_segno` on.
pub async fn floor_inputs(
    root: &TestRoot,
    store: &BlobStore,
    key: &str,
    wal: &WalStream,
    first_segno: u64,
) -> Result<FloorInputs> {
    let started = Instant::now();
    let dir = root.owned_dir("floor-inputs")?;
    let archive = dir.join("base.tar.zst");
    download(store, key, &archive).await?;
    let wal_dir = root.owned_dir("floor-inputs/tl1")?;
    let owner = root.runner().owner();
    let stored = stored_wal(store, wal).await?;
    let mut segments = 0;
    if let Some(timeline) = stored.timelines.get(&1) {
        for (name, seg) in &timeline.segments {
            if segno(name).with_context(|| format!("bad segment name {name}"))? >= first_segno {
                fetch_segment(store, name, seg, &wal_dir, owner).await?;
                segments += 1;
            }
        }
    }
    Ok(FloorInputs {
        archive,
        wal_dir,
        segments,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Writes object `key` into the file `path` (world-readable: PostgreSQL's user unpacks it).
async fn download(store: &BlobStore, key: &str, path: &Path) -> Result<()> {
    let bytes = store
        .get(key)
        .await?
        .with_context(|| format!("{key} is not in the store"))?;
    tokio::fs::write(path, bytes)
        .await
        .with_context(|| format!("writing {}", path.display()))
}
