//! Timed recoveries, alternating their order run by run: the product's `recover_in_place` on the
//! live instance from the object store, the same from a local store holding the same objects, and
//! the floor, PostgreSQL alone replaying the same backup and WAL (as local files) to the same
//! target in a fresh directory.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::{DateTime, TimeDelta, Utc};
use trove_common::recovery::{RecoveryOutcome, StopPoint};
use trove_common::store::BlobStore;
use trove_guestagent::postgres::{
    ArchiveSource, BackupManifest, Cluster, ClusterSpec, RecoveryRequest, Replay, Reporters,
    allocate_port, current_timeline, quote_literal, recover_in_place, run_checked,
};
use trove_guestagent::testkit::{
    PhaseLog, TestRoot, WalStream, execute, in_recovery, query_value, wait_for,
};

use crate::local::{FloorInputs, Mirrored, mirror};
use crate::server_log::log_detail;

/// How often the floor polls `pg_is_in_recovery()`; the product polls every 50 ms.
const FLOOR_POLL: Duration = Duration::from_millis(20);
/// How long the floor may replay before the run is abandoned.
const FLOOR_LIMIT: Duration = Duration::from_secs(1800);

/// A timed run: total wall time and named parts that add up to it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timed {
    pub total_s: f64,
    pub parts: Vec<(String, f64)>,
    /// Where replay stopped (`pg_last_wal_replay_lsn()`), to show every run replayed the same WAL.
    pub stop_lsn: String,
    /// Finer split of the product's phases, from its phase marks and the server logs' timestamps
    /// (millisecond resolution); empty where the logs do not show the expected lines.
    pub detail: Vec<(String, f64)>,
}

impl Timed {
    /// Seconds of the part called `name`.
    pub fn part(&self, name: &str) -> Option<f64> {
        self.parts.iter().find(|(n, _)| n == name).map(|(_, s)| *s)
    }
}

/// Where a recovery reads the backup and the WAL from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The product, from the object store.
    Store,
    /// The product, from a local store with the same objects.
    Local,
    /// PostgreSQL alone, from local files.
    Floor,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Store => "store",
            Kind::Local => "local",
            Kind::Floor => "floor",
        }
    }
}

/// Every way, in the order of the first run.
const KINDS: [Kind; 3] = [Kind::Store, Kind::Local, Kind::Floor];

/// What the recoveries read.
pub struct Sources<'a> {
    /// The object store the instance ships to and the backup is in.
    pub store: &'a BlobStore,
    /// A local store that [`mirror`] keeps equal to `store` before each of its runs.
    pub local: &'a BlobStore,
    pub archive: &'a str,
    pub manifest: &'a BackupManifest,
    pub wal: &'a WalStream,
    pub floor: &'a FloorInputs,
}

/// What the recoveries each way, `runs` times, measured.
pub struct Compared {
    pub store: Vec<Timed>,
    pub local: Vec<Timed>,
    pub floor: Vec<Timed>,
    /// Which went first in each run.
    pub orders: Vec<String>,
    /// What each refresh of the local store copied (outside the timing).
    pub mirrors: Vec<Mirrored>,
}

/// `runs` recoveries each way to `target`, rotating the order from run to run.
pub async fn compare(
    root: &TestRoot,
    cluster: &Cluster,
    sources: &Sources<'_>,
    target: DateTime<Utc>,
    runs: usize,
) -> Result<Compared> {
    let mut done = Compared {
        store: Vec::new(),
        local: Vec::new(),
        floor: Vec::new(),
        orders: Vec::new(),
        mirrors: Vec::new(),
    };
    for run in 0..runs {
        let mut order = KINDS;
        order.rotate_left(run % KINDS.len());
        done.orders.push(
            order
                .iter()
                .map(|k| k.label())
                .collect::<Vec<_>>()
                .join(","),
        );
        for kind in order {
            eprintln!("run {}: {} ...", run + 1, kind.label());
            let timed = match kind {
                Kind::Floor => floor(root, sources.floor, target, run).await?,
                Kind::Store | Kind::Local => {
                    prepare_next_ours(root, cluster, sources.wal, target).await?;
                    let store = if kind == Kind::Local {
                        let copied = mirror(sources.store, sources.local).await?;
                        done.mirrors.push(copied);
                        sources.local
                    } else {
                        sources.store
                    };
                    let (timed, outcome) = ours(cluster, sources, store, target).await?;
                    eprintln!("  -> timeline {:?}", outcome.new_timeline);
                    timed
                }
            };
            eprintln!(
                "run {}: {} {:.2} s, stop {}",
                run + 1,
                kind.label(),
                timed.total_s,
                timed.stop_lsn
            );
            match kind {
                Kind::Store => done.store.push(timed),
                Kind::Local => done.local.push(timed),
                Kind::Floor => done.floor.push(timed),
            }
        }
    }
    Ok(done)
}

