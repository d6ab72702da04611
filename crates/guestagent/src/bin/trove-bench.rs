//! trove-bench: on-demand benchmark of the PostgreSQL driver's RPO under pgbench load and of its point-in-time recovery wall time against PostgreSQL alone (the floor).
//!
//! One managed cluster streams its WAL into a temporary store while pgbench runs; the store's
//! exposure (`now − last commit in the store`, as `scan()` computes it) is sampled every 200 ms.
//! Then the instance is recovered in place to a time near the end of the load with
//! `recover_in_place_to`, and, alternating with it, PostgreSQL alone replays the same backup and WAL
//! to the same time in a fresh directory. Prints a table and one JSON line. Run as root (the driver
//! switches to the `postgres` user itself) or as the `postgres` user; see `scripts/bench.sh`.

#[path = "trove_bench/env.rs"]
mod env;
#[path = "trove_bench/recovery.rs"]
mod recovery;
#[path = "trove_bench/rpo.rs"]
mod rpo;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;
use trove_guestagent::postgres::{
    Cluster, ClusterSpec, allocate_port, current_timeline, spawn_wal_streamer, take_backup,
    timeline_dir,
};

use env::{BenchRoot, parse_tps, pgbench, pick_target, wait_for_store};
use recovery::Timed;
use rpo::Dist;

const USAGE: &str = "usage: trove-bench [--scale N (10)] [--load-secs N (30)] [--runs N (3)] \
                     [--clients N (4)] [--keep] [--workdir DIR]";

struct Args {
    scale: u32,
    load_secs: u32,
    runs: usize,
    clients: u32,
    keep: bool,
    workdir: PathBuf,
}

