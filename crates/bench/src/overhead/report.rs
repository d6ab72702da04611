//! The table and the JSON line of `trove-bench overhead`.

use serde_json::json;

use super::Runs;
use super::args::OverheadArgs;
use super::setup::Prepared;
use crate::stats::{median, median_parts};

const MIB: f64 = 1024.0 * 1024.0;
/// The goal for the control plane's overhead at each end of a recovery.
const GOAL_MS: f64 = 100.0;

/// Per-run figures, in milliseconds.
struct Row {
    api: f64,
    accepted: f64,
    start: f64,
    span: f64,
    end: f64,
    guest: f64,
    driver: f64,
    floor: f64,
    /// The differences, per run; the median row takes the median of each.
    api_minus_driver: f64,
    driver_minus_floor: f64,
    api_minus_guest: f64,
}

fn rows(runs: &Runs) -> Vec<Row> {
    runs.api
        .iter()
        .zip(&runs.driver)
        .zip(&runs.floor)
        .map(|((a, d), f)| Row {
            api_minus_driver: (a.total_s - d.total_s) * 1e3,
            driver_minus_floor: (d.total_s - f.total_s) * 1e3,
            api_minus_guest: (a.total_s - a.guest_s) * 1e3,
            api: a.total_s * 1e3,
            accepted: a.accepted_s * 1e3,
            start: a.start_overhead_s * 1e3,
            span: a.guest_span_s * 1e3,
            end: a.end_overhead_s * 1e3,
            guest: a.guest_s * 1e3,
            driver: d.total_s * 1e3,
            floor: f.total_s * 1e3,
        })
        .collect()
}

