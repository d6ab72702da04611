//! The driver alone: `recover_in_place` called in this process, as the guest calls it, with the
//! same backup, the instance's WAL in the same store and the same target along timeline 1, on a
//! cluster of the bench's own (the instance itself belongs to the guest agent). Its promotions
//! go to a spool nobody ships, so the instance's WAL in the store stays as the agent left it.

use std::time::Instant;

use anyhow::{Context as _, Result};
use trove_common::recovery::StopPoint;
use trove_common::store::BlobStore;
use trove_guestagent::postgres::{
    ArchiveSource, Cluster, RecoveryRequest, Replay, Reporters, WalSource, recover_in_place,
};
use trove_guestagent::testkit::PhaseLog;

use super::setup::Prepared;
use crate::recovery::Timed;

/// Segments fetched ahead of replay: the guest agent's default (`wal_prefetch`).
const PREFETCH: usize = 4;

/// One `recover_in_place` of `cluster` to the prepared target, timed as a whole and per phase.
pub async fn recover(cluster: &Cluster, store: &BlobStore, p: &Prepared) -> Result<Timed> {
    let phases = PhaseLog::default();
    let request = RecoveryRequest {
        archive: ArchiveSource {
            store,
            key: &p.archive,
            sha256: &p.manifest.checksum,
        },
        replay: Some(Replay {
            wal: WalSource {
                store,
                dir: &p.wal.dir,
                prefetch: PREFETCH,
            },
            stop: StopPoint::Time(p.target),
            timeline: 1,
            history_dest: Some(&p.wal.spool),
        }),
    };
    let reporters = Reporters {
        phase: &|ph| phases.record(ph),
        ..Reporters::SILENT
    };
    let started = Instant::now();
    let outcome = recover_in_place(cluster, &request, reporters)
        .await
        .context("recover_in_place along timeline 1")?;
    let ended = Instant::now();
    // Named parts that add up to the total: whatever runs before the first reported phase, then
    // each phase until the next.
    let mut parts = Vec::new();
    let mut prev = ("(before fetching)".to_owned(), started);
    for (phase, at, _) in phases.marks() {
        parts.push((prev.0, at.duration_since(prev.1).as_secs_f64()));
        prev = (phase.to_string(), at);
    }
    parts.push((prev.0, ended.duration_since(prev.1).as_secs_f64()));
    Ok(Timed {
        total_s: ended.duration_since(started).as_secs_f64(),
        parts,
        stop_lsn: outcome.stop_lsn.unwrap_or_default(),
        detail: Vec::new(),
    })
}
