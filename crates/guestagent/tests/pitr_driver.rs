//! Integration tests of continuous WAL archiving and point-in-time recovery against real
//! PostgreSQL 15 servers: a live writer, a WAL streamer, recoveries to times on several timelines,
//! refusal of a damaged or incomplete WAL store, restore into a new instance, and the RPO after a
//! crash.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{Connection as _, PgConnection};
use tokio_util::sync::CancellationToken;
use trove_common::{
    recovery::{RecoveryOutcome, RecoveryProgress, StopPoint},
    rpc::conductor::GuestErrorCode,
    status::RecoveryPhase,
};
use trove_guestagent::postgres::{
    ARCHIVE_FILE, BackupManifest, Cluster, RecoveryRequest, Replay, Reporters, checksum_segments,
    current_timeline, recover_in_place, restore_new, scan, take_backup, timeline_dir,
};
use trove_guestagent::testkit::{
    PhaseLog, Streamer, TestRoot, assert_rolled_back_while_replaying, execute, parse_lsn,
    query_value, segment_names, wait_for,
};

/// `(id, ts, committed_by)`: `ts` is the server's clock at the insert, `committed_by` the client's
/// clock once the commit returned, so the commit record's time lies between the two.
type Row = (i32, DateTime<Utc>, DateTime<Utc>);

const INSERT_ROW: &str = "INSERT INTO rows DEFAULT VALUES RETURNING id, ts";

async fn insert_row(conn: &mut PgConnection) -> Result<(i32, DateTime<Utc>)> {
    Ok(sqlx::query_as(INSERT_ROW).fetch_one(conn).await?)
}

/// A running instance with an empty table `rows` whose WAL streams into `wal_root`.
struct Live {
    cluster: Cluster,
    wal_root: PathBuf,
    streamer: Streamer,
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
    let wal_root = root.path().join("wal");
    let streamer = root.streamer(&cluster, &wal_root);
    Ok(Live {
        cluster,
        wal_root,
        streamer,
    })
}

/// Commits one row every ~50 ms, switching WAL segments now and then so the store holds
/// completed segments as well as the `.partial`.
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

/// A backup of the live instance.
struct Backup {
    manifest: BackupManifest,
    archive: PathBuf,
}

impl Backup {
    /// A recovery from this backup replaying `wal_root` to `t` along `timeline`, keeping the new
    /// timeline's history in `wal_root`.
    fn to_time<'a>(
        &'a self,
        wal_root: &'a Path,
        t: DateTime<Utc>,
        timeline: u32,
    ) -> RecoveryRequest<'a> {
        RecoveryRequest {
            archive: &self.archive,
            sha256: &self.manifest.checksum,
            replay: Some(Replay {
                wal_root,
                stop: StopPoint::Time(t),
                timeline,
                history_dest: Some(wal_root),
            }),
        }
    }
}

