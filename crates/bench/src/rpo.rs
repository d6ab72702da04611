//! RPO sampling while pgbench runs: the object store's exposure measured in WAL positions (the
//! primary's flush LSN against what the shipper has uploaded), the latest commit the agent would
//! report (`scan()` of the spool), and the receiver's lag as the server sees it
//! (`pg_stat_replication`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::Utc;
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;
use trove_guestagent::postgres::{Cluster, PgBinaries, Runner, SharedShipIndex, ShipIndex, scan};
use trove_guestagent::testkit::parse_lsn;

/// Period of the spool scan and the replication samples; a sample that takes longer delays the
/// next one instead of bunching up.
pub const PERIOD: Duration = Duration::from_millis(200);
/// Period of the LSN samples.
pub const LSN_PERIOD: Duration = Duration::from_millis(100);
/// WAL page size: the shipper sends whole pages, the last of which may be only partly written.
const PAGE: u64 = 8192;
const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// One `scan()` sample of the spool.
#[derive(Debug, Clone, Copy)]
pub struct ScanSample {
    /// `now − latest commit scan() finds`, with `now` taken when `scan()` returned.
    pub exposure_ms: f64,
    /// The same with `now` taken when `scan()` started: can undercount by up to the scan's latency.
    pub exposure_at_start_ms: f64,
    pub scan_ms: f64,
    /// Seconds since sampling (and the load) started.
    pub at_s: f64,
}

/// One `pg_stat_replication` sample of the pg_receivewal connection.
#[derive(Debug, Clone, Copy)]
pub struct ReplSample {
    /// `pg_current_wal_lsn() − flush_lsn`.
    pub lag_bytes: f64,
    /// The server's own `flush_lag` (NULL once the receiver has caught up and no WAL is pending).
    pub flush_lag_ms: Option<f64>,
}

/// One sample of the primary's flush position and of what the store holds.
#[derive(Debug, Clone, Copy)]
pub struct LsnSample {
    /// Seconds since sampling started, when the flush LSN was read (after the shipped one, so
    /// the pair can only overstate the exposure, by one local query).
    pub at_s: f64,
    /// `pg_current_wal_flush_lsn()` of the primary.
    pub flush: u64,
    /// `ShipIndex::shipped_lsn()` on timeline 1, if anything is shipped yet.
    pub shipped: Option<u64>,
    /// The same without the last page sent of a segment in progress, which the receiver may not
    /// have finished writing when it was read: what the store surely holds.
    pub shipped_whole: Option<u64>,
}

pub struct Samples {
    pub scans: Vec<ScanSample>,
    /// Samples where the spool held no commit yet on timeline 1.
    pub scan_misses: usize,
    /// Samples where `scan()` itself failed, and the first such error.
    pub scan_errors: usize,
    pub first_scan_error: Option<String>,
    pub repl: Vec<ReplSample>,
    pub lsns: Vec<LsnSample>,
}

/// Samples every measure at its period until `stop` fires.
pub async fn sample(
    cluster: &Cluster,
    bins: &PgBinaries,
    runner: &Runner,
    spool: PathBuf,
    index: SharedShipIndex,
    stop: CancellationToken,
) -> Result<Samples> {
    let scans = tokio::spawn(sample_scans(
        bins.clone(),
        runner.clone(),
        spool,
        stop.clone(),
    ));
    let repl = tokio::spawn(sample_replication(cluster.clone(), stop.clone()));
    let lsns = tokio::spawn(sample_lsns(cluster.clone(), index, stop));
    let (scans, scan_misses, errors) = scans.await.context("scan sampler panicked")?;
    let repl = repl.await.context("replication sampler panicked")??;
    let lsns = lsns.await.context("LSN sampler panicked")??;
    Ok(Samples {
        scans,
        scan_misses,
        scan_errors: errors.len(),
        first_scan_error: errors.into_iter().next(),
        repl,
        lsns,
    })
}

/// What the store holds of timeline 1: `(shipped_lsn(), the same without a partly written last
/// page)`.
pub fn shipped_now(index: &SharedShipIndex) -> Option<(u64, u64)> {
    let index = index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    shipped_of(&index)
}

fn shipped_of(index: &ShipIndex) -> Option<(u64, u64)> {
    let (tli, lsn) = index.shipped_lsn()?;
    if tli != 1 {
        return None;
    }
    let (name, seg) = index
        .timelines
        .get(&tli)?
        .segments
        .iter()
        .rev()
        .find(|(_, s)| s.end > 0)?;
    // Complete pages are complete; the last page of a segment still being written may have been
    // read half-filled (the shipper rounds up to whole pages) and is sent again next pass.
    let uncertain = if seg.sealed { 0 } else { PAGE.min(seg.end) };
    let segno_start = segment_start(name)?;
    Some((lsn, (lsn - uncertain).max(segno_start)))
}

/// The LSN where segment `name` (24 hex digits, 16 MiB segments) begins.
fn segment_start(name: &str) -> Option<u64> {
    let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
    let seg = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
    Some(((log << 32) / SEGMENT_SIZE + seg) * SEGMENT_SIZE)
}

async fn sample_lsns(
    cluster: Cluster,
    index: SharedShipIndex,
    stop: CancellationToken,
) -> Result<Vec<LsnSample>> {
    let mut conn = cluster.connect().await?;
    let mut samples = Vec::new();
    let t0 = Instant::now();
    let mut ticks = Ticks::new(LSN_PERIOD, stop);
    while ticks.next().await {
        // Shipped first, then flushed: a commit flushed in between counts as exposed.
        let shipped = shipped_now(&index);
        let flush: String = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text")
            .fetch_one(&mut conn)
            .await
            .context("sampling pg_current_wal_flush_lsn()")?;
        samples.push(LsnSample {
            at_s: t0.elapsed().as_secs_f64(),
            flush: parse_lsn(&flush)?,
            shipped: shipped.map(|s| s.0),
            shipped_whole: shipped.map(|s| s.1),
        });
    }
    let _ = conn.close().await;
    Ok(samples)
}

