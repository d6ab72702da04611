//! One instance this host runs: its directory, its cluster, its on-disk record, and the lock that
//! keeps two operations (a backup and a recovery, say) from touching it at once.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Instant,
};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::{sync::Mutex, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use trove_common::{accounts::Accounts, wal_activity::RelationJournal};
use uuid::Uuid;

use crate::postgres::{Cluster, ClusterSpec, PgBinaries, Runner, SharedShipIndex, write_owned};
use crate::rewind_keeper::RewindKeep;

pub const RECORD_FILE: &str = "instance.json";

/// What survives an agent restart: enough to adopt the running server again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub id: Uuid,
    pub port: u16,
}

pub struct Hosted {
    pub id: Uuid,
    pub dir: PathBuf,
    pub cluster: Cluster,
    /// Held for the whole of any operation that stops, swaps or copies the data directory.
    pub op: Mutex<()>,
    /// Stops this instance's queue consumer when it is deleted.
    pub cancel: CancellationToken,
    /// Set while an operation may stop the server (restart, recovery, delete): a heartbeat taken
    /// then would only show a transient SHUTDOWN. Backups leave the server up and keep heartbeats.
    disruptive: AtomicBool,
    /// The continuous WAL receiver of this instance, while one runs.
    pub streamer: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
    /// The last WAL report sent, so an unchanged store is not reported again.
    pub last_wal_report: Mutex<Option<serde_json::Value>>,
    /// What the store holds of this instance's WAL, kept by its shipper, read by the reports.
    pub shipped: SharedShipIndex,
    /// The databases and users last reported, and when: a heartbeat carries them again only
    /// when they changed or a while has passed.
    pub last_accounts: Mutex<Option<(Accounts, Instant)>>,
    /// The relation journal (loaded from the store on first use) and when the live catalog was
    /// last read into it.
    pub relations: Mutex<(Option<RelationJournal>, Option<Instant>)>,
    /// The delayed copy for rewind: its record and last status (see `rewind_keeper`).
    pub rewind: Mutex<RewindKeep>,
    /// Wakes the rewind keeper at once, e.g. when the window changes.
    pub rewind_wake: tokio::sync::Notify,
}

/// Clears the disruptive flag when the operation ends, however it ends.
pub struct Disruption<'a>(&'a AtomicBool);

impl Drop for Disruption<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Hosted {
    pub fn new(
        record: &InstanceRecord,
        data_root: &Path,
        listen_addresses: &str,
        bins: PgBinaries,
        runner: Runner,
        cancel: CancellationToken,
    ) -> Self {
        let dir = data_root.join(record.id.to_string());
        let mut spec = ClusterSpec::under(&dir, record.port);
        spec.listen_addresses = listen_addresses.to_string();
        Self {
            id: record.id,
            cluster: Cluster::new(spec, bins, runner),
            dir,
            op: Mutex::new(()),
            cancel,
            disruptive: AtomicBool::new(false),
            streamer: Mutex::new(None),
            last_wal_report: Mutex::new(None),
            shipped: SharedShipIndex::default(),
            last_accounts: Mutex::new(None),
            relations: Mutex::new((None, None)),
            rewind: Mutex::new(RewindKeep::default()),
            rewind_wake: tokio::sync::Notify::new(),
        }
    }

    pub fn disrupt(&self) -> Disruption<'_> {
        self.disruptive.store(true, Ordering::SeqCst);
        Disruption(&self.disruptive)
    }

    pub fn is_disrupted(&self) -> bool {
        self.disruptive.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.cluster.spec().port
    }

    /// Writes `instance.json` atomically; its presence means the instance is fully prepared.
    pub async fn save_record(&self) -> Result<()> {
        let record = InstanceRecord {
            id: self.id,
            port: self.port(),
        };
        let path = self.dir.join(RECORD_FILE);
        // The agent's own file: 0600, not the servers' OS user's.
        write_owned(&path, &serde_json::to_vec_pretty(&record)?, 0o600, None)
            .await
            .with_context(|| format!("writing {}", path.display()))
    }

    pub async fn load_record(dir: &Path) -> Result<Option<InstanceRecord>> {
        match tokio::fs::read(dir.join(RECORD_FILE)).await {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("parsing {}", dir.join(RECORD_FILE).display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("reading {}", dir.join(RECORD_FILE).display()))
            }
        }
    }

    /// Where finished recoveries are remembered, so a redelivered `do_recovery` is a no-op.
    pub fn recovery_result_path(&self, recovery_id: Uuid) -> PathBuf {
        self.dir
            .join("recoveries")
            .join(format!("{recovery_id}.json"))
    }

    /// Where a recovery's waiting preview is remembered (its port and timeline) until it is
    /// confirmed or cancelled; the preview's server outlives an agent restart, and this file
    /// lets the restarted agent adopt it.
    pub fn preview_path(&self, recovery_id: Uuid) -> PathBuf {
        self.dir
            .join("recoveries")
            .join(format!("{recovery_id}.preview.json"))
    }
}
