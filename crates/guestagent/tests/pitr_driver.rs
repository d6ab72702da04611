//! Integration tests of continuous WAL archiving and point-in-time recovery against real
//! PostgreSQL 15 servers: a live writer, a WAL streamer, recoveries to times on several timelines,
//! refusal of a damaged or incomplete WAL store, restore into a new instance, and the RPO after a
//! crash.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;
use trove_guestagent::postgres::{
    BackupManifest, Cluster, ClusterSpec, PgBinaries, RecoveryTarget, Runner, TimelineState,
    allocate_port, checksum_segments, current_timeline, recover_in_place_to, restore_new_to, scan,
    spawn_wal_streamer, take_backup,
};

/// `(id, ts, committed_by)`: `ts` is the server's clock at the insert, `committed_by` the client's
/// clock once the commit returned, so the commit record's time lies between the two.
type Row = (i32, DateTime<Utc>, DateTime<Utc>);

/// A private directory tree for one test. Dropping it stops every streamer and kills every server
/// started under it, then removes the tree, so a failed assertion leaves nothing running.
struct TestRoot {
    path: PathBuf,
    runner: Runner,
    clusters: Mutex<Vec<Cluster>>,
    cancel: CancellationToken,
}

impl TestRoot {
    fn new() -> Result<TestRoot> {
        let path = PathBuf::from(format!("/tmp/trove-pitr-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&path)?;
        // The postgres OS user must traverse it when the test runs as root.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(TestRoot {
            path,
            runner: Runner::detect("postgres")?,
            clusters: Mutex::new(Vec::new()),
            cancel: CancellationToken::new(),
        })
    }

    fn cluster(&self, name: &str) -> Result<Cluster> {
        let mut spec = ClusterSpec::under(&self.path.join(name), allocate_port()?);
        spec.listen_addresses = "127.0.0.1".to_owned();
        let cluster = Cluster::new(spec, PgBinaries::default(), self.runner.clone());
        self.clusters
            .lock()
            .expect("cluster list lock")
            .push(cluster.clone());
        Ok(cluster)
    }