fn parse_args() -> Result<Option<Args>> {
    let mut a = Args {
        scale: 10,
        load_secs: 30,
        runs: 3,
        clients: 4,
        keep: false,
        workdir: PathBuf::from(format!("/tmp/trove-bench-{}", uuid::Uuid::new_v4())),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--scale" => a.scale = value()?.parse().context("--scale")?,
            "--load-secs" => a.load_secs = value()?.parse().context("--load-secs")?,
            "--runs" => a.runs = value()?.parse().context("--runs")?,
            "--clients" => a.clients = value()?.parse().context("--clients")?,
            "--workdir" => a.workdir = PathBuf::from(value()?),
            "--keep" => a.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.scale == 0 || a.load_secs < 5 || a.runs == 0 || a.clients == 0 {
        bail!("need --scale ≥ 1, --load-secs ≥ 5, --runs ≥ 1, --clients ≥ 1");
    }
    Ok(Some(a))
}

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("warn");
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let root = BenchRoot::create(args.workdir.clone(), args.keep)?;
    eprintln!("trove-bench: working in {}", root.path.display());
    let result = tokio::select! {
        r = bench(&root, &args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    drop(root);
    result
}

async fn bench(root: &BenchRoot, args: &Args) -> Result<()> {
    let mut spec = ClusterSpec::under(&root.path.join("live"), allocate_port()?);
    spec.listen_addresses = "127.0.0.1".to_owned();
    let cluster = Cluster::new(spec, root.bins.clone(), root.runner.clone());
    root.track(&cluster.spec().data_dir);
    cluster.init().await?;
    cluster.start().await?;
    let version = query_text(&cluster, "SELECT current_setting('server_version')").await?;

    let wal_root = root.path.join("wal");
    let _streamer = spawn_wal_streamer(cluster.clone(), wal_root.clone(), root.cancel.clone());

    let t = Instant::now();
    eprintln!("pgbench -i -s {} ...", args.scale);
    pgbench(
        &cluster,
        &[
            "-i".into(),
            "-q".into(),
            "-s".into(),
            args.scale.to_string(),
        ],
    )
    .await?;
    let init_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let backup_dir = root.path.join("backups").join("b1");
    let manifest = take_backup(&cluster, "bench", &backup_dir).await?;
    let archive = backup_dir.join(trove_guestagent::postgres::ARCHIVE_FILE);
    let backup_s = t.elapsed().as_secs_f64();
    let db_bytes: i64 = query_scalar_i64(&cluster, "SELECT pg_database_size('postgres')").await?;

    // Load, with both samplers running.
    let lsn0 = query_text(&cluster, "SELECT pg_current_wal_lsn()::text").await?;
    let stop = CancellationToken::new();
    let sampler = {
        let (c, b, r, w, s) = (
            cluster.clone(),
            root.bins.clone(),
            root.runner.clone(),
            wal_root.clone(),
            stop.clone(),
        );
        tokio::spawn(async move { rpo::sample(&c, &b, &r, w, s).await })
    };
    eprintln!(
        "pgbench -c {} -j 2 -T {} with RPO sampling ...",
        args.clients, args.load_secs
    );
    let load_started = Instant::now();
    let report = pgbench(
        &cluster,
        &[
            "-c".into(),
            args.clients.to_string(),
            "-j".into(),
            "2".into(),
            "-T".into(),
            args.load_secs.to_string(),
        ],
    )
    .await;
    let load_s = load_started.elapsed().as_secs_f64();
    stop.cancel();
    let samples = sampler.await.context("sampler panicked")??;
    let report = report?;
    let tps = parse_tps(&report);
    let lsn1 = query_text(&cluster, "SELECT pg_current_wal_lsn()::text").await?;
    let wal_bytes = lsn(&lsn1)?.saturating_sub(lsn(&lsn0)?);
    let wal_rate = wal_bytes as f64 / load_s;

    // Complete the segment holding the end of the load, so the target can be read off the store.
    let switched = query_text(&cluster, "SELECT pg_walfile_name(pg_switch_wal())").await?;
    let done = timeline_dir(&wal_root, 1).join(&switched);
    let until = Instant::now() + Duration::from_secs(60);
    while !done.exists() {
        if Instant::now() > until {
            bail!("{} never arrived in the store", done.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (target, target_segment) = pick_target(root, &wal_root).await?;
    wait_for_store(root, &wal_root, 1, target).await?;
    eprintln!("recovery target {target} (from segment {target_segment})");

    let mut ours_runs: Vec<Timed> = Vec::new();
    let mut floor_runs: Vec<Timed> = Vec::new();
    let mut orders = Vec::new();
    for run in 0..args.runs {
        let ours_first = run % 2 == 0;
        orders.push(if ours_first {
            "ours,floor"
        } else {
            "floor,ours"
        });
        for step in 0..2 {
            if (step == 0) == ours_first {
                prepare_next_ours(root, &cluster, &wal_root, target).await?;
                eprintln!("run {}: ours ...", run + 1);
                let (timed, outcome) =
                    recovery::ours(&cluster, &manifest, &archive, &wal_root, target).await?;
                eprintln!(
                    "run {}: ours {:.2} s -> timeline {}, stop {}",
                    run + 1,
                    timed.total_s,
                    outcome.new_timeline,
                    outcome.stop_lsn
                );
                ours_runs.push(timed);
            } else {
                eprintln!("run {}: floor ...", run + 1);
                let timed = recovery::floor(root, &archive, &wal_root, target, run).await?;
                eprintln!(
                    "run {}: floor {:.2} s, stop {}",
                    run + 1,
                    timed.total_s,
                    timed.stop_lsn
                );
                floor_runs.push(timed);
            }
        }
    }

    let replay_bytes = ours_runs
        .first()
        .map(|r| lsn(&r.stop_lsn))
        .transpose()?
        .unwrap_or(0)
        .saturating_sub(lsn(&manifest.start_lsn)?);
    let summary = Summary {
        args,
        version: &version,
        db_bytes,
        init_s,
        backup_s,
        backup_bytes: manifest.size_bytes,
        tps,
        load_s,
        wal_bytes,
        wal_rate,
        samples: &samples,
        target: target.to_rfc3339(),
        replay_bytes,
        ours: &ours_runs,
        floor: &floor_runs,
        orders: &orders,
    };
    summary.print();
    Ok(())
}

/// Each in-place recovery promotes to a new timeline that holds no commit after the target; the
/// next recovery along it needs one to stop at, as a real instance that kept working would have.
/// One tiny transaction is written and awaited in the store (outside the timing).
async fn prepare_next_ours(
    root: &BenchRoot,
    cluster: &Cluster,
    wal_root: &std::path::Path,
    target: chrono::DateTime<Utc>,
) -> Result<()> {
    let tli = current_timeline(cluster).await?;
    if tli == 1 {
        return Ok(());
    }
    let mut conn = cluster.connect().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS trove_bench_marker(t timestamptz); \
         INSERT INTO trove_bench_marker VALUES (clock_timestamp());",
    )
    .execute(&mut conn)
    .await
    .context("writing the marker transaction")?;
    let _ = conn.close().await;
    wait_for_store(
        root,
        wal_root,
        tli,
        target.max(Utc::now() - chrono::TimeDelta::seconds(1)),
    )
    .await
}

async fn query_text(cluster: &Cluster, sql: &str) -> Result<String> {
    let mut conn = cluster.connect().await?;
    let v: String = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("running {sql}"))?;
    let _ = conn.close().await;
    Ok(v)
}

async fn query_scalar_i64(cluster: &Cluster, sql: &str) -> Result<i64> {
    let mut conn = cluster.connect().await?;
    let v: i64 = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("running {sql}"))?;
    let _ = conn.close().await;
    Ok(v)
}

fn lsn(text: &str) -> Result<u64> {
    let (hi, lo) = text
        .trim()
        .split_once('/')
        .with_context(|| format!("bad lsn {text:?}"))?;
    Ok((u64::from_str_radix(hi, 16)? << 32) | u64::from_str_radix(lo, 16)?)
}

struct Summary<'a> {
    args: &'a Args,
    version: &'a str,
    db_bytes: i64,
    init_s: f64,
    backup_s: f64,
    backup_bytes: u64,
    tps: Option<f64>,
    load_s: f64,
    wal_bytes: u64,
    wal_rate: f64,
    samples: &'a rpo::Samples,
    target: String,
    replay_bytes: u64,
    ours: &'a [Timed],
    floor: &'a [Timed],
    orders: &'a [&'static str],
}