/// Each in-place recovery promotes to a new timeline that holds no commit after the target; the
/// next recovery along it needs one to stop at, as a real instance that kept working would have.
/// One tiny transaction is written and awaited in the store's objects (outside the timing).
async fn prepare_next_ours(
    root: &TestRoot,
    cluster: &Cluster,
    wal: &WalStream,
    target: DateTime<Utc>,
) -> Result<()> {
    let tli = current_timeline(cluster).await?;
    if tli == 1 {
        return Ok(());
    }
    execute(
        cluster,
        "CREATE TABLE IF NOT EXISTS trove_bench_marker(t timestamptz); \
         INSERT INTO trove_bench_marker VALUES (clock_timestamp());",
    )
    .await
    .context("writing the marker transaction")?;
    let after = target.max(Utc::now() - TimeDelta::seconds(1));
    root.wait_for_stored(wal, tli, after).await
}

/// `recover_in_place` to `target` on the running `cluster`, along its current timeline, with the
/// backup and WAL read from `store`, timed as a whole and per reported phase.
async fn ours(
    cluster: &Cluster,
    sources: &Sources<'_>,
    store: &BlobStore,
    target: DateTime<Utc>,
) -> Result<(Timed, RecoveryOutcome)> {
    let tli = current_timeline(cluster).await?;
    let phases = PhaseLog::default();
    let started = Instant::now();
    let request = RecoveryRequest {
        archive: ArchiveSource {
            store,
            key: sources.archive,
            sha256: &sources.manifest.checksum,
        },
        replay: Some(Replay {
            wal: sources.wal.source(store),
            stop: StopPoint::Time(target),
            timeline: tli,
            history_dest: Some(&sources.wal.spool),
        }),
    };
    let reporters = Reporters {
        phase: &|p| phases.record(p),
        ..Reporters::SILENT
    };
    let outcome = recover_in_place(cluster, &request, reporters)
        .await
        .with_context(|| {
            format!(
                "recover_in_place along timeline {tli} from {}",
                store.describe()
            )
        })?;
    let ended = Instant::now();
    let marks = phases.marks();
    let mut parts = Vec::new();
    // Whatever runs before the first phase is reported (staging set-up), so the parts add up.
    let mut prev = ("(before fetching)".to_owned(), started);
    for (phase, at, _) in &marks {
        parts.push((prev.0, secs(*at, prev.1)));
        prev = (phase.to_string(), *at);
    }
    let (prev_name, prev) = prev;
    parts.push((prev_name, secs(ended, prev)));
    let wall_marks: Vec<(String, DateTime<Utc>)> = marks
        .into_iter()
        .map(|(p, _, w)| (p.to_string(), w))
        .collect();
    let timed = Timed {
        total_s: secs(ended, started),
        parts,
        stop_lsn: outcome.stop_lsn.clone().unwrap_or_default(),
        detail: log_detail(cluster, &wall_marks, Utc::now()),
    };
    Ok((timed, outcome))
}

