//! Integration tests of continuous WAL shipping to the object store and point-in-time recovery
//! from it against real PostgreSQL 15 servers: a live writer, a WAL streamer, recoveries to times
//! on several timelines, refusal of damaged or missing objects, restore into a new instance (also
//! on another host that shares only the store), and the RPO after a crash.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{Connection as _, PgConnection};
use tokio_util::sync::CancellationToken;
use trove_common::{
    recovery::{RecoveryOutcome, RecoveryProgress, StopPoint},
    rpc::conductor::GuestErrorCode,
    status::RecoveryPhase,
    store::{BlobStore, layout, wal_keys::history_key},
};
use trove_guestagent::postgres::{
    ArchiveSource, BackupDest, BackupManifest, Cluster, RecoveryRequest, Replay, Reporters,
    current_timeline, recover_in_place, restore_new, take_backup,
};
use trove_guestagent::testkit::{
    PhaseLog, Streamer, TestRoot, WalStream, assert_rolled_back_while_replaying, execute,
    parse_lsn, query_value, segment_names, stored_wal, wait_for,
};

/// `(id, ts, committed_by)`: `ts` is the server's clock at the insert, `committed_by` the client's
/// clock once the commit returned, so the commit record's time lies between the two.
type Row = (i32, DateTime<Utc>, DateTime<Utc>);

const INSERT_ROW: &str = "INSERT INTO rows DEFAULT VALUES RETURNING id, ts";
const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

async fn insert_row(conn: &mut PgConnection) -> Result<(i32, DateTime<Utc>)> {
    Ok(sqlx::query_as(INSERT_ROW).fetch_one(conn).await?)
}

/// A running instance with an empty table `rows` whose WAL streams into the root's store.
struct Live {
    cluster: Cluster,
    streamer: Streamer,
}

impl Live {
    fn wal(&self) -> &WalStream {
        &self.streamer.wal
    }
}

async fn live_with_streamer(root: &TestRoot) -> Result<Live> {
    let cluster = root.cluster("live")?;
    cluster.init().await?;
    cluster.start().await?;
    execute(
        &cluster,
        "CREATE TABLE rows(id serial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    .await?;
    let streamer = root.streamer(&cluster, "live");
    Ok(Live { cluster, streamer })
}

/// Commits one row every ~50 ms, switching WAL segments now and then so the store holds sealed
/// segments as well as the one in progress.
struct Writer {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<()>>,
    rows: Arc<Mutex<Vec<Row>>>,
}

impl Writer {
    fn start(cluster: &Cluster) -> Writer {
        let stop = CancellationToken::new();
        let rows = Arc::new(Mutex::new(Vec::new()));
        let (cluster, token, written) = (cluster.clone(), stop.clone(), rows.clone());
        let handle = tokio::spawn(async move {
            let mut conn = cluster.connect().await?;
            let mut n = 0u32;
            while !token.is_cancelled() {
                let (id, ts) = insert_row(&mut conn).await?;
                written
                    .lock()
                    .expect("rows lock")
                    .push((id, ts, Utc::now()));
                n += 1;
                if n.is_multiple_of(15) {
                    sqlx::query("SELECT pg_switch_wal()")
                        .execute(&mut conn)
                        .await?;
                }
                // Paces the writer so rows are spread in time (the targets fall between them);
                // nothing waits on this for a condition.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            conn.close().await?;
            Ok(())
        });
        Writer { stop, handle, rows }
    }

    /// The rows committed so far.
    fn rows(&self) -> Vec<Row> {
        self.rows.lock().expect("rows lock").clone()
    }

    /// Waits until the writer has committed at least `n` rows, with a deadline.
    async fn wait_for_rows(&self, n: usize) -> Result<()> {
        let enough = async || (self.rows.lock().expect("rows lock").len() >= n).then_some(());
        let what = format!("{n} rows from the writer");
        wait_for(
            &what,
            Duration::from_secs(60),
            Duration::from_millis(20),
            enough,
        )
        .await
    }

    /// Stops the writer; returns every row it committed.
    async fn stop(self) -> Result<Vec<Row>> {
        self.stop.cancel();
        self.handle.await.context("writer task panicked")??;
        Ok(self.rows.lock().expect("rows lock").clone())
    }
}

/// A backup of the live instance in the store.
struct Backup {
    store: BlobStore,
    manifest: BackupManifest,
    archive: String,
    /// Rows the writer had committed before the backup started: all of them are in it.
    rows_before: usize,
    /// Rows the writer had committed when the backup was complete.
    rows_after: usize,
}

impl Backup {
    fn source(&self) -> ArchiveSource<'_> {
        ArchiveSource {
            store: &self.store,
            key: &self.archive,
            sha256: &self.manifest.checksum,
        }
    }

    /// A recovery from this backup replaying `wal` (in the backup's store) to `t` along
    /// `timeline`, putting the new timeline's history into `wal`'s spool, from which its streamer
    /// ships it.
    fn to_time<'a>(
        &'a self,
        wal: &'a WalStream,
        t: DateTime<Utc>,
        timeline: u32,
    ) -> RecoveryRequest<'a> {
        RecoveryRequest {
            archive: self.source(),
            replay: Some(Replay {
                wal: wal.source(&self.store),
                stop: StopPoint::Time(t),
                timeline,
                history_dest: Some(&wal.spool),
            }),
        }
    }
}