/// Exposure at each sample, in ms: the sample's time minus the time the primary's flush LSN was
/// first seen beyond what the store held at that sample (0 when the store held all of it).
/// `shipped` picks which shipped LSN counts. Returns the exposure as seen (the first sample past
/// the shipped LSN) and an upper bound (the sample before it, since the flush LSN went past it
/// somewhere between the two), and how many samples had nothing shipped yet.
pub fn exposures(
    samples: &[LsnSample],
    shipped: impl Fn(&LsnSample) -> Option<u64>,
) -> (Vec<f64>, Vec<f64>, usize) {
    let (mut seen, mut upper, mut misses) = (Vec::new(), Vec::new(), 0);
    for (i, s) in samples.iter().enumerate() {
        let Some(held) = shipped(s) else {
            misses += 1;
            continue;
        };
        if held >= s.flush {
            seen.push(0.0);
            upper.push(0.0);
            continue;
        }
        // The flush LSN only grows, so the samples beyond `held` are a suffix of those up to i.
        let first = samples[..=i].partition_point(|x| x.flush <= held);
        seen.push((s.at_s - samples[first].at_s) * 1000.0);
        let before = first.checked_sub(1).unwrap_or(first);
        upper.push((s.at_s - samples[before].at_s) * 1000.0);
    }
    (seen, upper, misses)
}

async fn sample_scans(
    bins: PgBinaries,
    runner: Runner,
    spool: PathBuf,
    stop: CancellationToken,
) -> (Vec<ScanSample>, usize, Vec<String>) {
    let mut samples = Vec::new();
    let mut misses = 0;
    let mut errors = Vec::new();
    let t0 = Instant::now();
    let mut ticks = Ticks::new(PERIOD, stop);
    while ticks.next().await {
        let started_wall = Utc::now();
        let started = Instant::now();
        let latest = scan(&bins, &runner, &spool).await.map(|states| {
            states
                .into_iter()
                .find(|s| s.timeline == 1)
                .and_then(|s| s.latest_commit)
        });
        let scan_ms = started.elapsed().as_secs_f64() * 1000.0;
        let ended_wall = Utc::now();
        match latest {
            Ok(Some(commit)) => samples.push(ScanSample {
                exposure_ms: millis(ended_wall - commit),
                exposure_at_start_ms: millis(started_wall - commit),
                scan_ms,
                at_s: started.duration_since(t0).as_secs_f64(),
            }),
            Ok(None) => misses += 1,
            Err(err) => errors.push(format!("{err:#}")),
        }
    }
    (samples, misses, errors)
}

async fn sample_replication(cluster: Cluster, stop: CancellationToken) -> Result<Vec<ReplSample>> {
    let mut conn = cluster.connect().await?;
    let mut samples = Vec::new();
    let mut ticks = Ticks::new(PERIOD, stop);
    while ticks.next().await {
        let row: Option<(Option<f64>, Option<f64>)> = sqlx::query_as(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::float8, \
             (EXTRACT(epoch FROM flush_lag) * 1000)::float8 \
             FROM pg_stat_replication WHERE application_name = 'pg_receivewal'",
        )
        .fetch_optional(&mut conn)
        .await
        .context("sampling pg_stat_replication")?;
        if let Some((Some(lag_bytes), flush_lag_ms)) = row {
            samples.push(ReplSample {
                lag_bytes,
                flush_lag_ms,
            });
        }
    }
    let _ = conn.close().await;
    Ok(samples)
}

/// Ticks every `period` until `stop` fires.
struct Ticks {
    ticker: tokio::time::Interval,
    stop: CancellationToken,
}

impl Ticks {
    fn new(period: Duration, stop: CancellationToken) -> Ticks {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks { ticker, stop }
    }

    /// Waits for the next tick; false once `stop` fired.
    async fn next(&mut self) -> bool {
        tokio::select! {
            () = self.stop.cancelled() => false,
            _ = self.ticker.tick() => true,
        }
    }
}

fn millis(delta: chrono::TimeDelta) -> f64 {
    delta.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_s: f64, flush: u64, shipped: u64) -> LsnSample {
        LsnSample {
            at_s,
            flush,
            shipped: Some(shipped),
            shipped_whole: Some(shipped),
        }
    }

    #[test]
    fn exposure_counts_from_when_the_primary_first_passed_what_the_store_holds() {
        let samples = [
            at(0.0, 100, 100),
            at(0.1, 200, 100),
            at(0.2, 300, 150),
            at(0.3, 300, 300),
            at(0.4, 400, 300),
        ];
        let (seen, upper, misses) = exposures(&samples, |s| s.shipped);
        let round = |v: Vec<f64>| v.into_iter().map(|x| x.round()).collect::<Vec<_>>();
        assert_eq!(misses, 0);
        // At 0.2 s the store holds 150: the primary was past it since the sample at 0.1 s.
        assert_eq!(round(seen), [0.0, 0.0, 100.0, 0.0, 0.0]);
        assert_eq!(round(upper), [0.0, 100.0, 200.0, 0.0, 100.0]);
    }

    #[test]
    fn segments_start_where_their_name_says() {
        assert_eq!(segment_start("000000010000000000000003"), Some(3 << 24));
        assert_eq!(
            segment_start("000000010000000100000002"),
            Some((1 << 32) + (2 << 24))
        );
    }
}
