//! Keeps each instance's delayed copy as its rewind window asks: built when the window is set,
//! rebuilt after a recovery (it was used, or follows the old timeline), restarted if it stopped,
//! its window changed in place, removed with its slot when the window goes to 0. What it finds
//! is reported in the instance's heartbeats (docs/postgres-recovery.md, "Rewind").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use trove_common::rewind::{MAX_ERROR_CHARS, RewindState, RewindStatus};

use crate::hosted::Hosted;
use crate::postgres::{
    Cluster, allocate_port, build_copy, copy_exists, current_timeline, dir_bytes, discard_copy,
    drop_slot, pause_copy, probe_copy, rewind_cluster, set_window, write_owned,
};

/// How often a copy is looked after.
const TICK: Duration = Duration::from_secs(1);
/// A build that failed is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// The copy's size on disk is counted at most this often.
const DISK_EVERY: Duration = Duration::from_secs(30);

/// What the agent remembers of an instance's copy across restarts (`rewind.json`, the agent's
/// own file): the window asked for and where the copy listens and stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RewindRecord {
    pub window_secs: u32,
    /// The copy's port; None until it is built.
    #[serde(default)]
    pub port: Option<u16>,
    /// The window the copy's settings carry now.
    #[serde(default)]
    pub applied_window: Option<u32>,
    /// When the copy was consistent after its build: its data is no older.
    #[serde(default)]
    pub consistent_at: Option<DateTime<Utc>>,
    /// The newest commit time the copy has applied, as far as seen: a restarted copy reports no
    /// commit time until it applies one, and its data is no newer than this meanwhile.
    #[serde(default)]
    pub applied_until: Option<DateTime<Utc>>,
}

impl RewindRecord {
    /// The point in time the copy's data stands at, at the latest as far as known.
    pub fn applied(&self) -> Option<DateTime<Utc>> {
        self.applied_until.max(self.consistent_at)
    }
}

/// The in-memory side: the record, the status last seen, and when to try a failed build again.
#[derive(Debug, Default)]
pub struct RewindKeep {
    pub record: Option<RewindRecord>,
    pub status: Option<RewindStatus>,
    retry_at: Option<Instant>,
    disk: Option<(u64, Instant)>,
}

fn record_path(h: &Hosted) -> PathBuf {
    h.dir.join("rewind.json")
}

/// The record, read from disk on first use (no file: rewind off).
pub async fn load_record(h: &Hosted, keep: &mut RewindKeep) -> RewindRecord {
    if let Some(r) = &keep.record {
        return r.clone();
    }
    let r = match tokio::fs::read(record_path(h)).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(instance.id = %h.id, error = %e, "unreadable rewind record; rewind off until set again");
            RewindRecord::default()
        }),
        Err(_) => RewindRecord::default(),
    };
    keep.record = Some(r.clone());
    r
}

/// Stores `r` on disk and in `keep`.
pub async fn save_record(h: &Hosted, keep: &mut RewindKeep, r: RewindRecord) -> Result<()> {
    write_owned(&record_path(h), &serde_json::to_vec(&r)?, 0o600, None)
        .await
        .context("writing the rewind record")?;
    keep.record = Some(r);
    Ok(())
}

/// The copy of `h` as `r` places it (port 0 before a build: only its directory matters then).
pub fn copy_of(h: &Hosted, r: &RewindRecord) -> Cluster {
    rewind_cluster(&h.cluster, r.port.unwrap_or(0))
}

/// Looks after `h`'s copy every [`TICK`] (or at once when `wake` fires) until `h` is cancelled.
pub async fn keep_rewind(h: Arc<Hosted>) {
    loop {
        tokio::select! {
            () = h.cancel.cancelled() => return,
            () = h.rewind_wake.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
        // Never beside an operation that stops, swaps or copies the data: it takes its turn.
        let Ok(_op) = h.op.try_lock() else {
            continue;
        };
        if let Err(e) = keep_once(&h).await {
            tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "looking after the rewind copy failed");
        }
    }
}