/// PostgreSQL alone: `zstd -dc | tar -x` of the archive file as postgres into a new directory,
/// `recovery.signal`, `restore_command = cp` from the local copy of timeline 1,
/// `recovery_target_action = 'promote'`, `pg_ctl -w start`, then wait until
/// `pg_is_in_recovery()` is false. The server is stopped (immediate) and the directory removed
/// afterwards, outside the timing.
pub async fn floor(
    root: &TestRoot,
    inputs: &FloorInputs,
    target: DateTime<Utc>,
    run: usize,
) -> Result<Timed> {
    // Prepared before the clock starts: the directory the postgres user may write in, and the
    // settings text to append.
    let base = root.owned_dir(&format!("floor-{run}"))?;
    let data = base.join("data");
    let run_dir = base.join("run");
    let log = base.join("postgresql.log");
    let port = allocate_port()?;
    let tl1 = &inputs.wal_dir;
    let restore = format!(
        "cp {dir}/%f %p 2>/dev/null || cp {dir}/%f.partial %p 2>/dev/null",
        dir = shell_word(&tl1.to_string_lossy())
    );
    let settings = format!(
        "\n# trove-bench floor run\n\
         restore_command = {restore}\n\
         recovery_target_time = '{time}'\n\
         recovery_target_action = 'promote'\n\
         recovery_target_timeline = '1'\n\
         port = {port}\n\
         listen_addresses = ''\n\
         unix_socket_directories = {sock}\n",
        restore = quote_literal(&restore)?,
        time = target.format("%Y-%m-%d %H:%M:%S%.6f+00"),
        sock = quote_literal(&run_dir.to_string_lossy())?,
    );
    let settings_file = base.join("floor.conf");
    std::fs::write(&settings_file, settings)
        .with_context(|| format!("writing {}", settings_file.display()))?;
    let script = format!(
        "set -e; mkdir -m 0700 {run_dir}; mkdir -m 0700 {data}; \
         zstd -q -dc {archive} | tar -xf - -C {data}; chmod 0700 {data}; \
         cat {settings} >> {data}/postgresql.auto.conf; : > {data}/recovery.signal",
        run_dir = shell_word(&run_dir.to_string_lossy()),
        data = shell_word(&data.to_string_lossy()),
        archive = shell_word(&inputs.archive.to_string_lossy()),
        settings = shell_word(&settings_file.to_string_lossy()),
    );
    root.track(&data);
    let probe = Cluster::new(
        ClusterSpec {
            data_dir: data.clone(),
            socket_dir: run_dir.clone(),
            log_file: log.clone(),
            port,
            listen_addresses: String::new(),
            // Only used to connect over the socket; plain PostgreSQL reads its own rules.
            hba_file: data.join("pg_hba.conf"),
        },
        root.bins().clone(),
        root.runner().clone(),
    );

    let started = Instant::now();
    let mut cmd = root.runner().command("sh");
    cmd.arg("-c").arg(&script);
    run_checked(&mut cmd, "unpacking the base backup").await?;
    let unpacked = Instant::now();

    let mut cmd = root.runner().command(root.bins().path("pg_ctl"));
    cmd.arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "600", "start"]);
    run_checked(&mut cmd, "pg_ctl start").await?;
    let ready = Instant::now();

    let promoted = async || (in_recovery(&probe).await.ok() == Some(false)).then_some(());
    let what = format!("floor run {run} to leave recovery");
    wait_for(&what, FLOOR_LIMIT, FLOOR_POLL, promoted).await?;
    let promoted = Instant::now();

    let stop_lsn: Option<String> = query_value(&probe, "SELECT pg_last_wal_replay_lsn()::text")
        .await
        .context("reading the floor's replay position")?;
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    anyhow::ensure!(
        server_log.contains("recovery stopping before"),
        "floor run {run}: no recovery stop point in {}",
        log.display()
    );
    root.kill_server(&data);
    std::fs::remove_dir_all(&base).with_context(|| format!("removing {}", base.display()))?;

    Ok(Timed {
        total_s: secs(promoted, started),
        parts: vec![
            ("unpack+config".to_owned(), secs(unpacked, started)),
            ("pg_ctl start -w".to_owned(), secs(ready, unpacked)),
            ("until promoted".to_owned(), secs(promoted, ready)),
        ],
        stop_lsn: stop_lsn.unwrap_or_default(),
        detail: Vec::new(),
    })
}

fn secs(later: Instant, earlier: Instant) -> f64 {
    later.duration_since(earlier).as_secs_f64()
}

fn shell_word(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
