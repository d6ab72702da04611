//! The product's recovery split finer, at what the staging and live servers wrote in their logs.

use std::path::Path;

use chrono::{DateTime, Utc};
use trove_common::status::RecoveryPhase;
use trove_guestagent::postgres::Cluster;

/// `2026-11-25 17:39:05.439 UTC [123] LOG:  …` → the time, for logs written in UTC.
fn log_time(line: &str) -> Option<DateTime<Utc>> {
    let mut it = line.splitn(4, ' ');
    let (date, time, zone) = (it.next()?, it.next()?, it.next()?);
    if zone != "UTC" {
        return None;
    }
    let naive =
        chrono::NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f")
            .ok()?;
    Some(naive.and_utc())
}

/// Times of the first line containing each needle, in order, each searched after the previous
/// one, starting at the last line containing `from`.
fn log_events(path: &Path, from: &str, needles: &[&str]) -> Vec<Option<DateTime<Utc>>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut pos = lines
        .iter()
        .rposition(|l| l.contains(from))
        .unwrap_or(lines.len());
    let mut found = Vec::new();
    for needle in needles {
        match lines.iter().skip(pos).position(|l| l.contains(needle)) {
            Some(off) => {
                pos += off;
                found.push(lines.get(pos).and_then(|l| log_time(l)));
            }
            None => found.push(None),
        }
    }
    found
}

/// Splits the product's phases at what the staging and live servers logged.
pub fn log_detail(
    cluster: &Cluster,
    marks: &[(String, DateTime<Utc>)],
    ended: DateTime<Utc>,
) -> Vec<(String, f64)> {
    let mark = |p: RecoveryPhase| marks.iter().find(|(n, _)| n == p.as_str()).map(|(_, t)| *t);
    let live_log = &cluster.spec().log_file;
    let mut staging_log = live_log.clone().into_os_string();
    staging_log.push(".staging");
    let staging = log_events(
        Path::new(&staging_log),
        "starting PostgreSQL",
        &[
            "starting PostgreSQL",
            "recovery stopping before",
            "selected new timeline ID",
            "checkpoint complete",
            "received fast shutdown request",
            "database system is shut down",
        ],
    );
    // The live server is stopped immediately at cut-over (no shutdown checkpoint).
    let live = log_events(
        live_log,
        "received immediate shutdown request",
        &[
            "received immediate shutdown request",
            "database system is shut down",
            "database system is ready to accept connections",
        ],
    );
    let points = [
        ("verifying", mark(RecoveryPhase::Verifying)),
        ("replaying", mark(RecoveryPhase::Replaying)),
        ("staging started", staging[0]),
        ("stop point reached", staging[1]),
        ("verifying_target", mark(RecoveryPhase::VerifyingTarget)),
        ("new timeline selected", staging[2]),
        ("end-of-recovery checkpoint done", staging[3]),
        ("staging stop requested", staging[4]),
        ("staging shut down", staging[5]),
        ("cutting_over", mark(RecoveryPhase::CuttingOver)),
        ("live shut down", live[1]),
        ("live ready", live[2]),
        ("health_check", mark(RecoveryPhase::HealthCheck)),
        ("done", Some(ended)),
    ];
    let labels = [
        "sha256+unpack+preflight",
        "config+pg_ctl spawn",
        "PG: start, replay to target",
        "pause noticed (50 ms poll)",
        "stop line check, resume",
        "PG: end-of-recovery checkpoint",
        "post-promotion checks",
        "staging shutdown checkpoint",
        "to cut-over",
        "live stop (immediate)",
        "rename+config+live start",
        "until health_check",
        "health check",
    ];
    if points.iter().any(|(_, t)| t.is_none()) {
        return Vec::new();
    }
    points
        .windows(2)
        .zip(labels)
        .filter_map(|(w, label)| {
            let (a, b) = (w[0].1?, w[1].1?);
            let d = (b - a).num_microseconds()? as f64 / 1e6;
            Some((label.to_owned(), d))
        })
        .collect()
}