const MIB: f64 = 1024.0 * 1024.0;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median of each named part across runs, in the order of the first run.
fn median_parts(runs: &[Timed], detail: bool) -> Vec<(String, f64)> {
    let pick = |r: &Timed| {
        if detail {
            r.detail.clone()
        } else {
            r.parts.clone()
        }
    };
    let Some(first) = runs.iter().map(pick).find(|p| !p.is_empty()) else {
        return Vec::new();
    };
    first
        .iter()
        .map(|(name, _)| {
            let values = runs
                .iter()
                .filter_map(|r| pick(r).iter().find(|(n, _)| n == name).map(|(_, d)| *d))
                .collect();
            (name.clone(), median(values))
        })
        .collect()
}

impl Summary<'_> {
    fn print(&self) {
        let s = self.samples;
        let exposure = Dist::of(s.scans.iter().map(|x| x.exposure_ms));
        let exposure_start = Dist::of(s.scans.iter().map(|x| x.exposure_at_start_ms));
        let scan_ms = Dist::of(s.scans.iter().map(|x| x.scan_ms));
        let flush_lag = Dist::of(s.repl.iter().filter_map(|x| x.flush_lag_ms));
        let lag_bytes = Dist::of(s.repl.iter().map(|x| x.lag_bytes));
        let lag_ms = Dist::of(
            s.repl
                .iter()
                .map(|x| x.lag_bytes / self.wal_rate.max(1.0) * 1000.0),
        );
        let ours_med = median(self.ours.iter().map(|r| r.total_s).collect());
        let floor_med = median(self.floor.iter().map(|r| r.total_s).collect());
        let ratio = ours_med / floor_med;
        let pair_ratio = median(
            self.ours
                .iter()
                .zip(self.floor)
                .map(|(o, f)| o.total_s / f.total_s)
                .collect(),
        );
        let a = self.args;

        println!();
        println!(
            "trove-bench  PostgreSQL {}  scale {} ({:.0} MiB)  load {} s  clients {}  runs {}  cpus {}",
            self.version,
            a.scale,
            self.db_bytes as f64 / MIB,
            a.load_secs,
            a.clients,
            a.runs,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        );
        println!(
            "pgbench -i {:.1} s; base backup {:.1} s, {:.1} MiB compressed; load {:.1} s at {} tps, \
             {:.0} MiB WAL ({:.1} MiB/s)",
            self.init_s,
            self.backup_s,
            self.backup_bytes as f64 / MIB,
            self.load_s,
            self.tps.map_or("?".to_owned(), |t| format!("{t:.0}")),
            self.wal_bytes as f64 / MIB,
            self.wal_rate / MIB
        );
        println!();
        println!(
            "RPO under load (every {} ms)                      {:>6} {:>8} {:>8} {:>8} {:>8}",
            rpo::PERIOD.as_millis(),
            "n",
            "p50",
            "p95",
            "p99",
            "max"
        );
        let row = |label: &str, d: Option<Dist>, unit: &str| match d {
            Some(d) => println!(
                "  {label:<48} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {unit}",
                d.n, d.p50, d.p95, d.p99, d.max
            ),
            None => println!("  {label:<48} {:>6}", 0),
        };
        row("exposure: scan end − last commit in store", exposure, "ms");
        row(
            "exposure: scan start − last commit in store",
            exposure_start,
            "ms",
        );
        row("scan() latency (included in the first row)", scan_ms, "ms");
        row("pg_stat_replication flush_lag (non-NULL)", flush_lag, "ms");
        row(
            "current_lsn − flush_lsn",
            lag_bytes.map(|d| Dist {
                p50: d.p50 / 1024.0,
                p95: d.p95 / 1024.0,
                p99: d.p99 / 1024.0,
                max: d.max / 1024.0,
                ..d
            }),
            "KiB",
        );
        row("  same, at the mean WAL rate", lag_ms, "ms");
        if let Some(worst) = s
            .scans
            .iter()
            .max_by(|a, b| a.exposure_ms.total_cmp(&b.exposure_ms))
        {
            let after_first_s = Dist::of(
                s.scans
                    .iter()
                    .filter(|x| x.at_s >= 1.0)
                    .map(|x| x.exposure_ms),
            );
            println!(
                "  (worst exposure at {:.1} s into the load; without the first second, max {:.1} ms: \
                 before pgbench's first commit the store's last commit is from before the load)",
                worst.at_s,
                after_first_s.map_or(f64::NAN, |d| d.max)
            );
        }
        if s.scan_misses > 0 {
            println!(
                "  ({} scan samples saw no commit on timeline 1 yet)",
                s.scan_misses
            );
        }
        if let Some(err) = &s.first_scan_error {
            println!(
                "  ({} of {} scan() calls FAILED and are not in the rows above; first: {err})",
                s.scan_errors,
                s.scan_errors + s.scans.len() + s.scan_misses
            );
        }
        println!();
        println!(
            "Recovery to {} ({:.0} MiB of WAL from the backup's start to the stop point)",
            self.target,
            self.replay_bytes as f64 / MIB
        );
        println!("  run  order        ours s   floor s   ratio   stop lsn (ours / floor)");
        for (i, order) in self.orders.iter().enumerate() {
            let (o, f) = (self.ours.get(i), self.floor.get(i));
            let (os, fs) = (
                o.map_or(f64::NAN, |r| r.total_s),
                f.map_or(f64::NAN, |r| r.total_s),
            );
            println!(
                "  {:>3}  {:<11} {:>7.2} {:>9.2} {:>7.2}   {} / {}",
                i + 1,
                order,
                os,
                fs,
                os / fs,
                o.map_or("", |r| r.stop_lsn.as_str()),
                f.map_or("", |r| r.stop_lsn.as_str())
            );
        }
        println!(
            "  median           {ours_med:>7.2} {floor_med:>9.2} {ratio:>7.2}   (goal ≤ 1.30)"
        );
        println!("  median of the per-run ratios            {pair_ratio:>7.2}");
        let ours_parts = median_parts(self.ours, false);
        let ours_detail = median_parts(self.ours, true);
        let floor_parts = median_parts(self.floor, false);
        println!("  ours by phase (median s):  {}", fmt_parts(&ours_parts));
        println!("  floor by part (median s):  {}", fmt_parts(&floor_parts));
        if !ours_detail.is_empty() {
            println!("  ours in detail, from phase marks and server log times (median s):");
            for (name, d) in &ours_detail {
                println!("    {name:<36} {d:>6.2}");
            }
        }

        let json = serde_json::json!({
            "bench": "trove-pitr",
            "pg_version": self.version,
            "scale": a.scale,
            "load_secs": a.load_secs,
            "clients": a.clients,
            "runs": a.runs,
            "db_mib": self.db_bytes as f64 / MIB,
            "backup_s": self.backup_s,
            "backup_mib": self.backup_bytes as f64 / MIB,
            "tps": self.tps,
            "wal_mib": self.wal_bytes as f64 / MIB,
            "wal_mib_per_s": self.wal_rate / MIB,
            "rpo_ms": {
                "exposure_scan_end": exposure,
                "exposure_scan_start": exposure_start,
                "scan_latency": scan_ms,
                "flush_lag": flush_lag,
                "byte_lag_as_ms": lag_ms,
                "byte_lag_bytes": lag_bytes,
                "scan_misses": s.scan_misses,
                "scan_errors": s.scan_errors,
            },
            "recovery": {
                "target": self.target,
                "replay_mib": self.replay_bytes as f64 / MIB,
                "ours_s": self.ours.iter().map(|r| r.total_s).collect::<Vec<_>>(),
                "floor_s": self.floor.iter().map(|r| r.total_s).collect::<Vec<_>>(),
                "ours_median_s": ours_med,
                "floor_median_s": floor_med,
                "ratio": ratio,
                "ratio_median_of_runs": pair_ratio,
                "ours_phases_median_s": ours_parts,
                "ours_detail_median_s": ours_detail,
                "floor_parts_median_s": floor_parts,
            },
        });
        println!();
        println!("{json}");
    }
}

fn fmt_parts(parts: &[(String, f64)]) -> String {
    parts
        .iter()
        .map(|(n, d)| format!("{n} {d:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
