//! The results: a table for people, then one JSON line for scripts.

use crate::args::Args;
use crate::recovery::Compared;
use crate::rpo::{self, Samples};
use crate::stats::{Dist, median, median_parts};

const MIB: f64 = 1024.0 * 1024.0;

/// Everything one benchmark measured.
pub struct Summary<'a> {
    pub args: &'a Args,
    pub version: &'a str,
    pub db_bytes: i64,
    pub init_s: f64,
    pub backup_s: f64,
    pub backup_bytes: u64,
    pub tps: Option<f64>,
    pub load_s: f64,
    pub wal_bytes: u64,
    /// WAL bytes a second during the load.
    pub wal_rate: f64,
    pub samples: &'a Samples,
    pub target: String,
    pub replay_bytes: u64,
    pub runs: &'a Compared,
}

/// What the table and the JSON line both show, computed once.
struct Figures {
    exposure: Option<Dist>,
    exposure_start: Option<Dist>,
    scan_ms: Option<Dist>,
    flush_lag: Option<Dist>,
    lag_bytes: Option<Dist>,
    lag_ms: Option<Dist>,
    ours_med: f64,
    floor_med: f64,
    ratio: f64,
    pair_ratio: f64,
    ours_parts: Vec<(String, f64)>,
    ours_detail: Vec<(String, f64)>,
    floor_parts: Vec<(String, f64)>,
}

impl Figures {
    fn of(summary: &Summary<'_>) -> Figures {
        let (s, runs) = (summary.samples, summary.runs);
        let ours_med = median(runs.ours.iter().map(|r| r.total_s).collect());
        let floor_med = median(runs.floor.iter().map(|r| r.total_s).collect());
        let per_run = runs.ours.iter().zip(&runs.floor);
        Figures {
            exposure: Dist::of(s.scans.iter().map(|x| x.exposure_ms)),
            exposure_start: Dist::of(s.scans.iter().map(|x| x.exposure_at_start_ms)),
            scan_ms: Dist::of(s.scans.iter().map(|x| x.scan_ms)),
            flush_lag: Dist::of(s.repl.iter().filter_map(|x| x.flush_lag_ms)),
            lag_bytes: Dist::of(s.repl.iter().map(|x| x.lag_bytes)),
            lag_ms: Dist::of(
                s.repl
                    .iter()
                    .map(|x| x.lag_bytes / summary.wal_rate.max(1.0) * 1000.0),
            ),
            ours_med,
            floor_med,
            ratio: ours_med / floor_med,
            pair_ratio: median(per_run.map(|(o, f)| o.total_s / f.total_s).collect()),
            ours_parts: median_parts(&runs.ours, false),
            ours_detail: median_parts(&runs.ours, true),
            floor_parts: median_parts(&runs.floor, false),
        }
    }
}

impl Summary<'_> {
    pub fn print(&self) {
        let f = Figures::of(self);
        self.print_setup();
        self.print_rpo(&f);
        self.print_recovery(&f);
        println!();
        println!("{}", self.json(&f));
    }

    fn print_setup(&self) {
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
    }

    fn print_rpo(&self, f: &Figures) {
        let s = self.samples;
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
        row(
            "exposure: scan end − last commit in store",
            f.exposure,
            "ms",
        );
        row(
            "exposure: scan start − last commit in store",
            f.exposure_start,
            "ms",
        );
        row(
            "scan() latency (included in the first row)",
            f.scan_ms,
            "ms",
        );
        row(
            "pg_stat_replication flush_lag (non-NULL)",
            f.flush_lag,
            "ms",
        );
        row(
            "current_lsn − flush_lsn",
            f.lag_bytes.map(|d| Dist {
                p50: d.p50 / 1024.0,
                p95: d.p95 / 1024.0,
                p99: d.p99 / 1024.0,
                max: d.max / 1024.0,
                ..d
            }),
            "KiB",
        );
        row("  same, at the mean WAL rate", f.lag_ms, "ms");
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
    }

    fn print_recovery(&self, f: &Figures) {
        let runs = self.runs;
        println!();
        println!(
            "Recovery to {} ({:.0} MiB of WAL from the backup's start to the stop point)",
            self.target,
            self.replay_bytes as f64 / MIB
        );
        println!("  run  order        ours s   floor s   ratio   stop lsn (ours / floor)");
        for (i, order) in runs.orders.iter().enumerate() {
            let (o, fl) = (runs.ours.get(i), runs.floor.get(i));
            let (os, fs) = (
                o.map_or(f64::NAN, |r| r.total_s),
                fl.map_or(f64::NAN, |r| r.total_s),
            );
            println!(
                "  {:>3}  {:<11} {:>7.2} {:>9.2} {:>7.2}   {} / {}",
                i + 1,
                order,
                os,
                fs,
                os / fs,
                o.map_or("", |r| r.stop_lsn.as_str()),
                fl.map_or("", |r| r.stop_lsn.as_str())
            );
        }
        println!(
            "  median           {:>7.2} {:>9.2} {:>7.2}   (goal ≤ 1.30)",
            f.ours_med, f.floor_med, f.ratio
        );
        println!(
            "  median of the per-run ratios            {:>7.2}",
            f.pair_ratio
        );
        println!("  ours by phase (median s):  {}", fmt_parts(&f.ours_parts));
        println!("  floor by part (median s):  {}", fmt_parts(&f.floor_parts));
        if !f.ours_detail.is_empty() {
            println!("  ours in detail, from phase marks and server log times (median s):");
            for (name, d) in &f.ours_detail {
                println!("    {name:<36} {d:>6.2}");
            }
        }
    }

    fn json(&self, f: &Figures) -> serde_json::Value {
        let (a, s, runs) = (self.args, self.samples, self.runs);
        serde_json::json!({
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
                "exposure_scan_end": f.exposure,
                "exposure_scan_start": f.exposure_start,
                "scan_latency": f.scan_ms,
                "flush_lag": f.flush_lag,
                "byte_lag_as_ms": f.lag_ms,
                "byte_lag_bytes": f.lag_bytes,
                "scan_misses": s.scan_misses,
                "scan_errors": s.scan_errors,
            },
            "recovery": {
                "target": self.target,
                "replay_mib": self.replay_bytes as f64 / MIB,
                "ours_s": runs.ours.iter().map(|r| r.total_s).collect::<Vec<_>>(),
                "floor_s": runs.floor.iter().map(|r| r.total_s).collect::<Vec<_>>(),
                "ours_median_s": f.ours_med,
                "floor_median_s": f.floor_med,
                "ratio": f.ratio,
                "ratio_median_of_runs": f.pair_ratio,
                "ours_phases_median_s": f.ours_parts,
                "ours_detail_median_s": f.ours_detail,
                "floor_parts_median_s": f.floor_parts,
            },
        })
    }
}

fn fmt_parts(parts: &[(String, f64)]) -> String {
    parts
        .iter()
        .map(|(n, d)| format!("{n} {d:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
