//! A scratch world for running real PostgreSQL servers outside the agent: the driver's integration
//! tests and `trove-bench` share it. Compiled only with the `testkit` feature.
//!
//! A [`TestRoot`] is a private directory tree and an object store of its own (the S3 endpoint the
//! test script starts, under a prefix of its own, else a local directory in the tree); it hands
//! out clusters on allocated ports and WAL streamers that ship to that store, and on drop kills
//! every server started under it and removes the tree, so a failed assertion, an error or Ctrl-C
//! leaves nothing running; it also empties its prefix of an S3 store (a local store goes with the
//! tree).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};
use sqlx::{Connection as _, Postgres};
use tokio_util::sync::CancellationToken;
use trove_common::{
    recovery::WalTimeline,
    status::RecoveryPhase,
    store::{
        BlobStore, StoreBackend, StoreConfig,
        wal_keys::{StoredSegment, StoredWal},
    },
};

use crate::postgres::{
    Cluster, ClusterSpec, OsUser, PgBinaries, RecoveryError, Runner, SharedShipIndex, Shipper,
    WalSource, allocate_port, assemble_segment, ensure_dir, merge_store_index, scan, scan_until,
    spawn_wal_streamer, write_owned,
};

/// How often test streamers ship to the store (the agent's default).
const SHIP_EVERY: Duration = Duration::from_millis(200);

/// How long [`TestRoot::wait_for_store`] waits for the WAL store to catch up.
const STORE_WAIT: Duration = Duration::from_secs(60);
/// How long the drop waits for a stopping WAL receiver to let go of the tree.
const REMOVE_WAIT: Duration = Duration::from_secs(5);
/// `initdb`'s WAL segment size, which every test and bench cluster uses.
const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;
/// How many of a timeline's newest segments [`TestRoot::stored_latest_commit`] looks into before
/// it gives up finding a commit.
const NEWEST_SEGMENTS: usize = 4;

/// A private directory tree and the servers started in it.
pub struct TestRoot {
    path: PathBuf,
    runner: Runner,
    bins: PgBinaries,
    keep: bool,
    cancel: CancellationToken,
    data_dirs: Mutex<Vec<PathBuf>>,
    store: BlobStore,
    /// The S3 store this root opened for itself, emptied on drop; None for a local store (removed
    /// with the tree) and for a store another root owns.
    own_s3_store: Option<StoreConfig>,
}

impl TestRoot {
    /// A fresh tree `/tmp/<prefix>-<uuid>`, removed on drop.
    pub fn new(prefix: &str) -> Result<TestRoot> {
        let path = PathBuf::from(format!("/tmp/{prefix}-{}", uuid::Uuid::new_v4()));
        TestRoot::at(path, false)
    }

    /// The tree at `path`, created if missing; on drop it is removed unless `keep` is set.
    pub fn at(path: PathBuf, keep: bool) -> Result<TestRoot> {
        TestRoot::build(path, keep, None)
    }

    /// A fresh tree like [`TestRoot::new`] that uses `store` instead of a store of its own: two
    /// such roots share nothing but the store, as two hosts of one deployment do.
    pub fn sharing_store(prefix: &str, store: BlobStore) -> Result<TestRoot> {
        let path = PathBuf::from(format!("/tmp/{prefix}-{}", uuid::Uuid::new_v4()));
        TestRoot::build(path, false, Some(store))
    }