/// [`live_with_streamer`], a writer, and a backup into the store taken while the writer runs;
/// returns once `rows_after_backup` more rows committed after the backup (the writer keeps going).
async fn live_with_backup(
    root: &TestRoot,
    rows_after_backup: usize,
) -> Result<(Live, Writer, Backup)> {
    let live = live_with_streamer(root).await?;
    let writer = Writer::start(&live.cluster);
    // Some rows before the backup, so the backup is taken under writes.
    writer.wait_for_rows(5).await?;

    let id = uuid::Uuid::new_v4();
    let (archive, manifest_key) = (layout::backup_archive(id), layout::backup_manifest(id));
    let rows_before = writer.rows().len();
    let started = Instant::now();
    let manifest = take_backup(
        &live.cluster,
        &id.to_string(),
        BackupDest {
            store: root.store(),
            archive: &archive,
            manifest: &manifest_key,
        },
    )
    .await?;
    let rows_after = writer.rows().len();
    eprintln!("take_backup while writing: {:?}", started.elapsed());
    writer.wait_for_rows(rows_after + rows_after_backup).await?;
    let backup = Backup {
        store: root.store().clone(),
        manifest,
        archive,
        rows_before,
        rows_after,
    };
    Ok((live, writer, backup))
}

/// `recover_in_place` of `cluster` to `request`, timed.
async fn recover_timed(
    cluster: &Cluster,
    request: &RecoveryRequest<'_>,
    reporters: Reporters<'_>,
) -> Result<RecoveryOutcome> {
    let started = Instant::now();
    let outcome = recover_in_place(cluster, request, reporters).await?;
    eprintln!("recover_in_place: {:?} -> {outcome:?}", started.elapsed());
    Ok(outcome)
}

async fn ids(cluster: &Cluster) -> Result<Vec<i32>> {
    let mut conn = cluster.connect().await?;
    let ids = sqlx::query_scalar("SELECT id FROM rows ORDER BY id")
        .fetch_all(&mut conn)
        .await?;
    conn.close().await?;
    Ok(ids)
}

fn ids_until(rows: &[Row], t: DateTime<Utc>) -> Vec<i32> {
    let mut ids: Vec<i32> = rows
        .iter()
        .filter(|(_, ts, _)| *ts <= t)
        .map(|r| r.0)
        .collect();
    ids.sort_unstable();
    ids
}

/// A time after row `index` committed and before row `index + 1` was inserted: halfway between
/// the first row's commit returning and the second row's insert. Rows' own `ts` would not do on a
/// loaded machine, where a commit can come well after its insert.
fn midpoint(rows: &[Row], index: usize) -> DateTime<Utc> {
    let (a, b) = (rows[index].2, rows[index + 1].1);
    assert!(a < b, "row {index} committed after the next insert");
    a + (b - a) / 2
}

/// Index of the first row written after `after`.
fn first_row_after(rows: &[Row], after: DateTime<Utc>) -> Result<usize> {
    rows.iter()
        .position(|(_, ts, _)| *ts > after)
        .context("no row after the given time")
}