async fn keep_once(h: &Hosted) -> Result<()> {
    let mut keep = h.rewind.lock().await;
    let mut r = load_record(h, &mut keep).await;
    let copy = copy_of(h, &r);
    if r.window_secs == 0 {
        keep.status = None;
        if r.port.is_some() || copy_exists(&copy).await {
            discard_copy(&copy).await?;
            if h.cluster.is_healthy().await {
                drop_slot(&h.cluster).await?;
            }
            tracing::info!(instance.id = %h.id, "rewind copy removed");
            save_record(h, &mut keep, RewindRecord::default()).await?;
        }
        return Ok(());
    }
    if !h.cluster.is_healthy().await {
        return Ok(());
    }
    if keep.retry_at.is_some_and(|at| Instant::now() < at) {
        return Ok(());
    }
    let mut rebuild = r.port.is_none() || r.consistent_at.is_none() || !copy_exists(&copy).await;
    if !rebuild {
        match probe_copy(&copy).await {
            Ok(position) => {
                let live_tl = current_timeline(&h.cluster).await?;
                if position.timeline != live_tl {
                    tracing::info!(instance.id = %h.id, copy = position.timeline, live = live_tl, "rewind copy is on an old timeline; rebuilding it");
                    rebuild = true;
                } else {
                    let mut changed = false;
                    if r.applied_window != Some(r.window_secs) {
                        set_window(&copy, &h.cluster, r.window_secs).await?;
                        r.applied_window = Some(r.window_secs);
                        changed = true;
                    }
                    // A pause left by a rewind that stopped half-way (the agent died) ends here.
                    if position.paused {
                        pause_copy(&copy, false).await?;
                    }
                    let applied = r.applied_until.max(position.last_commit);
                    if applied != r.applied_until {
                        r.applied_until = applied;
                        changed = true;
                    }
                    if changed {
                        save_record(h, &mut keep, r.clone()).await?;
                    }
                    let disk = disk_bytes(&copy, &mut keep).await;
                    keep.status = Some(RewindStatus {
                        window_secs: r.window_secs,
                        state: RewindState::Ready,
                        applied_until: r.applied(),
                        timeline: Some(position.timeline),
                        disk_bytes: disk,
                        error: None,
                    });
                }
            }
            // Stopped (an agent or host restart, or a shutdown on a parameter the instance
            // raised): started again, with the instance's current settings. Still starting up:
            // looked at again next tick.
            Err(e) => {
                if !copy.is_running().await {
                    if let Err(e) = copy.start().await {
                        tracing::warn!(instance.id = %h.id, error = %format!("{e:#}"), "rewind copy did not start; rebuilding it");
                        rebuild = true;
                    }
                } else {
                    tracing::debug!(instance.id = %h.id, error = %format!("{e:#}"), "rewind copy not answering");
                }
            }
        }
    }
    if !rebuild {
        return Ok(());
    }
    keep.status = Some(RewindStatus {
        window_secs: r.window_secs,
        state: RewindState::Building,
        applied_until: None,
        timeline: None,
        disk_bytes: None,
        error: None,
    });
    // Forgotten before the build starts: a build that fails half-way leaves a directory that must
    // never be taken for a copy (a recovery reads the record).
    r.port = None;
    r.consistent_at = None;
    r.applied_until = None;
    save_record(h, &mut keep, r.clone()).await?;
    // The heartbeat reads the status meanwhile; the op lock keeps everything else out.
    drop(keep);
    let window = r.window_secs;
    let built = async {
        let copy = rewind_cluster(&h.cluster, allocate_port()?);
        let started = Instant::now();
        let consistent_at = build_copy(&h.cluster, &copy, window).await?;
        tracing::info!(instance.id = %h.id, port = copy.spec().port, window_secs = window, elapsed_ms = started.elapsed().as_millis() as u64, "rewind copy built");
        anyhow::Ok((copy.spec().port, consistent_at))
    }
    .await;
    let mut keep = h.rewind.lock().await;
    // The window may have changed during the build; the next tick applies the new one.
    let mut r = load_record(h, &mut keep).await;
    match built {
        Ok((port, consistent_at)) => {
            r.port = Some(port);
            r.applied_window = Some(window);
            r.consistent_at = Some(consistent_at);
            r.applied_until = Some(consistent_at);
            save_record(h, &mut keep, r).await?;
            keep.retry_at = None;
            keep.disk = None;
        }
        Err(e) => {
            let text: String = format!("{e:#}").chars().take(MAX_ERROR_CHARS).collect();
            tracing::warn!(instance.id = %h.id, error = %text, "rewind copy could not be built; trying again later");
            keep.status = Some(RewindStatus {
                window_secs: r.window_secs,
                state: RewindState::Failed,
                applied_until: None,
                timeline: None,
                disk_bytes: None,
                error: Some(text),
            });
            keep.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
    }
    Ok(())
}

/// The copy's size on disk, counted off the async threads at most every [`DISK_EVERY`].
async fn disk_bytes(copy: &Cluster, keep: &mut RewindKeep) -> Option<u64> {
    if let Some((bytes, at)) = keep.disk
        && at.elapsed() < DISK_EVERY
    {
        return Some(bytes);
    }
    let dir = copy.spec().data_dir.clone();
    let bytes = tokio::task::spawn_blocking(move || dir_bytes(&dir))
        .await
        .ok()?;
    keep.disk = Some((bytes, Instant::now()));
    Some(bytes)
}