    fn build(path: PathBuf, keep: bool, store: Option<BlobStore>) -> Result<TestRoot> {
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        let (store, own_s3_store) = match store {
            Some(store) => (store, None),
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let config = trove_common::testkit::store_config(&path, &id);
                let store = BlobStore::open(&config)?;
                (
                    store,
                    (config.backend == StoreBackend::S3).then_some(config),
                )
            }
        };
        // The postgres OS user must traverse it when we run as root.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", path.display()))?;
        Ok(TestRoot {
            path,
            runner: Runner::detect("postgres").context("choosing how to run PostgreSQL")?,
            bins: PgBinaries::default(),
            keep,
            cancel: CancellationToken::new(),
            data_dirs: Mutex::new(Vec::new()),
            store,
            own_s3_store,
        })
    }

    /// The object store backups and WAL of this root go to.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    pub fn bins(&self) -> &PgBinaries {
        &self.bins
    }

    /// A cluster under `<root>/<name>` on a fresh port, reachable over TCP on 127.0.0.1 only.
    pub fn cluster(&self, name: &str) -> Result<Cluster> {
        let mut spec = ClusterSpec::under(&self.path.join(name), allocate_port()?);
        spec.listen_addresses = "127.0.0.1".to_owned();
        self.track(&spec.data_dir);
        Ok(Cluster::new(spec, self.bins.clone(), self.runner.clone()))
    }

    /// Remembers a data directory whose server (and staging server beside it) must be killed when
    /// the root is dropped.
    pub fn track(&self, data_dir: &Path) {
        if let Ok(mut dirs) = self.data_dirs.lock() {
            dirs.push(data_dir.to_path_buf());
        }
    }

    /// `<root>/<name>`, created and owned by the user PostgreSQL runs as, so its tools may write in it.
    pub fn owned_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.path.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Some(owner) = self.runner.owner() {
            std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid))
                .with_context(|| format!("chown {}", dir.display()))?;
        }
        Ok(dir)
    }

    /// Immediate stop of a server on `data_dir`, if one runs; errors are ignored.
    pub fn kill_server(&self, data_dir: &Path) {
        if !data_dir.join("postmaster.pid").exists() {
            return;
        }
        let mut cmd = self.runner.command(self.bins.path("pg_ctl"));
        cmd.arg("-D")
            .arg(data_dir)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = cmd
            .as_std_mut()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .output();
    }

    /// Streams `cluster`'s WAL into the spool `<root>/<name>.spool` and ships it to the store
    /// under `wal/<name>`, as the agent does for an instance, until [`Streamer::stop`] or the
    /// root's drop.
    pub fn streamer(&self, cluster: &Cluster, name: &str) -> Streamer {
        let wal = WalStream {
            spool: self.path.join(format!("{name}.spool")),
            dir: format!("wal/{name}"),
            index: SharedShipIndex::default(),
        };
        let shipper = Shipper::new(
            self.store.clone(),
            wal.spool.clone(),
            wal.dir.clone(),
            wal.index.clone(),
            self.bins.clone(),
            self.runner.clone(),
        );
        let cancel = self.cancel.child_token();
        let handle = spawn_wal_streamer(
            cluster.clone(),
            wal.spool.clone(),
            shipper,
            SHIP_EVERY,
            cancel.clone(),
        );
        Streamer {
            cancel,
            handle,
            wal,
        }
    }

    /// Timeline `tli` of a streamed instance's WAL in the store, as the agent reports it.
    pub async fn store_timeline(&self, wal: &WalStream, tli: u32) -> Result<WalTimeline> {
        let stored = wal
            .index
            .lock()
            .map_err(|_| anyhow::anyhow!("ship index poisoned"))?
            .stored_ends();
        let states = scan_until(&self.bins, &self.runner, &wal.spool, Some(&stored)).await?;
        let states = {
            let index = wal
                .index
                .lock()
                .map_err(|_| anyhow::anyhow!("ship index poisoned"))?;
            merge_store_index(states, &index)
        };
        states
            .into_iter()
            .find(|s| s.timeline == tli)
            .with_context(|| format!("no timeline {tli} in the store"))
    }

    /// Waits until [`TestRoot::store_timeline`] (the agent's view: the spool's WAL, up to what
    /// the shipper has sent) shows a commit after `after` on timeline `tli`;
    /// [`TestRoot::wait_for_stored`] reads the store's own objects instead.
    pub async fn wait_for_store(
        &self,
        wal: &WalStream,
        tli: u32,
        after: DateTime<Utc>,
    ) -> Result<()> {
        let what = format!("a commit after {after} on timeline {tli} in the WAL store");
        wait_for(&what, STORE_WAIT, Duration::from_millis(100), async || {
            let state = self.store_timeline(wal, tli).await.ok()?;
            state.latest_commit.filter(|c| *c > after).map(drop)
        })
        .await
    }

    /// The time of the last commit on timeline `tli` of a streamed instance's WAL as the store
    /// itself holds it: the timeline's newest segments are put together from their objects in a
    /// scratch directory and read like a spool. [`TestRoot::store_timeline`] reads the latest
    /// commit from the spool instead, which runs up to one shipping pass ahead of the store.
    pub async fn stored_latest_commit(
        &self,
        wal: &WalStream,
        tli: u32,
    ) -> Result<Option<DateTime<Utc>>> {
        let stored = stored_wal(&self.store, wal).await?;
        let Some(timeline) = stored.timelines.get(&tli) else {
            return Ok(None);
        };
        let scratch = self.owned_dir(&format!("stored-{}", uuid::Uuid::new_v4().simple()))?;
        let found = async {
            let owner = self.runner.owner();
            let dir = scratch.join(format!("tl{tli}"));
            ensure_dir(&dir, 0o700, owner).await?;
            // Newest first, until one holds a commit, as a report walks the spool.
            for (name, seg) in timeline.segments.iter().rev().take(NEWEST_SEGMENTS) {
                fetch_segment(&self.store, name, seg, &dir, owner).await?;
                let states = scan(&self.bins, &self.runner, &scratch).await?;
                let latest = states
                    .into_iter()
                    .find(|s| s.timeline == tli)
                    .and_then(|s| s.latest_commit);
                if latest.is_some() {
                    return Ok(latest);
                }
            }
            anyhow::Ok(None)
        }
        .await;
        if let Err(err) = std::fs::remove_dir_all(&scratch) {
            eprintln!("could not remove {}: {err}", scratch.display());
        }
        found
    }

    /// Waits until the store itself (not the spool) holds a commit after `after` on timeline
    /// `tli`: what a recovery from the store can reach.
    pub async fn wait_for_stored(
        &self,
        wal: &WalStream,
        tli: u32,
        after: DateTime<Utc>,
    ) -> Result<()> {
        let what = format!("a commit after {after} on timeline {tli} in the store's objects");
        wait_for(&what, STORE_WAIT, Duration::from_millis(200), async || {
            let latest = self.stored_latest_commit(wal, tli).await.ok()??;
            (latest > after).then_some(())
        })
        .await
    }

    fn remove_tree(&self) -> std::io::Result<()> {
        // A receiver that is still stopping may write one more file; try again until it let go.
        let until = Instant::now() + REMOVE_WAIT;
        loop {
            match std::fs::remove_dir_all(&self.path) {
                Ok(()) => return Ok(()),
                Err(_) if !self.path.exists() => return Ok(()),
                Err(err) if Instant::now() >= until => return Err(err),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        self.cancel.cancel();
        let dirs = self.data_dirs.lock().map(|d| d.clone()).unwrap_or_default();
        for dir in dirs {
            let mut staging = dir.clone().into_os_string();
            staging.push(".staging");
            self.kill_server(&dir);
            self.kill_server(Path::new(&staging));
        }
        if self.keep {
            eprintln!("kept {}", self.path.display());
            return;
        }
        // Before the tree goes: the store's secret key file is in it. The servers are stopped and
        // the streamers told to stop; a streamer still finishing its last pass may leave a chunk.
        if let Some(config) = self.own_s3_store.take() {
            trove_common::testkit::clear_store_blocking(config);
        }
        if let Err(err) = self.remove_tree() {
            eprintln!("could not remove {}: {err}", self.path.display());
        }
    }
}

/// Where one streamed instance's WAL is: its local spool, its directory in the store, and what
/// its shipper knows the store holds.
#[derive(Clone)]
pub struct WalStream {
    pub spool: PathBuf,
    /// `wal/<name>` in the root's store.
    pub dir: String,
    pub index: SharedShipIndex,
}

impl WalStream {
    /// This WAL as a replay's source.
    pub fn source<'a>(&'a self, store: &'a BlobStore) -> WalSource<'a> {
        WalSource {
            store,
            dir: &self.dir,
            prefetch: 4,
        }
    }
}

/// A running WAL streamer (see [`spawn_wal_streamer`]).
pub struct Streamer {
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    pub wal: WalStream,
}

impl Streamer {
    /// Stops the receiver and waits for the streamer to end.
    pub async fn stop(self) -> Result<()> {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .context("streamer did not stop")?
            .context("streamer task failed")
    }
}

/// Polls `probe` every `every` until it yields a value; fails naming `what` after `within`.
pub async fn wait_for<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> Result<T> {
    let until = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() >= until {
            bail!("gave up waiting for {what} after {within:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The phases a recovery reported, in order, with when each began.
#[derive(Default)]
pub struct PhaseLog(Mutex<Vec<(RecoveryPhase, Instant, DateTime<Utc>)>>);

impl PhaseLog {
    /// Use as `Reporters { phase: &|p| log.record(p), .. }`.
    pub fn record(&self, phase: RecoveryPhase) {
        if let Ok(mut marks) = self.0.lock() {
            marks.push((phase, Instant::now(), Utc::now()));
        }
    }

    /// The phases' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.marks().iter().map(|(p, _, _)| p.to_string()).collect()
    }

    /// Each phase with the monotonic and the wall-clock time it began.
    pub fn marks(&self) -> Vec<(RecoveryPhase, Instant, DateTime<Utc>)> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Asserts that a recovery failed while replaying and was rolled back: the error says so, no
/// phase after `replaying` was entered, and the live server still answers.
pub async fn assert_rolled_back_while_replaying(
    err: &RecoveryError,
    phases: &PhaseLog,
    cluster: &Cluster,
) {
    let message = format!("{err:#}");
    assert!(message.contains("during phase replaying"), "{message}");
    assert!(!message.contains("rollback also failed"), "{message}");
    assert_eq!(phases.names(), ["fetching", "verifying", "replaying"]);
    assert!(cluster.is_healthy().await, "the live server answers");
}

/// The single value `sql` returns, run as the superuser.
pub async fn query_value<T>(cluster: &Cluster, sql: &str) -> Result<T>
where
    T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres> + Send + Unpin,
{
    let mut conn = cluster.connect().await?;
    let value = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("running {sql}"))?;
    let _ = conn.close().await;
    Ok(value)
}

/// Runs `sql` (one or more statements) as the superuser.
pub async fn execute(cluster: &Cluster, sql: &str) -> Result<()> {
    let mut conn = cluster.connect().await?;
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .with_context(|| format!("running {sql}"))?;
    let _ = conn.close().await;
    Ok(())
}

/// Whether the server is still replaying WAL.
pub async fn in_recovery(cluster: &Cluster) -> Result<bool> {
    query_value(cluster, "SELECT pg_is_in_recovery()").await
}

/// `X/Y` in hex, as PostgreSQL prints an LSN.
pub fn parse_lsn(lsn: &str) -> Result<u64> {
    let (hi, lo) = lsn
        .trim()
        .split_once('/')
        .with_context(|| format!("bad lsn {lsn:?}"))?;
    Ok((u64::from_str_radix(hi, 16)? << 32) | u64::from_str_radix(lo, 16)?)
}

/// The sealed WAL segments of timeline `tli` of `wal` in the store, by name in WAL order.
pub async fn segment_names(store: &BlobStore, wal: &WalStream, tli: u32) -> Result<Vec<String>> {
    let entries = store.list(&wal.dir).await?;
    let stored = trove_common::store::wal_keys::StoredWal::from_listing(&wal.dir, &entries);
    Ok(stored
        .timelines
        .get(&tli)
        .map(|t| {
            t.segments
                .iter()
                .filter(|(_, seg)| seg.sealed.is_some())
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default())
}

/// What the store holds of `wal`, read from a listing.
pub async fn stored_wal(store: &BlobStore, wal: &WalStream) -> Result<StoredWal> {
    let entries = store.list(&wal.dir).await?;
    Ok(StoredWal::from_listing(&wal.dir, &entries))
}

/// Puts segment `name` together from its objects in `store` (chunks applied in upload order over
/// zeros, as a replay does) and writes it into `dir`, owned by `owner`: as `<name>` when it is
/// sealed, after checking it against its seal, else as `<name>.partial`. Returns the path.
pub async fn fetch_segment(
    store: &BlobStore,
    name: &str,
    seg: &StoredSegment,
    dir: &Path,
    owner: Option<&OsUser>,
) -> Result<PathBuf> {
    let bytes = assemble_segment(store, name, seg, SEGMENT_SIZE).await?;
    let path = match &seg.sealed {
        Some(sha) => {
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual != *sha {
                bail!("segment {name} in the store does not match its seal");
            }
            dir.join(name)
        }
        None => dir.join(format!("{name}.partial")),
    };
    write_owned(&path, &bytes, 0o600, owner).await?;
    Ok(path)
}