/// The history file of timeline `tli` of `wal`, once the store holds it (the streamer ships it
/// from the spool within a pass).
async fn wait_for_history(store: &BlobStore, wal: &WalStream, tli: u32) -> Result<Bytes> {
    let key = history_key(&wal.dir, tli);
    let what = format!("{key} in the store");
    wait_for(
        &what,
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || store.get(&key).await.ok()?,
    )
    .await
}

/// Timelines of `wal` in the store, each with its segment count, sealed count and history.
async fn describe_store(store: &BlobStore, wal: &WalStream) -> Result<String> {
    let stored = stored_wal(store, wal).await?;
    Ok(stored
        .timelines
        .iter()
        .map(|(tli, t)| {
            let sealed = t.segments.values().filter(|s| s.sealed.is_some()).count();
            format!(
                "tl{tli}: {} segments ({sealed} sealed), history {}",
                t.segments.len(),
                t.history.is_some()
            )
        })
        .collect::<Vec<_>>()
        .join("; "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_in_place_to_times_on_three_timelines_following_the_history() -> Result<()> {
    let root = TestRoot::new("trove-pitr")?;
    let (live, writer, backup) = live_with_backup(&root, 60).await?;
    let (cluster, wal, store) = (&live.cluster, live.wal(), root.store());

    // T0 early after the backup, T1 a second before the writer stops.
    let first = writer.rows();
    let after_backup = first_row_after(&first, backup.manifest.stop_time)?;
    let t0 = midpoint(&first, after_backup + 3);
    let t1 = midpoint(&first, first.len() - 20);
    ensure!(t0 < t1, "the writer produced too few rows");
    root.wait_for_stored(wal, 1, t1).await?;
    let phase1 = writer.stop().await?;

    // Recovery 1: to T1 on timeline 1.
    let phases = PhaseLog::default();
    let replays = Mutex::new(0usize);
    let count_replays = |p: RecoveryProgress| {
        if p.replayed_lsn.is_some() {
            *replays.lock().expect("replays lock") += 1;
        }
    };
    let timeline = current_timeline(cluster).await?;
    let outcome = recover_timed(
        cluster,
        &backup.to_time(wal, t1, timeline),
        Reporters {
            phase: &|p| phases.record(p),
            progress: &count_replays,
        },
    )
    .await?;
    assert_eq!(
        phases.names(),
        [
            "fetching",
            "verifying",
            "replaying",
            "verifying_target",
            "cutting_over",
            "health_check"
        ]
    );
    assert!(
        *replays.lock().expect("replays lock") >= 1,
        "replay progress reported"
    );
    assert_eq!(ids(cluster).await?, ids_until(&phase1, t1));
    assert!(
        ids_until(&phase1, t1).len() < phase1.len(),
        "rows after T1 are gone"
    );
    assert_eq!(outcome.new_timeline, Some(2));
    assert_eq!(current_timeline(cluster).await?, 2);
    assert!(outcome.last_replayed_commit.is_some_and(|c| c <= t1));
    wait_for_history(store, wal, 2).await?;
    assert!(!cluster.spec().data_dir.join("trove-recovery.conf").exists());
    assert!(
        !root.path().join("live/data.staging.walfetch").exists(),
        "the fetched WAL is removed after replay"
    );

    // More rows on timeline 2; the streamer follows the server onto it by itself.
    let writer = Writer::start(cluster);
    writer.wait_for_rows(30).await?;
    let second = writer.rows();
    ensure!(second.len() > 10, "too few rows on timeline 2");
    let t2 = midpoint(&second, second.len() / 2);
    root.wait_for_stored(wal, 2, t2).await?;
    let phase2 = writer.stop().await?;
    let state2 = root.store_timeline(wal, 2).await?;
    eprintln!("timeline 2 in the store: {state2:?}");
    assert_eq!(state2.parent, Some(1));
    assert!(state2.gaps.is_empty(), "{state2:?}");

    // Recovery 2: from the timeline-1 backup to T2 on timeline 2.
    let outcome = recover_timed(cluster, &backup.to_time(wal, t2, 2), Reporters::SILENT).await?;
    let mut expected = ids_until(&phase1, t1);
    expected.extend(ids_until(&phase2, t2));
    expected.sort_unstable();
    assert_eq!(ids(cluster).await?, expected);
    assert_eq!(outcome.new_timeline, Some(3));
    wait_for_history(store, wal, 3).await?;

    // Recovery 3: back to T0, before the first recovery, along timeline 3's history.
    let timeline = current_timeline(cluster).await?;
    let outcome = recover_timed(
        cluster,
        &backup.to_time(wal, t0, timeline),
        Reporters::SILENT,
    )
    .await?;
    assert_eq!(ids(cluster).await?, ids_until(&phase1, t0));
    assert_eq!(outcome.new_timeline, Some(4));
    assert_eq!(current_timeline(cluster).await?, 4);
    let history4 = wait_for_history(store, wal, 4).await?;
    eprintln!("00000004.history:\n{}", String::from_utf8_lossy(&history4));

    // The instance keeps working, and its WAL keeps flowing into the store.
    let ts: DateTime<Utc> =
        query_value(cluster, "INSERT INTO rows DEFAULT VALUES RETURNING ts").await?;
    root.wait_for_stored(wal, 4, ts - TimeDelta::milliseconds(1))
        .await?;
    eprintln!("store: {}", describe_store(store, wal).await?);

    live.streamer.stop().await?;
    cluster.stop().await?;
    Ok(())
}

/// The segment number a segment name (`TTTTTTTTXXXXXXXXYYYYYYYY`) stands for.
fn segno(name: &str) -> Option<u64> {
    let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
    let seg = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
    Some(log * (0x1_0000_0000 / SEGMENT_SIZE) + seg)
}

/// The first sealed segment on timeline 1 after the backup's end, with what the store holds of it.
async fn segment_after_backup(
    store: &BlobStore,
    wal: &WalStream,
    manifest: &BackupManifest,
) -> Result<(String, trove_common::store::wal_keys::StoredSegment)> {
    let stop_segno = parse_lsn(&manifest.stop_lsn)? / SEGMENT_SIZE;
    let name = segment_names(store, wal, 1)
        .await?
        .into_iter()
        .find(|n| segno(n).is_some_and(|s| s > stop_segno))
        .context("no sealed segment after the backup")?;
    let stored = stored_wal(store, wal).await?;
    let seg = stored
        .timelines
        .get(&1)
        .and_then(|t| t.segments.get(&name))
        .cloned()
        .with_context(|| format!("{name} left the listing"))?;
    Ok((name, seg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_damaged_or_missing_wal_objects_and_restores_a_new_instance_to_a_time() -> Result<()>
{
    let root = TestRoot::new("trove-pitr")?;
    let (live, writer, backup) = live_with_backup(&root, 60).await?;
    let (cluster, wal, store) = (&live.cluster, live.wal(), root.store());
    let snap = writer.rows();
    let t = midpoint(&snap, snap.len() - 5);
    root.wait_for_stored(wal, 1, t).await?;
    let all_rows = writer.stop().await?;
    let all_ids = ids(cluster).await?;
    assert_eq!(all_ids.len(), all_rows.len());
    let (name, segment) = segment_after_backup(store, wal, &backup.manifest).await?;
    assert!(segment.sealed.is_some(), "{name} is sealed");

    // A chunk of a sealed segment overwritten with other bytes of the same length no longer
    // matches the seal: the recovery aborts while replaying and is rolled back. The last chunk of
    // the read plan is the one whose bytes all count.
    let chunk = segment
        .read_plan()
        .last()
        .map(|c| c.key.clone())
        .context("a sealed segment without chunks")?;
    let good = store.get(&chunk).await?.context("the chunk is listed")?;
    let mut bad = good.to_vec();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    store.put(&chunk, Bytes::from(bad)).await?;
    let phases = PhaseLog::default();
    let started = Instant::now();
    let err = recover_in_place(
        cluster,
        &backup.to_time(wal, t, 1),
        Reporters {
            phase: &|p| phases.record(p),
            ..Reporters::SILENT
        },
    )
    .await
    .expect_err("a damaged segment must abort the recovery");
    eprintln!("damaged chunk: {:?}: {err:#}", started.elapsed());
    assert_rolled_back_while_replaying(&err, &phases, cluster).await;
    assert_eq!(err.code, GuestErrorCode::ChecksumMismatch);
    assert_eq!(
        ids(cluster).await?,
        all_ids,
        "the live instance keeps its data"
    );
    assert!(!root.path().join("live/data.staging").exists());
    assert!(!root.path().join("live/data.staging.walfetch").exists());
    store.put(&chunk, good).await?;

    // A segment whose objects are gone is found before anything starts.
    let mut saved = Vec::new();
    for key in &segment.keys {
        saved.push((key.clone(), store.get(key).await?.context("listed")?));
    }
    store.delete_many(&segment.keys).await?;
    let timeline1 = stored_wal(store, wal)
        .await?
        .timelines
        .remove(&1)
        .context("timeline 1 in the store")?;
    assert!(!timeline1.segments.contains_key(&name), "{name} deleted");
    assert!(
        timeline1.segments.keys().any(|n| *n > name),
        "segments after {name} remain, so it is a gap"
    );
    let err = recover_in_place(cluster, &backup.to_time(wal, t, 1), Reporters::SILENT)
        .await
        .expect_err("a gap must fail the recovery");
    assert_eq!(
        (err.phase, err.code),
        (RecoveryPhase::Verifying, GuestErrorCode::BackupNotFound)
    );
    let message = format!("{err:#}");
    eprintln!("gap: {message}");
    assert!(message.contains("during phase verifying"), "{message}");
    assert!(message.contains("gap"), "{message}");
    assert!(message.contains(&name), "{message}");
    assert_eq!(ids(cluster).await?, all_ids);
    for (key, bytes) in saved {
        store.put(&key, bytes).await?;
    }

    // A new instance from this instance's backup and WAL; the source is not touched.
    let copy = root.cluster("copy")?;
    let copy_spool = root.path().join("copy.spool");
    let started = Instant::now();
    let mut request = backup.to_time(wal, t, 1);
    if let Some(replay) = request.replay.as_mut() {
        replay.history_dest = Some(&copy_spool);
    }
    let outcome = restore_new(&copy, &request, Reporters::SILENT).await?;
    eprintln!("restore_new: {:?} -> {outcome:?}", started.elapsed());
    assert_eq!(ids(&copy).await?, ids_until(&all_rows, t));
    assert_eq!(
        ids(cluster).await?,
        all_ids,
        "the source keeps all its rows"
    );
    assert_eq!(current_timeline(cluster).await?, 1);
    assert_eq!(outcome.new_timeline, Some(2));
    assert!(copy_spool.join("tl2/00000002.history").exists());
    assert!(
        !stored_wal(store, wal).await?.timelines.contains_key(&2),
        "nothing written into the source's WAL in the store"
    );
    assert!(!copy.spec().data_dir.join("trove-recovery.conf").exists());

    live.streamer.stop().await?;
    copy.stop().await?;
    cluster.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_on_another_host_restores_from_the_store_alone_then_to_a_time() -> Result<()>
{
    let first = TestRoot::new("trove-pitr")?;
    let (live, writer, backup) = live_with_backup(&first, 40).await?;
    let snap = writer.rows();
    let t = midpoint(&snap, snap.len() - 5);
    first.wait_for_stored(live.wal(), 1, t).await?;
    let all_rows = writer.stop().await?;
    let all_ids = ids(&live.cluster).await?;
    let wal = live.wal().clone();
    live.streamer.stop().await?;
    live.cluster.stop().await?;
    // Nothing of the first host is left but the store (a local one lives in its tree): not its
    // data, not its spool.
    std::fs::remove_dir_all(first.path().join("live"))?;
    std::fs::remove_dir_all(&wal.spool)?;
    let left: Vec<String> = std::fs::read_dir(first.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    assert!(
        left.iter().all(|n| n == "store" || n == "s3-secret"),
        "{left:?}"
    );

    // Another host, sharing only the store, brings up an instance from the backup.
    let second = TestRoot::sharing_store("trove-pitr", first.store().clone())?;
    let copy = second.cluster("copy")?;
    let streamed = Mutex::new((0u64, 0u64));
    let record_bytes = |p: RecoveryProgress| {
        if let (Some(done), Some(total)) = (p.bytes_done, p.bytes_total) {
            *streamed.lock().expect("progress lock") = (done, total);
        }
    };
    let started = Instant::now();
    restore_new(
        &copy,
        &RecoveryRequest {
            archive: backup.source(),
            replay: None,
        },
        Reporters {
            progress: &record_bytes,
            ..Reporters::SILENT
        },
    )
    .await?;
    eprintln!("restore_new from the store alone: {:?}", started.elapsed());
    assert_eq!(
        *streamed.lock().expect("progress lock"),
        (backup.manifest.size_bytes, backup.manifest.size_bytes),
        "the whole archive came from the store"
    );
    // The backup holds every row committed before it started, and none written after it ended.
    let restored = ids(&copy).await?;
    assert!(
        (backup.rows_before..=backup.rows_after + 1).contains(&restored.len()),
        "{} rows restored; {} before the backup, {} when it ended",
        restored.len(),
        backup.rows_before,
        backup.rows_after
    );
    assert_eq!(restored, all_ids[..restored.len()]);

    // Then a point-in-time recovery of the new instance along the first one's WAL.
    let copy_spool = second.path().join("copy.spool");
    let mut request = backup.to_time(&wal, t, 1);
    if let Some(replay) = request.replay.as_mut() {
        replay.history_dest = Some(&copy_spool);
    }
    let started = Instant::now();
    let outcome = recover_in_place(&copy, &request, Reporters::SILENT).await?;
    eprintln!(
        "recover_in_place from the other host's WAL: {:?} -> {outcome:?}",
        started.elapsed()
    );
    assert_eq!(ids(&copy).await?, ids_until(&all_rows, t));
    assert!(
        ids_until(&all_rows, t).len() > restored.len(),
        "the replay added rows after the backup"
    );
    // The restore promoted to timeline 2; the recovery carried its history and moved on to 3.
    assert_eq!(outcome.new_timeline, Some(3));
    assert!(copy_spool.join("tl3/00000003.history").exists());
    let source = stored_wal(first.store(), &wal).await?;
    assert_eq!(
        source.timelines.keys().copied().collect::<Vec<_>>(),
        [1],
        "the first instance's WAL is only read"
    );

    copy.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_holds_the_last_commit_before_a_crash() -> Result<()> {
    let root = TestRoot::new("trove-pitr")?;
    let Live { cluster, streamer } = live_with_streamer(&root).await?;
    let wal = streamer.wal.clone();
    root.wait_for_stored(&wal, 1, DateTime::<Utc>::MIN_UTC)
        .await?;

    let mut conn = cluster.connect().await?;
    let mut last = None;
    for _ in 0..20 {
        last = Some(insert_row(&mut conn).await?);
        // Paces the commits like a trickle of traffic; nothing waits on this for a condition.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = insert_row(&mut conn)
        .await
        .ok()
        .or(last)
        .context("no row")?;
    // kill -9 the postmaster right after the commit returned.
    let pid_file = std::fs::read_to_string(cluster.spec().data_dir.join("postmaster.pid"))?;
    let pid = pid_file
        .lines()
        .next()
        .context("empty postmaster.pid")?
        .trim()
        .to_owned();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()?;
    ensure!(status.success(), "kill -9 failed");
    let killed = Instant::now();
    drop(conn);

    // The receiver has lost its server; what it flushed is what the shipper uploads. Wait (with a
    // deadline) for the store's own objects to show the last commit; if they never do, the
    // assertion below reports how much is missing.
    let shown = async || {
        let stored = root.stored_latest_commit(&wal, 1).await.ok()??;
        (stored >= last.1).then_some(())
    };
    let waited = wait_for(
        "the last commit in the store",
        Duration::from_secs(10),
        Duration::from_millis(100),
        shown,
    )
    .await;
    eprintln!("in the store {:?} after the crash", killed.elapsed());
    streamer.stop().await?;
    let stored = root
        .stored_latest_commit(&wal, 1)
        .await?
        .context("no commit in the store")?;
    let gap_ms = (last.1 - stored).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
    eprintln!(
        "RPO: last committed row ts {}, latest commit in store {stored}, row ts minus store commit = {gap_ms} ms",
        last.1
    );
    assert!(
        last.1 <= stored,
        "the last commit before the crash is in the store ({waited:?})"
    );
    Ok(())
}