/// [`live_with_streamer`], a writer, and a backup taken while the writer runs; returns once
/// `rows_after_backup` more rows committed after the backup (the writer keeps going).
async fn live_with_backup(
    root: &TestRoot,
    rows_after_backup: usize,
) -> Result<(Live, Writer, Backup)> {
    let live = live_with_streamer(root).await?;
    let writer = Writer::start(&live.cluster);
    // Some rows before the backup, so the backup is taken under writes.
    writer.wait_for_rows(5).await?;

    let started = Instant::now();
    let backup_dir = root.path().join("backups").join("b1");
    let manifest = take_backup(&live.cluster, "b1", &backup_dir).await?;
    eprintln!("take_backup while writing: {:?}", started.elapsed());
    writer
        .wait_for_rows(writer.rows().len() + rows_after_backup)
        .await?;
    let archive = backup_dir.join(ARCHIVE_FILE);
    Ok((live, writer, Backup { manifest, archive }))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_in_place_to_times_on_three_timelines_following_the_history() -> Result<()> {
    let root = TestRoot::new("trove-pitr")?;
    let (live, writer, backup) = live_with_backup(&root, 60).await?;
    let (cluster, wal_root) = (&live.cluster, &live.wal_root);

    // T0 early after the backup, T1 a second before the writer stops.
    let first = writer.rows();
    let after_backup = first_row_after(&first, backup.manifest.stop_time)?;
    let t0 = midpoint(&first, after_backup + 3);
    let t1 = midpoint(&first, first.len() - 20);
    ensure!(t0 < t1, "the writer produced too few rows");
    root.wait_for_store(wal_root, 1, t1).await?;
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
        &backup.to_time(wal_root, t1, timeline),
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
    assert!(wal_root.join("tl2/00000002.history").exists());
    assert!(!cluster.spec().data_dir.join("trove-recovery.conf").exists());

    // More rows on timeline 2; the streamer follows the server onto it by itself.
    let writer = Writer::start(cluster);
    writer.wait_for_rows(30).await?;
    let second = writer.rows();
    ensure!(second.len() > 10, "too few rows on timeline 2");
    let t2 = midpoint(&second, second.len() / 2);
    root.wait_for_store(wal_root, 2, t2).await?;
    let phase2 = writer.stop().await?;
    let state2 = root.store_timeline(wal_root, 2).await?;
    eprintln!("timeline 2 in the store: {state2:?}");
    assert_eq!(state2.parent, Some(1));
    assert!(state2.gaps.is_empty(), "{state2:?}");

    // Recovery 2: from the timeline-1 backup to T2 on timeline 2.
    let outcome =
        recover_timed(cluster, &backup.to_time(wal_root, t2, 2), Reporters::SILENT).await?;
    let mut expected = ids_until(&phase1, t1);
    expected.extend(ids_until(&phase2, t2));
    expected.sort_unstable();
    assert_eq!(ids(cluster).await?, expected);
    assert_eq!(outcome.new_timeline, Some(3));
    assert!(wal_root.join("tl3/00000003.history").exists());

    // Recovery 3: back to T0, before the first recovery, along timeline 3's history.
    let timeline = current_timeline(cluster).await?;
    let outcome = recover_timed(
        cluster,
        &backup.to_time(wal_root, t0, timeline),
        Reporters::SILENT,
    )
    .await?;
    assert_eq!(ids(cluster).await?, ids_until(&phase1, t0));
    assert_eq!(outcome.new_timeline, Some(4));
    assert_eq!(current_timeline(cluster).await?, 4);
    let history4 = std::fs::read_to_string(wal_root.join("tl4/00000004.history"))?;
    eprintln!("00000004.history:\n{history4}");

    // The instance keeps working, and its WAL keeps flowing into the store.
    let ts: DateTime<Utc> =
        query_value(cluster, "INSERT INTO rows DEFAULT VALUES RETURNING ts").await?;
    root.wait_for_store(wal_root, 4, ts - TimeDelta::milliseconds(1))
        .await?;
    eprintln!(
        "store: {:#?}",
        scan(root.bins(), root.runner(), wal_root).await?
    );

    live.streamer.stop().await?;
    cluster.stop().await?;
    Ok(())
}

/// The first completed segment on timeline 1 after the backup's end.
fn segment_after_backup(wal_root: &Path, manifest: &BackupManifest) -> Result<PathBuf> {
    let stop_segno = parse_lsn(&manifest.stop_lsn)? / (16 * 1024 * 1024);
    let dir = timeline_dir(wal_root, 1);
    let name = segment_names(&dir)?
        .into_iter()
        .find(|n| u64::from_str_radix(&n[8..], 16).is_ok_and(|s| s > stop_segno))
        .context("no completed segment after the backup")?;
    Ok(dir.join(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_damaged_or_incomplete_store_and_restores_a_new_instance_to_a_time() -> Result<()>
{
    let root = TestRoot::new("trove-pitr")?;
    let (live, writer, backup) = live_with_backup(&root, 60).await?;
    let (cluster, wal_root) = (&live.cluster, &live.wal_root);
    let snap = writer.rows();
    let t = midpoint(&snap, snap.len() - 5);
    root.wait_for_store(wal_root, 1, t).await?;
    let all_rows = writer.stop().await?;
    let all_ids = ids(cluster).await?;
    assert_eq!(all_ids.len(), all_rows.len());
    checksum_segments(wal_root).await?;
    let segment = segment_after_backup(wal_root, &backup.manifest)?;
    let sidecar = PathBuf::from(format!("{}.sha256", segment.display()));
    assert!(
        sidecar.exists(),
        "completed segments get a checksum sidecar"
    );

    // A segment that no longer matches its checksum aborts the recovery.
    let good = std::fs::read(&sidecar)?;
    let name = segment
        .file_name()
        .and_then(|n| n.to_str())
        .context("name")?;
    std::fs::write(&sidecar, format!("{}  {name}\n", "0".repeat(64)))?;
    let phases = PhaseLog::default();
    let started = Instant::now();
    let err = recover_in_place(
        cluster,
        &backup.to_time(wal_root, t, 1),
        Reporters {
            phase: &|p| phases.record(p),
            ..Reporters::SILENT
        },
    )
    .await
    .expect_err("a damaged segment must abort the recovery");
    eprintln!("bad checksum: {:?}: {err:#}", started.elapsed());
    assert_rolled_back_while_replaying(&err, &phases, cluster).await;
    assert_eq!(err.code, GuestErrorCode::ChecksumMismatch);
    assert_eq!(
        ids(cluster).await?,
        all_ids,
        "the live instance keeps its data"
    );
    assert!(!root.path().join("live/data.staging").exists());
    std::fs::write(&sidecar, good)?;

    // A missing segment is found before anything starts.
    let aside = root.path().join("aside");
    std::fs::rename(&segment, &aside)?;
    let state = root.store_timeline(wal_root, 1).await?;
    assert_eq!(state.gaps.len(), 1, "{state:?}");
    let err = recover_in_place(cluster, &backup.to_time(wal_root, t, 1), Reporters::SILENT)
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
    assert_eq!(ids(cluster).await?, all_ids);
    std::fs::rename(&aside, &segment)?;

    // A new instance from this instance's backup and WAL; the source is not touched.
    let copy = root.cluster("copy")?;
    let copy_wal = root.path().join("copy-wal");
    let started = Instant::now();
    let mut request = backup.to_time(wal_root, t, 1);
    if let Some(replay) = request.replay.as_mut() {
        replay.history_dest = Some(&copy_wal);
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
    assert!(copy_wal.join("tl2/00000002.history").exists());
    assert!(
        !wal_root.join("tl2").exists(),
        "nothing written into the source's store"
    );
    assert!(!copy.spec().data_dir.join("trove-recovery.conf").exists());

    live.streamer.stop().await?;
    copy.stop().await?;
    cluster.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_holds_the_last_commit_before_a_crash() -> Result<()> {
    let root = TestRoot::new("trove-pitr")?;
    let Live {
        cluster,
        wal_root,
        streamer,
    } = live_with_streamer(&root).await?;
    root.wait_for_store(&wal_root, 1, DateTime::<Utc>::MIN_UTC)
        .await?;

    let mut conn = cluster.connect().await?;
    let mut last = None;
    for _ in 0..20 {
        last = Some(insert_row(&mut conn).await?);
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
    drop(conn);

    // The receiver has lost its server; what it flushed is what the store holds. Wait (with a
    // deadline) for the store to show the last commit; if it never does, the assertion below
    // reports how much is missing.
    let shown = async || {
        let stored = root
            .store_timeline(&wal_root, 1)
            .await
            .ok()?
            .latest_commit?;
        (stored >= last.1).then_some(())
    };
    let waited = wait_for(
        "the last commit in the store",
        Duration::from_secs(10),
        Duration::from_millis(100),
        shown,
    )
    .await;
    streamer.stop().await?;
    let stored = root
        .store_timeline(&wal_root, 1)
        .await?
        .latest_commit
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
