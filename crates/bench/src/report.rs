//! The results: a table for people, then one JSON line for scripts.

use crate::args::Args;
use crate::local::Mirrored;
use crate::recovery::{Compared, Timed};
use crate::rpo::{self, Samples};
use crate::stats::{Dist, median, median_parts};

const MIB: f64 = 1024.0 * 1024.0;

/// Everything one benchmark measured.
pub struct Summary<'a> {
    pub args: &'a Args,
    pub version: &'a str,
    /// The object store, as the store describes itself.
    pub store: String,
    /// Size of every database of the cluster (what the backup copies).
    pub data_bytes: u64,
    pub init_s: f64,
    pub backup_s: f64,
    pub backup_bytes: u64,
    pub tps: Option<f64>,
    pub load_s: f64,
    pub wal_bytes: u64,
    /// WAL bytes a second during the load.
    pub wal_rate: f64,
    /// Bytes of WAL objects the shipper uploaded for the load's WAL.
    pub uploaded_bytes: u64,
    pub samples: &'a Samples,
    pub target: String,
    pub replay_bytes: u64,
    /// The first copy of the store into the local one.
    pub mirrored: Mirrored,
    pub runs: &'a Compared,
}

/// Exposure in the store measured by WAL positions.
struct LsnExposure {
    /// From the first sample that saw the flush LSN past what was shipped.
    seen: Option<Dist>,
    /// From the sample before it: the flush LSN went past somewhere in between.
    upper: Option<Dist>,
    /// Upper bound again, counting only whole pages of the segment in progress as shipped.
    upper_whole: Option<Dist>,
    misses: usize,
}

/// Medians of one way of recovering.
struct Way {
    total: f64,
    parts: Vec<(String, f64)>,
    /// Archive bytes a second during the `fetching` phase.
    fetch_archive_mibs: f64,
    /// The same in bytes of data (what the archive unpacks to).
    fetch_data_mibs: f64,
}

/// What the table and the JSON line both show, computed once.
struct Figures {
    lsn: LsnExposure,
    exposure: Option<Dist>,
    exposure_start: Option<Dist>,
    scan_ms: Option<Dist>,
    flush_lag: Option<Dist>,
    lag_bytes: Option<Dist>,
    lag_ms: Option<Dist>,
    backup_archive_mibs: f64,
    backup_data_mibs: f64,
    upload_per_wal_byte: f64,
    store: Way,
    local: Way,
    floor: Way,
    store_vs_local: f64,
    store_vs_local_runs: f64,
    store_vs_floor: f64,
    store_vs_floor_runs: f64,
    local_vs_floor: f64,
    store_detail: Vec<(String, f64)>,
}

impl Figures {
    fn of(summary: &Summary<'_>) -> Figures {
        let (s, runs) = (summary.samples, summary.runs);
        let (seen, upper, misses) = rpo::exposures(&s.lsns, |x| x.shipped);
        let (_, upper_whole, _) = rpo::exposures(&s.lsns, |x| x.shipped_whole);
        let way = |timed: &[Timed]| Way {
            total: median(timed.iter().map(|r| r.total_s).collect()),
            parts: median_parts(timed, false),
            fetch_archive_mibs: median(
                timed
                    .iter()
                    .filter_map(|r| r.part("fetching"))
                    .map(|f| summary.backup_bytes as f64 / MIB / f)
                    .collect(),
            ),
            fetch_data_mibs: median(
                timed
                    .iter()
                    .filter_map(|r| r.part("fetching"))
                    .map(|f| summary.data_bytes as f64 / MIB / f)
                    .collect(),
            ),
        };
        let (store, local, floor) = (way(&runs.store), way(&runs.local), way(&runs.floor));
        let per_run = |a: &[Timed], b: &[Timed]| {
            median(
                a.iter()
                    .zip(b)
                    .map(|(x, y)| x.total_s / y.total_s)
                    .collect(),
            )
        };
        Figures {
            lsn: LsnExposure {
                seen: Dist::of(seen),
                upper: Dist::of(upper),
                upper_whole: Dist::of(upper_whole),
                misses,
            },
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
            backup_archive_mibs: summary.backup_bytes as f64 / MIB / summary.backup_s,
            backup_data_mibs: summary.data_bytes as f64 / MIB / summary.backup_s,
            upload_per_wal_byte: summary.uploaded_bytes as f64 / summary.wal_bytes.max(1) as f64,
            store_vs_local: store.total / local.total,
            store_vs_local_runs: per_run(&runs.store, &runs.local),
            store_vs_floor: store.total / floor.total,
            store_vs_floor_runs: per_run(&runs.store, &runs.floor),
            local_vs_floor: local.total / floor.total,
            store_detail: median_parts(&runs.store, true),
            store,
            local,
            floor,
        }
    }
}

