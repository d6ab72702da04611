//! The benchmark from start to end: a managed cluster streaming its WAL, pgbench data and a base
//! backup, the load with RPO sampling, then the recoveries each way.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;
use trove_guestagent::postgres::{ARCHIVE_FILE, take_backup, timeline_dir};
use trove_guestagent::testkit::{TestRoot, parse_lsn, query_value, wait_for};

use crate::args::Args;
use crate::pgbench::{parse_tps, pgbench};
use crate::recovery;
use crate::report::Summary;
use crate::rpo;
use crate::target::pick_target;

pub async fn bench(root: &TestRoot, args: &Args) -> Result<()> {
    let cluster = root.cluster("live")?;
    cluster.init().await?;
    cluster.start().await?;
    let version: String = query_value(&cluster, "SELECT current_setting('server_version')").await?;

    let wal_root = root.path().join("wal");
    let streamer = root.streamer(&cluster, &wal_root);

    let t = Instant::now();
    eprintln!("pgbench -i -s {} ...", args.scale);
    pgbench(&cluster, &["-i", "-q", "-s", &args.scale.to_string()]).await?;
    let init_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let backup_dir = root.path().join("backups").join("b1");
    let manifest = take_backup(&cluster, "bench", &backup_dir).await?;
    let archive = backup_dir.join(ARCHIVE_FILE);
    let backup_s = t.elapsed().as_secs_f64();
    let db_bytes: i64 = query_value(&cluster, "SELECT pg_database_size('postgres')").await?;

    // Load, with both samplers running.
    let lsn0: String = query_value(&cluster, "SELECT pg_current_wal_lsn()::text").await?;
    let stop = CancellationToken::new();
    let sampler = {
        let (c, b, r, w, s) = (
            cluster.clone(),
            root.bins().clone(),
            root.runner().clone(),
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
    let (clients, secs) = (args.clients.to_string(), args.load_secs.to_string());
    let report = pgbench(&cluster, &["-c", &clients, "-j", "2", "-T", &secs]).await;
    let load_s = load_started.elapsed().as_secs_f64();
    stop.cancel();
    let samples = sampler.await.context("sampler panicked")??;
    let report = report?;
    let lsn1: String = query_value(&cluster, "SELECT pg_current_wal_lsn()::text").await?;
    let wal_bytes = parse_lsn(&lsn1)?.saturating_sub(parse_lsn(&lsn0)?);

    // Complete the segment holding the end of the load, so the target can be read off the store.
    let switched: String = query_value(&cluster, "SELECT pg_walfile_name(pg_switch_wal())").await?;
    let done = timeline_dir(&wal_root, 1).join(&switched);
    let what = format!("{} in the store", done.display());
    let arrived = async || done.exists().then_some(());
    wait_for(
        &what,
        Duration::from_secs(60),
        Duration::from_millis(100),
        arrived,
    )
    .await?;
    let (target, target_segment) = pick_target(root, &wal_root).await?;
    root.wait_for_store(&wal_root, 1, target).await?;
    eprintln!("recovery target {target} (from segment {target_segment})");

    let runs = recovery::compare(
        root, &cluster, &manifest, &archive, &wal_root, target, args.runs,
    )
    .await?;
    streamer.stop().await?;

    let replay_bytes = runs
        .ours
        .first()
        .map(|r| parse_lsn(&r.stop_lsn))
        .transpose()?
        .unwrap_or(0)
        .saturating_sub(parse_lsn(&manifest.start_lsn)?);
    Summary {
        args,
        version: &version,
        db_bytes,
        init_s,
        backup_s,
        backup_bytes: manifest.size_bytes,
        tps: parse_tps(&report),
        load_s,
        wal_bytes,
        wal_rate: wal_bytes as f64 / load_s,
        samples: &samples,
        target: target.to_rfc3339(),
        replay_bytes,
        runs: &runs,
    }
    .print();
    Ok(())
}