    fn streamer(&self, cluster: &Cluster, wal_root: &Path) -> Streamer {
        let cancel = self.cancel.child_token();
        let handle = spawn_wal_streamer(cluster.clone(), wal_root.to_path_buf(), cancel.clone());
        Streamer { cancel, handle }
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        self.cancel.cancel();
        let clusters = self.clusters.lock().map(|c| c.clone()).unwrap_or_default();
        for cluster in clusters {
            let data = &cluster.spec().data_dir;
            let mut staging = data.clone().into_os_string();
            staging.push(".staging");
            for dir in [data.clone(), PathBuf::from(staging)] {
                let mut cmd = self.runner.command(cluster.bins().path("pg_ctl"));
                cmd.arg("-D").arg(&dir).args(["-m", "immediate", "stop"]);
                let _ = cmd.as_std_mut().output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

struct Streamer {
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Streamer {
    async fn stop(self) -> Result<()> {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .context("streamer did not stop")?
            .context("streamer task failed")
    }
}

/// Commits one row every ~50 ms, switching WAL segments now and then so the store holds
/// completed segments as well as the `.partial`.
struct Writer {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<()>>,
}

fn start_writer(cluster: &Cluster, rows: Arc<Mutex<Vec<Row>>>) -> Writer {
    let stop = CancellationToken::new();
    let cluster = cluster.clone();
    let token = stop.clone();
    let handle = tokio::spawn(async move {
        let mut conn = cluster.connect().await?;
        let mut n = 0u32;
        while !token.is_cancelled() {
            let (id, ts): (i32, DateTime<Utc>) =
                sqlx::query_as("INSERT INTO rows DEFAULT VALUES RETURNING id, ts")
                    .fetch_one(&mut conn)
                    .await?;
            rows.lock().expect("rows lock").push((id, ts, Utc::now()));
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
    Writer { stop, handle }
}

impl Writer {
    async fn stop(self) -> Result<()> {
        self.stop.cancel();
        self.handle.await.context("writer task panicked")?
    }
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

fn snapshot(rows: &Arc<Mutex<Vec<Row>>>) -> Vec<Row> {
    rows.lock().expect("rows lock").clone()
}

/// Waits until the writer has committed at least `n` rows, with a deadline.
async fn wait_for_rows(rows: &Arc<Mutex<Vec<Row>>>, n: usize) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    while rows.lock().expect("rows lock").len() < n {
        if Instant::now() >= until {
            bail!("the writer did not commit {n} rows within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn timeline_state(cluster: &Cluster, wal_root: &Path, tli: u32) -> Result<TimelineState> {
    scan(cluster.bins(), cluster.runner(), wal_root)
        .await?
        .into_iter()
        .find(|s| s.timeline == tli)
        .with_context(|| format!("no timeline {tli} in the store"))
}

/// Waits until the store holds a commit after `t` on timeline `tli`.
async fn wait_for_store(
    cluster: &Cluster,
    wal_root: &Path,
    tli: u32,
    t: DateTime<Utc>,
) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(state) = timeline_state(cluster, wal_root, tli).await
            && state.latest_commit.is_some_and(|c| c > t)
        {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("the store never got a commit after {t} on timeline {tli}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running instance with table `rows`, a streamer into `<root>/wal`, a writer, and a backup taken
/// while the writer runs; returns once `rows_after_backup` more rows committed after the backup
/// (the writer keeps going).
async fn live_with_backup(
    root: &TestRoot,
    rows_after_backup: usize,
) -> Result<(
    Cluster,
    PathBuf,
    Streamer,
    Writer,
    Arc<Mutex<Vec<Row>>>,
    BackupManifest,
    PathBuf,
)> {
    let cluster = root.cluster("live")?;
    cluster.init().await?;
    cluster.start().await?;
    let mut conn = cluster.connect().await?;
    sqlx::raw_sql(
        "CREATE TABLE rows(id serial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    let wal_root = root.path.join("wal");
    let streamer = root.streamer(&cluster, &wal_root);
    let rows = Arc::new(Mutex::new(Vec::new()));
    let writer = start_writer(&cluster, rows.clone());
    // Some rows before the backup, so the backup is taken under writes.
    wait_for_rows(&rows, 5).await?;

    let started = Instant::now();
    let backup_dir = root.path.join("backups").join("b1");
    let manifest = take_backup(&cluster, "b1", &backup_dir).await?;
    eprintln!("take_backup while writing: {:?}", started.elapsed());
    let written = snapshot(&rows).len();
    wait_for_rows(&rows, written + rows_after_backup).await?;
    Ok((
        cluster,
        wal_root,
        streamer,
        writer,
        rows,
        manifest,
        backup_dir.join("base.tar.zst"),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_in_place_to_times_on_three_timelines_following_the_history() -> Result<()> {
    let root = TestRoot::new()?;
    let (cluster, wal_root, streamer, writer, rows, manifest, archive) =
        live_with_backup(&root, 60).await?;
    let bins = cluster.bins().clone();

    // T0 early after the backup, T1 a second before the writer stops.
    let first = snapshot(&rows);
    let after_backup = first_row_after(&first, manifest.stop_time)?;
    let t0 = midpoint(&first, after_backup + 3);
    let t1 = midpoint(&first, first.len() - 20);
    ensure!(t0 < t1, "the writer produced too few rows");
    wait_for_store(&cluster, &wal_root, 1, t1).await?;
    writer.stop().await?;
    let phase1 = snapshot(&rows);

    // Recovery 1: to T1 on timeline 1.
    let phases = Mutex::new(Vec::<String>::new());
    let replays = Mutex::new(0usize);
    let started = Instant::now();
    let outcome = recover_in_place_to(
        &cluster,
        &archive,
        &manifest.checksum,
        &wal_root,
        RecoveryTarget::Time(t1),
        current_timeline(&cluster).await?,
        &|p| phases.lock().expect("phases lock").push(p.to_owned()),
        &|_, _| {},
        &|_| *replays.lock().expect("replays lock") += 1,
    )
    .await?;
    eprintln!(
        "recover_in_place_to T1: {:?} -> {outcome:?}",
        started.elapsed()
    );
    assert_eq!(
        *phases.lock().expect("phases lock"),
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
    assert_eq!(ids(&cluster).await?, ids_until(&phase1, t1));
    assert!(
        ids_until(&phase1, t1).len() < phase1.len(),
        "rows after T1 are gone"
    );
    assert_eq!(outcome.new_timeline, 2);
    assert_eq!(current_timeline(&cluster).await?, 2);
    assert!(outcome.last_replayed_commit.is_some_and(|c| c <= t1));
    assert!(wal_root.join("tl2/00000002.history").exists());
    assert!(!cluster.spec().data_dir.join("trove-recovery.conf").exists());

    // More rows on timeline 2; the streamer follows the server onto it by itself.
    let rows2 = Arc::new(Mutex::new(Vec::new()));
    let writer = start_writer(&cluster, rows2.clone());
    wait_for_rows(&rows2, 30).await?;
    let second = snapshot(&rows2);
    ensure!(second.len() > 10, "too few rows on timeline 2");
    let t2 = midpoint(&second, second.len() / 2);
    wait_for_store(&cluster, &wal_root, 2, t2).await?;
    writer.stop().await?;
    let state2 = timeline_state(&cluster, &wal_root, 2).await?;
    eprintln!("timeline 2 in the store: {state2:?}");
    assert_eq!(state2.parent, Some(1));
    assert!(state2.gaps.is_empty(), "{state2:?}");

    // Recovery 2: from the timeline-1 backup to T2 on timeline 2.
    let started = Instant::now();
    let outcome = recover_in_place_to(
        &cluster,
        &archive,
        &manifest.checksum,
        &wal_root,
        RecoveryTarget::Time(t2),
        2,
        &|_| {},
        &|_, _| {},
        &|_| {},
    )
    .await?;
    eprintln!(
        "recover_in_place_to T2: {:?} -> {outcome:?}",
        started.elapsed()
    );
    let mut expected = ids_until(&phase1, t1);
    expected.extend(ids_until(&snapshot(&rows2), t2));
    expected.sort_unstable();
    assert_eq!(ids(&cluster).await?, expected);
    assert_eq!(outcome.new_timeline, 3);
    assert!(wal_root.join("tl3/00000003.history").exists());

    // Recovery 3: back to T0, before the first recovery, along timeline 3's history.
    let started = Instant::now();
    let outcome = recover_in_place_to(
        &cluster,
        &archive,
        &manifest.checksum,
        &wal_root,
        RecoveryTarget::Time(t0),
        current_timeline(&cluster).await?,
        &|_| {},
        &|_, _| {},
        &|_| {},
    )
    .await?;
    eprintln!(
        "recover_in_place_to T0: {:?} -> {outcome:?}",
        started.elapsed()
    );
    assert_eq!(ids(&cluster).await?, ids_until(&phase1, t0));
    assert_eq!(outcome.new_timeline, 4);
    assert_eq!(current_timeline(&cluster).await?, 4);
    let history4 = std::fs::read_to_string(wal_root.join("tl4/00000004.history"))?;
    eprintln!("00000004.history:\n{history4}");

    // The instance keeps working, and its WAL keeps flowing into the store.
    let mut conn = cluster.connect().await?;
    let row: (i32, DateTime<Utc>) =
        sqlx::query_as("INSERT INTO rows DEFAULT VALUES RETURNING id, ts")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    wait_for_store(
        &cluster,
        &wal_root,
        4,
        row.1 - chrono::TimeDelta::milliseconds(1),
    )
    .await?;
    eprintln!(
        "store: {:#?}",
        scan(&bins, cluster.runner(), &wal_root).await?
    );

    streamer.stop().await?;
    cluster.stop().await?;
    Ok(())
}

/// The first completed segment on timeline 1 after the backup's end, and the rows' snapshot.
fn segment_after_backup(wal_root: &Path, manifest: &BackupManifest) -> Result<PathBuf> {
    let (hi, lo) = manifest.stop_lsn.split_once('/').context("lsn")?;
    let stop = (u64::from_str_radix(hi, 16)? << 32) | u64::from_str_radix(lo, 16)?;
    let stop_segno = stop / (16 * 1024 * 1024);
    let mut names: Vec<String> = std::fs::read_dir(wal_root.join("tl1"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 24)
        .collect();
    names.sort();
    let name = names
        .into_iter()
        .find(|n| u64::from_str_radix(&n[8..], 16).is_ok_and(|s| s > stop_segno))
        .context("no completed segment after the backup")?;
    Ok(wal_root.join("tl1").join(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_damaged_or_incomplete_store_and_restores_a_new_instance_to_a_time() -> Result<()>
{
    let root = TestRoot::new()?;
    let (cluster, wal_root, streamer, writer, rows, manifest, archive) =
        live_with_backup(&root, 60).await?;
    let snap = snapshot(&rows);
    let t = midpoint(&snap, snap.len() - 5);
    wait_for_store(&cluster, &wal_root, 1, t).await?;
    writer.stop().await?;
    let all_rows = snapshot(&rows);
    let all_ids = ids(&cluster).await?;
    assert_eq!(all_ids.len(), all_rows.len());
    checksum_segments(&wal_root).await?;
    let segment = segment_after_backup(&wal_root, &manifest)?;
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
    let phases = Mutex::new(Vec::<String>::new());
    let started = Instant::now();
    let err = recover_in_place_to(
        &cluster,
        &archive,
        &manifest.checksum,
        &wal_root,
        RecoveryTarget::Time(t),
        1,
        &|p| phases.lock().expect("phases lock").push(p.to_owned()),
        &|_, _| {},
        &|_| {},
    )
    .await
    .expect_err("a damaged segment must abort the recovery");
    let message = format!("{err:#}");
    eprintln!("bad checksum: {:?}: {message}", started.elapsed());
    assert!(message.contains("during phase replaying"), "{message}");
    assert!(!message.contains("rollback also failed"), "{message}");
    assert!(cluster.is_healthy().await);
    assert_eq!(
        ids(&cluster).await?,
        all_ids,
        "the live instance keeps its data"
    );
    assert!(!root.path.join("live/data.staging").exists());
    std::fs::write(&sidecar, good)?;

    // A missing segment is found before anything starts.
    let aside = root.path.join("aside");
    std::fs::rename(&segment, &aside)?;
    let state = timeline_state(&cluster, &wal_root, 1).await?;
    assert_eq!(state.gaps.len(), 1, "{state:?}");
    let err = recover_in_place_to(
        &cluster,
        &archive,
        &manifest.checksum,
        &wal_root,
        RecoveryTarget::Time(t),
        1,
        &|_| {},
        &|_, _| {},
        &|_| {},
    )
    .await
    .expect_err("a gap must fail the recovery");
    let message = format!("{err:#}");
    eprintln!("gap: {message}");
    assert!(message.contains("during phase verifying"), "{message}");
    assert!(message.contains("gap"), "{message}");
    assert_eq!(ids(&cluster).await?, all_ids);
    std::fs::rename(&aside, &segment)?;

    // A new instance from this instance's backup and WAL; the source is not touched.
    let copy = root.cluster("copy")?;
    let copy_wal = root.path.join("copy-wal");
    let started = Instant::now();
    let outcome = restore_new_to(
        &copy,
        &archive,
        &manifest.checksum,
        &wal_root,
        RecoveryTarget::Time(t),
        1,
        Some(&copy_wal),
        &|_| {},
    )
    .await?;
    eprintln!("restore_new_to: {:?} -> {outcome:?}", started.elapsed());
    assert_eq!(ids(&copy).await?, ids_until(&all_rows, t));
    assert_eq!(
        ids(&cluster).await?,
        all_ids,
        "the source keeps all its rows"
    );
    assert_eq!(current_timeline(&cluster).await?, 1);
    assert_eq!(outcome.new_timeline, 2);
    assert!(copy_wal.join("tl2/00000002.history").exists());
    assert!(
        !wal_root.join("tl2").exists(),
        "nothing written into the source's store"
    );
    assert!(!copy.spec().data_dir.join("trove-recovery.conf").exists());

    streamer.stop().await?;
    copy.stop().await?;
    cluster.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_holds_the_last_commit_before_a_crash() -> Result<()> {
    let root = TestRoot::new()?;
    let cluster = root.cluster("live")?;
    cluster.init().await?;
    cluster.start().await?;
    let mut conn = cluster.connect().await?;
    sqlx::raw_sql(
        "CREATE TABLE rows(id serial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    .execute(&mut conn)
    .await?;
    let wal_root = root.path.join("wal");
    let streamer = root.streamer(&cluster, &wal_root);
    wait_for_store(&cluster, &wal_root, 1, DateTime::<Utc>::MIN_UTC).await?;

    let mut last: Option<(i32, DateTime<Utc>)> = None;
    for _ in 0..20 {
        last = Some(
            sqlx::query_as("INSERT INTO rows DEFAULT VALUES RETURNING id, ts")
                .fetch_one(&mut conn)
                .await?,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last = sqlx::query_as::<_, (i32, DateTime<Utc>)>(
        "INSERT INTO rows DEFAULT VALUES RETURNING id, ts",
    )
    .fetch_one(&mut conn)
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
    let until = Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let state = timeline_state(&cluster, &wal_root, 1).await?;
        let stored = state.latest_commit.context("no commit in the store")?;
        if stored >= last.1 || Instant::now() >= until {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    streamer.stop().await?;
    let gap_ms = (last.1 - stored).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
    eprintln!(
        "RPO: last committed row ts {}, latest commit in store {stored}, row ts minus store commit = {gap_ms} ms",
        last.1
    );
    assert!(
        last.1 <= stored,
        "the last commit before the crash is in the store"
    );
    Ok(())
}