pub fn print(args: &OverheadArgs, p: &Prepared, store: String, runs: &Runs) {
    let rows = rows(runs);
    let med = |f: fn(&Row) -> f64| median(rows.iter().map(f).collect());
    println!();
    println!(
        "trove-bench overhead  PostgreSQL {}  scale {} ({:.0} MiB of data)  load {} s ({} tps)  runs {}",
        p.version,
        args.scale,
        p.data_bytes as f64 / MIB,
        args.load_secs,
        p.tps.map_or("?".to_owned(), |t| format!("{t:.0}")),
        args.runs
    );
    println!("object store: {store}");
    println!(
        "backup {} ({:.0} MiB archive, from {}), target {} on timeline 1",
        p.backup,
        p.manifest.size_bytes as f64 / MIB,
        p.manifest.start_lsn,
        p.target.to_rfc3339()
    );
    println!();
    println!(
        "Point-in-time recovery in place, same backup, WAL and target, in ms (order per run: {})",
        runs.orders.join(" | ")
    );
    println!(
        "  {:<7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "run",
        "API e2e",
        "202",
        "start",
        "guest",
        "end",
        "guest's",
        "driver",
        "floor",
        "API−driver",
        "driver−flr",
        "API−guest's"
    );
    println!(
        "  {:<7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "", "", "", "overhead", "span", "overhead", "own", "alone", "(PG)", "", "", ""
    );
    let line = |label: &str, r: &Row| {
        println!(
            "  {:<7} {:>8.0} {:>8.1} {:>8.0} {:>9.0} {:>8.0} {:>9.0} {:>8.0} {:>8.0} {:>10.0} {:>10.0} {:>10.0}",
            label,
            r.api,
            r.accepted,
            r.start,
            r.span,
            r.end,
            r.guest,
            r.driver,
            r.floor,
            r.api_minus_driver,
            r.driver_minus_floor,
            r.api_minus_guest
        );
    };
    for (i, r) in rows.iter().enumerate() {
        line(&(i + 1).to_string(), r);
    }
    let m = Row {
        api: med(|r| r.api),
        accepted: med(|r| r.accepted),
        start: med(|r| r.start),
        span: med(|r| r.span),
        end: med(|r| r.end),
        guest: med(|r| r.guest),
        driver: med(|r| r.driver),
        floor: med(|r| r.floor),
        api_minus_driver: med(|r| r.api_minus_driver),
        driver_minus_floor: med(|r| r.driver_minus_floor),
        api_minus_guest: med(|r| r.api_minus_guest),
    };
    line("median", &m);
    println!();
    println!(
        "  start overhead: POST sent → the conductor recorded the guest's first phase; end overhead: \
         the conductor recorded the guest's last report → GET showed ACTIVE (polled every {} ms)",
        args.poll_ms
    );
    let phase_median = |name: &str| {
        median(
            runs.api
                .iter()
                .filter_map(|a| a.phases.iter().find(|(n, _)| n == name).map(|(_, s)| *s))
                .collect(),
        )
    };
    let recorded_ms = median(runs.api.iter().map(|a| a.recorded_s * 1e3).collect());
    println!(
        "  start overhead split (median ms): POST → recorded {recorded_ms:.1}, queued {:.0} (until the \
         taskmanager dispatched it), dispatched {:.0} (the message to the guest, its pause of WAL \
         shipping, its first report)",
        phase_median("queued") * 1e3,
        phase_median("dispatched") * 1e3,
    );
    println!(
        "  API−guest's own: the control plane's share of the same recovery (the API, the outbox, the \
         taskmanager, the broker both ways, the conductor, the last poll); API−driver and \
         driver−floor compare different recoveries and carry their run-to-run spread (driver \
         alone {:.0}–{:.0} ms, floor {:.0}–{:.0} ms)",
        min(rows.iter().map(|r| r.driver)),
        max(rows.iter().map(|r| r.driver)),
        min(rows.iter().map(|r| r.floor)),
        max(rows.iter().map(|r| r.floor)),
    );
    println!(
        "  goal < {GOAL_MS:.0} ms at each end: start {} (max {:.0} ms), end {} (max {:.0} ms)",
        verdict(rows.iter().map(|r| r.start)),
        max(rows.iter().map(|r| r.start)),
        verdict(rows.iter().map(|r| r.end)),
        max(rows.iter().map(|r| r.end)),
    );
    // A phase shorter than the guest's reporting may be missing from a run's history; the run
    // with the most phases names them.
    let api_phases: Vec<String> = runs
        .api
        .iter()
        .max_by_key(|a| a.phases.len())
        .map(|a| a.phases.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let phase_list: Vec<String> = api_phases
        .iter()
        .map(|n| format!("{n} {:.0}", phase_median(n) * 1e3))
        .collect();
    println!(
        "  API phases as recorded (median ms): {}",
        phase_list.join(", ")
    );
    let driver_parts = median_parts(&runs.driver, false);
    let parts: Vec<String> = driver_parts
        .iter()
        .map(|(n, s)| format!("{n} {:.0}", s * 1e3))
        .collect();
    println!("  driver alone phases (median ms): {}", parts.join(", "));
    let floor_parts = median_parts(&runs.floor, false);
    let parts: Vec<String> = floor_parts
        .iter()
        .map(|(n, s)| format!("{n} {:.0}", s * 1e3))
        .collect();
    println!("  PostgreSQL alone (median ms): {}", parts.join(", "));
    let stops = |v: Vec<&str>| v.join(" ");
    println!(
        "  stop LSNs: API {}; driver {}; floor {}",
        stops(runs.api.iter().map(|a| a.stop_lsn.as_str()).collect()),
        stops(runs.driver.iter().map(|d| d.stop_lsn.as_str()).collect()),
        stops(runs.floor.iter().map(|f| f.stop_lsn.as_str()).collect()),
    );
    println!();
    let json = json!({
        "bench": "trove-overhead",
        "pg_version": p.version,
        "store": store,
        "scale": args.scale,
        "load_secs": args.load_secs,
        "clients": args.clients,
        "poll_ms": args.poll_ms,
        "runs": args.runs,
        "data_mib": p.data_bytes as f64 / MIB,
        "tps": p.tps,
        "target": p.target.to_rfc3339(),
        "orders": runs.orders,
        "api": runs.api,
        "driver_s": runs.driver.iter().map(|d| d.total_s).collect::<Vec<_>>(),
        "driver_phases_median_s": driver_parts,
        "floor_s": runs.floor.iter().map(|f| f.total_s).collect::<Vec<_>>(),
        "median_ms": {
            "api": m.api,
            "start_overhead": m.start,
            "recorded": recorded_ms,
            "queued": phase_median("queued") * 1e3,
            "dispatched": phase_median("dispatched") * 1e3,
            "end_overhead": m.end,
            "guest_own": m.guest,
            "driver": m.driver,
            "floor": m.floor,
            "api_minus_driver": m.api_minus_driver,
            "driver_minus_floor": m.driver_minus_floor,
            "api_minus_guest_own": m.api_minus_guest,
        },
        "goal_ms": GOAL_MS,
    });
    println!("{json}");
}

fn min(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(f64::NAN, f64::min)
}

fn max(v: impl Iterator<Item = f64>) -> f64 {
    v.fold(f64::NAN, f64::max)
}

fn verdict(mut v: impl Iterator<Item = f64>) -> &'static str {
    if v.all(|x| x < GOAL_MS) {
        "met"
    } else {
        "NOT met"
    }
}
