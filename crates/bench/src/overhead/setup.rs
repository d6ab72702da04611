//! Everything before the timed runs: an instance created through the API, pgbench data, a backup
//! taken through the API, a write load after it, and a recovery target inside the recoverable
//! window with commits after it in the store.

use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use trove_common::store::{BlobStore, layout};
use trove_e2e::Stack;
use trove_guestagent::postgres::{BackupManifest, Cluster, ClusterSpec};
use trove_guestagent::testkit::{
    TestRoot, WalStream, parse_lsn, query_value, segment_names, wait_for,
};
use uuid::Uuid;

use super::args::OverheadArgs;
use crate::local::{FloorInputs, floor_inputs};
use crate::pgbench::{parse_tps, pgbench};
use crate::target::pick_target;

const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;
/// How long the store may take to seal the segment that holds the end of the load.
const CATCH_UP: Duration = Duration::from_secs(120);

/// What the timed runs start from.
pub struct Prepared {
    pub instance: Uuid,
    pub backup: Uuid,
    pub version: String,
    pub data_bytes: u64,
    pub tps: Option<f64>,
    /// The backup's archive key and manifest in the stack's store.
    pub archive: String,
    pub manifest: BackupManifest,
    /// The instance's WAL in the store (`wal/<instance>`); the spool is the driver run's, where
    /// the history of the timeline it promotes to goes (never shipped).
    pub wal: WalStream,
    /// Between two commits of timeline 1, near the end of the load.
    pub target: DateTime<Utc>,
    /// The same backup and timeline 1's WAL as local files, for PostgreSQL alone.
    pub floor: FloorInputs,
}

/// Prepares the runs; `before_load` runs between the backup and the write load, with the
/// instance and a handle on its server (the rewind benchmark sets the window there).
pub async fn prepare(
    stack: &Stack,
    root: &TestRoot,
    args: &OverheadArgs,
    before_load: impl AsyncFnOnce(Uuid, &Cluster) -> Result<()>,
) -> Result<Prepared> {
    let store = root.store();
    eprintln!("creating an instance through the API ...");
    let (instance, shown) = stack.active_instance("bench").await?;
    let port = shown["addresses"][0]["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("the instance shows no port")?;
    // A handle on the managed server for pgbench and SQL over its socket, as the agent connects;
    // the agent alone starts, stops and configures it.
    let server = Cluster::new(
        ClusterSpec::under(&stack.instance_dir(instance), port),
        root.bins().clone(),
        root.runner().clone(),
    );
    let version: String = query_value(&server, "SELECT current_setting('server_version')").await?;

    eprintln!("pgbench -i -s {} ...", args.scale);
    pgbench(&server, &["-i", "-q", "-s", &args.scale.to_string()]).await?;
    let data_bytes: i64 = query_value(
        &server,
        "SELECT sum(pg_database_size(oid))::int8 FROM pg_database",
    )
    .await?;

    eprintln!("backup through the API ...");
    let backup = stack.backup(instance, "bench").await?;
    let backup = Uuid::parse_str(backup["id"].as_str().context("the backup shows no id")?)?;
    let archive = layout::backup_archive(backup);
    let manifest = read_manifest(store, &layout::backup_manifest(backup)).await?;

    before_load(instance, &server).await?;

    eprintln!("pgbench -c {} -j 2 -T {} ...", args.clients, args.load_secs);
    let (clients, secs) = (args.clients.to_string(), args.load_secs.to_string());
    let report = pgbench(&server, &["-c", &clients, "-j", "2", "-T", &secs]).await?;

    // Seal the segment holding the end of the load, so the target can be read off the store.
    let wal = WalStream {
        spool: root.owned_dir("driver.spool")?,
        dir: layout::wal_dir(instance),
        index: Default::default(),
    };
    let switched: String = query_value(&server, "SELECT pg_walfile_name(pg_switch_wal())").await?;
    let what = format!("{switched} sealed in the store");
    wait_for(&what, CATCH_UP, Duration::from_millis(100), async || {
        let sealed = segment_names(store, &wal, 1).await.ok()?;
        sealed.contains(&switched).then_some(())
    })
    .await?;
    let (target, segment) = pick_target(root, &wal).await?;
    eprintln!("recovery target {target} (from segment {segment})");
    // The API takes a time only once the guest has reported WAL past it.
    stack.wait_window_past(instance, target).await?;

    let start_segno = parse_lsn(&manifest.start_lsn)? / SEGMENT_SIZE;
    let floor = floor_inputs(root, store, &archive, &wal, start_segno).await?;
    eprintln!(
        "floor inputs: archive and {} segments in {:.1} s",
        floor.segments, floor.secs
    );
    Ok(Prepared {
        instance,
        backup,
        version,
        data_bytes: u64::try_from(data_bytes).unwrap_or(0),
        tps: parse_tps(&report),
        archive,
        manifest,
        wal,
        target,
        floor,
    })
}

async fn read_manifest(store: &BlobStore, key: &str) -> Result<BackupManifest> {
    let bytes = store
        .get(key)
        .await?
        .with_context(|| format!("{key} is not in the store"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {key}"))
}