impl Summary<'_> {
    pub fn print(&self) {
        let f = Figures::of(self);
        self.print_setup(&f);
        self.print_rpo(&f);
        self.print_recovery(&f);
        println!();
        println!("{}", self.json(&f));
    }

    fn print_setup(&self, f: &Figures) {
        let a = self.args;
        println!();
        println!(
            "trove-bench  PostgreSQL {}  scale {} ({:.0} MiB of data)  load {} s  clients {}  runs {}  cpus {}",
            self.version,
            a.scale,
            self.data_bytes as f64 / MIB,
            a.load_secs,
            a.clients,
            a.runs,
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        );
        println!("object store: {}", self.store);
        println!(
            "pgbench -i {:.1} s; load {:.1} s at {} tps, {:.0} MiB WAL ({:.1} MiB/s)",
            self.init_s,
            self.load_s,
            self.tps.map_or("?".to_owned(), |t| format!("{t:.0}")),
            self.wal_bytes as f64 / MIB,
            self.wal_rate / MIB
        );
        println!(
            "backup to the store: {:.1} s, {:.1} MiB compressed: {:.1} MiB/s of archive, {:.1} MiB/s of data",
            self.backup_s,
            self.backup_bytes as f64 / MIB,
            f.backup_archive_mibs,
            f.backup_data_mibs
        );
        println!(
            "WAL upload during the load: {:.0} MiB for {:.0} MiB of WAL = {:.2} bytes per WAL byte (goal ≤ 1.5)",
            self.uploaded_bytes as f64 / MIB,
            self.wal_bytes as f64 / MIB,
            f.upload_per_wal_byte
        );
    }

    fn print_rpo(&self, f: &Figures) {
        let s = self.samples;
        let row = |label: &str, d: Option<Dist>, unit: &str| match d {
            Some(d) => println!(
                "  {label:<52} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {unit}",
                d.n, d.p50, d.p95, d.p99, d.max
            ),
            None => println!("  {label:<52} {:>6}", 0),
        };
        println!();
        println!(
            "RPO against the object store (every {} ms)          {:>6} {:>8} {:>8} {:>8} {:>8}",
            rpo::LSN_PERIOD.as_millis(),
            "n",
            "p50",
            "p95",
            "p99",
            "max"
        );
        row(
            "exposure: flush LSN first seen past shipped_lsn()",
            f.lsn.seen,
            "ms",
        );
        row(
            "  upper bound (from the sample before; goal p99 ≤ 1000)",
            f.lsn.upper,
            "ms",
        );
        row(
            "  upper bound, last page in progress not counted",
            f.lsn.upper_whole,
            "ms",
        );
        if f.lsn.misses > 0 {
            println!(
                "  ({} LSN samples found nothing shipped on timeline 1 yet)",
                f.lsn.misses
            );
        }
        println!(
            "What the agent reports (spool scan, every {} ms)",
            rpo::PERIOD.as_millis()
        );
        row(
            "exposure: scan end − last commit in the spool",
            f.exposure,
            "ms",
        );
        row(
            "exposure: scan start − last commit in the spool",
            f.exposure_start,
            "ms",
        );
        row(
            "scan() latency (included in the first row)",
            f.scan_ms,
            "ms",
        );
        println!("The receiver as the server sees it");
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
                "  (worst spool exposure at {:.1} s into the load; without the first second, max \
                 {:.1} ms: before pgbench's first commit the last commit is from before the load)",
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
        println!(
            "  local store: {} objects, {:.0} MiB copied in {:.1} s before the runs",
            self.mirrored.objects,
            self.mirrored.bytes as f64 / MIB,
            self.mirrored.secs
        );
        println!(
            "  run  order               store s  local s  floor s  store/local  store/floor   stop lsn (store / local / floor)"
        );
        let total = |v: &[Timed], i: usize| v.get(i).map_or(f64::NAN, |r| r.total_s);
        let lsn = |v: &'_ [Timed], i: usize| v.get(i).map_or(String::new(), |r| r.stop_lsn.clone());
        for (i, order) in runs.orders.iter().enumerate() {
            let (s, l, fl) = (
                total(&runs.store, i),
                total(&runs.local, i),
                total(&runs.floor, i),
            );
            println!(
                "  {:>3}  {:<18} {:>8.2} {:>8.2} {:>8.2} {:>12.2} {:>12.2}   {} / {} / {}",
                i + 1,
                order,
                s,
                l,
                fl,
                s / l,
                s / fl,
                lsn(&runs.store, i),
                lsn(&runs.local, i),
                lsn(&runs.floor, i)
            );
        }
        println!(
            "  median                  {:>8.2} {:>8.2} {:>8.2} {:>12.2} {:>12.2}   (goals: store/local ≤ 1.20, store/floor ≤ 1.30)",
            f.store.total, f.local.total, f.floor.total, f.store_vs_local, f.store_vs_floor
        );
        println!(
            "  median of the per-run ratios                      {:>12.2} {:>12.2}   (local/floor {:.2})",
            f.store_vs_local_runs, f.store_vs_floor_runs, f.local_vs_floor
        );
        println!(
            "  restore throughput (fetching phase, median): from the store {:.1} MiB/s of archive, \
             {:.1} MiB/s of data; from the local store {:.1} / {:.1}",
            f.store.fetch_archive_mibs,
            f.store.fetch_data_mibs,
            f.local.fetch_archive_mibs,
            f.local.fetch_data_mibs
        );
        println!(
            "  store by phase (median s):  {}",
            fmt_parts(&f.store.parts)
        );
        println!(
            "  local by phase (median s):  {}",
            fmt_parts(&f.local.parts)
        );
        println!(
            "  floor by part (median s):   {}",
            fmt_parts(&f.floor.parts)
        );
        if !f.store_detail.is_empty() {
            println!("  store in detail, from phase marks and server log times (median s):");
            for (name, d) in &f.store_detail {
                println!("    {name:<36} {d:>6.2}");
            }
        }
    }

    fn json(&self, f: &Figures) -> serde_json::Value {
        let (a, s, runs) = (self.args, self.samples, self.runs);
        let totals = |v: &[Timed]| v.iter().map(|r| r.total_s).collect::<Vec<_>>();
        let way = |w: &Way, v: &[Timed]| {
            serde_json::json!({
                "runs_s": totals(v),
                "median_s": w.total,
                "phases_median_s": w.parts,
                "fetch_archive_mib_per_s": w.fetch_archive_mibs,
                "fetch_data_mib_per_s": w.fetch_data_mibs,
            })
        };
        serde_json::json!({
            "bench": "trove-pitr",
            "pg_version": self.version,
            "store": self.store,
            "scale": a.scale,
            "load_secs": a.load_secs,
            "clients": a.clients,
            "runs": a.runs,
            "data_mib": self.data_bytes as f64 / MIB,
            "tps": self.tps,
            "wal_mib": self.wal_bytes as f64 / MIB,
            "wal_mib_per_s": self.wal_rate / MIB,
            "backup": {
                "seconds": self.backup_s,
                "archive_mib": self.backup_bytes as f64 / MIB,
                "archive_mib_per_s": f.backup_archive_mibs,
                "data_mib_per_s": f.backup_data_mibs,
            },
            "upload": {
                "uploaded_mib": self.uploaded_bytes as f64 / MIB,
                "bytes_per_wal_byte": f.upload_per_wal_byte,
            },
            "rpo_ms": {
                "store_exposure_seen": f.lsn.seen,
                "store_exposure_upper": f.lsn.upper,
                "store_exposure_upper_whole_pages": f.lsn.upper_whole,
                "lsn_samples_without_shipped": f.lsn.misses,
                "spool_exposure_scan_end": f.exposure,
                "spool_exposure_scan_start": f.exposure_start,
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
                "orders": runs.orders,
                "store": way(&f.store, &runs.store),
                "local": way(&f.local, &runs.local),
                "floor": way(&f.floor, &runs.floor),
                "store_vs_local": f.store_vs_local,
                "store_vs_local_median_of_runs": f.store_vs_local_runs,
                "store_vs_floor": f.store_vs_floor,
                "store_vs_floor_median_of_runs": f.store_vs_floor_runs,
                "local_vs_floor": f.local_vs_floor,
                "store_detail_median_s": f.store_detail,
                "mirrors": runs.mirrors,
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
