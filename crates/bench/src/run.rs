//! The benchmark from start to end: a managed cluster shipping its WAL to the object store,
//! pgbench data and a base backup into the store, the load with RPO sampling, then the recoveries
//! each way.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;
use trove_common::store::layout;
use trove_guestagent::postgres::{BackupDest, SharedShipIndex, take_backup};
use trove_guestagent::testkit::{TestRoot, parse_lsn, query_value, segment_names, wait_for};

use crate::args::Args;
use crate::local::{floor_inputs, local_store, mirror};
use crate::pgbench::{parse_tps, pgbench};
use crate::recovery::{self, Sources};
use crate::report::Summary;
use crate::rpo;
use crate::target::pick_target;

const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;
/// How long the store may take to catch up with the server after a burst of writes.
const CATCH_UP: Duration = Duration::from_secs(120);
/// Three shipping passes (the agent ships every 200 ms).
const SETTLED: Duration = Duration::from_millis(600);

pub async fn bench(root: &TestRoot, args: &Args) -> Result<()> {
    let store = root.store();
    let cluster = root.cluster("live")?;
    cluster.init().await?;
    cluster.start().await?;
    let version: String = query_value(&cluster, "SELECT current_setting('server_version')").await?;

    let streamer = root.streamer(&cluster, "live");
    let wal = streamer.wal.clone();

    let t = Instant::now();
    eprintln!("pgbench -i -s {} ...", args.scale);
    pgbench(&cluster, &["-i", "-q", "-s", &args.scale.to_string()]).await?;
    let init_s = t.elapsed().as_secs_f64();

    // Every database goes into the backup, so the throughput counts them all.
    let data_bytes: i64 = query_value(
        &cluster,
        "SELECT sum(pg_database_size(oid))::int8 FROM pg_database",
    )
    .await?;
    let id = uuid::Uuid::new_v4();
    let archive = layout::backup_archive(id);
    eprintln!("base backup into the store ...");
    let t = Instant::now();
    let manifest = take_backup(
        &cluster,
        "bench",
        BackupDest {
            store,
            archive: &archive,
            manifest: &layout::backup_manifest(id),
        },
    )
    .await?;
    let backup_s = t.elapsed().as_secs_f64();

    // Load, with every sampler running. The upload counter is read with the store caught up at
    // both ends, so it counts what shipping the load's WAL took.
    let lsn0 = flush_lsn(&cluster).await?;
    wait_shipped(&wal.index, lsn0).await?;
    let uploaded0 = settled_uploaded(&wal.index).await?;
    let stop = CancellationToken::new();
    let sampler = {
        let (c, b, r, s, i, st) = (
            cluster.clone(),
            root.bins().clone(),
            root.runner().clone(),
            wal.spool.clone(),
            wal.index.clone(),
            stop.clone(),
        );
        tokio::spawn(async move { rpo::sample(&c, &b, &r, s, i, st).await })
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
    let lsn1 = flush_lsn(&cluster).await?;
    wait_shipped(&wal.index, lsn1).await?;
    let uploaded = settled_uploaded(&wal.index)
        .await?
        .saturating_sub(uploaded0);
    let wal_bytes = lsn1.saturating_sub(lsn0);

    // Complete the segment holding the end of the load, so the target can be read off the store.
    let switched: String = query_value(&cluster, "SELECT pg_walfile_name(pg_switch_wal())").await?;
    let what = format!("{switched} sealed in the store");
    wait_for(&what, CATCH_UP, Duration::from_millis(100), async || {
        let sealed = segment_names(store, &wal, 1).await.ok()?;
        sealed.contains(&switched).then_some(())
    })
    .await?;
    let (target, target_segment) = pick_target(root, &wal).await?;
    eprintln!("recovery target {target} (from segment {target_segment})");

    // Local copies of the same objects, outside every timing.
    let local = local_store(root)?;
    let mirrored = mirror(store, &local).await?;
    let start_segno = parse_lsn(&manifest.start_lsn)? / SEGMENT_SIZE;
    let floor = floor_inputs(root, store, &archive, &wal, start_segno).await?;
    eprintln!(
        "local copies: {} objects, {:.0} MiB in {:.1} s; floor: archive and {} segments in {:.1} s",
        mirrored.objects,
        mirrored.bytes as f64 / (1024.0 * 1024.0),
        mirrored.secs,
        floor.segments,
        floor.secs
    );

    let sources = Sources {
        store,
        local: &local,
        archive: &archive,
        manifest: &manifest,
        wal: &wal,
        floor: &floor,
    };
    let runs = recovery::compare(root, &cluster, &sources, target, args.runs).await?;
    streamer.stop().await?;

    let replay_bytes = runs
        .store
        .first()
        .map(|r| parse_lsn(&r.stop_lsn))
        .transpose()?
        .unwrap_or(0)
        .saturating_sub(parse_lsn(&manifest.start_lsn)?);
    Summary {
        args,
        version: &version,
        store: store.describe(),
        data_bytes: u64::try_from(data_bytes).unwrap_or(0),
        init_s,
        backup_s,
        backup_bytes: manifest.size_bytes,
        tps: parse_tps(&report),
        load_s,
        wal_bytes,
        wal_rate: wal_bytes as f64 / load_s,
        uploaded_bytes: uploaded,
        samples: &samples,
        target: target.to_rfc3339(),
        replay_bytes,
        mirrored,
        runs: &runs,
    }
    .print();
    Ok(())
}

async fn flush_lsn(cluster: &trove_guestagent::postgres::Cluster) -> Result<u64> {
    let lsn: String = query_value(cluster, "SELECT pg_current_wal_flush_lsn()::text").await?;
    parse_lsn(&lsn)
}

/// Waits until the shipper says the store holds WAL of timeline 1 up to `lsn`.
async fn wait_shipped(index: &SharedShipIndex, lsn: u64) -> Result<()> {
    let what = format!("the store to hold WAL up to {lsn:#x}");
    wait_for(&what, CATCH_UP, Duration::from_millis(20), async || {
        (rpo::shipped_now(index)?.0 >= lsn).then_some(())
    })
    .await
}

/// The shipper's upload counter once it has stopped moving. The index says what the store holds
/// segment by segment as a pass goes, but the counter is only updated when the pass ends; a pass
/// that shipped up to the LSN just waited for may still be running (sealing a segment, pruning the
/// spool). With the server quiet, passes upload nothing, so a counter unchanged for a few passes
/// has taken in everything that was in flight.
async fn settled_uploaded(index: &SharedShipIndex) -> Result<u64> {
    let mut last = (uploaded_bytes(index), Instant::now());
    wait_for(
        "the WAL upload counter to settle",
        CATCH_UP,
        Duration::from_millis(50),
        async || {
            let now = uploaded_bytes(index);
            if now != last.0 {
                last = (now, Instant::now());
            }
            (last.1.elapsed() >= SETTLED).then_some(now)
        },
    )
    .await
}

fn uploaded_bytes(index: &SharedShipIndex) -> u64 {
    index
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .uploaded
        .bytes
}
