//! RPO sampling while pgbench runs: the store's exposure as the product computes it (`scan()`'s
//! latest commit), and the receiver's lag as the server sees it (`pg_stat_replication`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::Utc;
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;
use trove_guestagent::postgres::{Cluster, PgBinaries, Runner, scan};

/// Sampling period; a sample that takes longer delays the next one instead of bunching up.
pub const PERIOD: Duration = Duration::from_millis(200);

/// One `scan()` sample.
#[derive(Debug, Clone, Copy)]
pub struct ScanSample {
    /// `now − latest commit in the store`, with `now` taken when `scan()` returned: what a host
    /// death at that instant would lose, plus up to one scan's latency (conservative).
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

pub struct Samples {
    pub scans: Vec<ScanSample>,
    /// Samples where the store held no commit yet on timeline 1.
    pub scan_misses: usize,
    /// Samples where `scan()` itself failed, and the first such error.
    pub scan_errors: usize,
    pub first_scan_error: Option<String>,
    pub repl: Vec<ReplSample>,
}

/// Samples both measures every [`PERIOD`] until `stop` fires.
pub async fn sample(
    cluster: &Cluster,
    bins: &PgBinaries,
    runner: &Runner,
    wal_root: PathBuf,
    stop: CancellationToken,
) -> Result<Samples> {
    let scans = tokio::spawn(sample_scans(
        bins.clone(),
        runner.clone(),
        wal_root,
        stop.clone(),
    ));
    let repl = tokio::spawn(sample_replication(cluster.clone(), stop));
    let (scans, scan_misses, errors) = scans.await.context("scan sampler panicked")?;
    let repl = repl.await.context("replication sampler panicked")??;
    Ok(Samples {
        scans,
        scan_misses,
        scan_errors: errors.len(),
        first_scan_error: errors.into_iter().next(),
        repl,
    })
}

async fn sample_scans(
    bins: PgBinaries,
    runner: Runner,
    wal_root: PathBuf,
    stop: CancellationToken,
) -> (Vec<ScanSample>, usize, Vec<String>) {
    let mut samples = Vec::new();
    let mut misses = 0;
    let mut errors = Vec::new();
    let t0 = Instant::now();
    let mut ticks = Ticks::new(stop);
    while ticks.next().await {
        let started_wall = Utc::now();
        let started = Instant::now();
        let latest = scan(&bins, &runner, &wal_root).await.map(|states| {
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
    let mut ticks = Ticks::new(stop);
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

/// Ticks every [`PERIOD`] until `stop` fires.
struct Ticks {
    ticker: tokio::time::Interval,
    stop: CancellationToken,
}

impl Ticks {
    fn new(stop: CancellationToken) -> Ticks {
        let mut ticker = tokio::time::interval(PERIOD);
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
