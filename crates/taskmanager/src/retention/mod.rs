//! Retention (docs/object-store.md, "Retention"): every `retention.interval_secs` the
//! taskmanager deletes the backups an instance's policy no longer keeps, removes the WAL no kept
//! backup needs, and removes a deleted instance's objects once its window has passed since the
//! delete. Backups a recovery or restore uses are never touched.

mod plan;
mod wal;

use std::{collections::HashSet, time::Duration};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use trove_common::{
    recovery::{WalTimeline, lineage, lsn_segment, segment_number, serves_lineage},
    retention::Policy,
    store::{layout, wal_keys::StoredWal},
};
use uuid::Uuid;

pub use plan::{Decision, WalCut, decide, wal_cut};
pub use wal::segment_name;

use crate::{
    db::retention::{self, BackupFacts, Candidate},
    manager::TaskManager,
};

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// Instances looked at.
    pub instances: usize,
    /// Backups deleted because the policy no longer keeps them, or with their deleted instance.
    pub backups_expired: Vec<Uuid>,
    /// WAL objects removed, and what they took.
    pub wal_objects: u64,
    pub wal_bytes: u64,
    /// Deleted instances whose objects are all gone now.
    pub purged: Vec<Uuid>,
    /// Instances left for a later pass: another taskmanager had them, or a deleted instance's
    /// backup is being restored.
    pub deferred: Vec<Uuid>,
    /// Instances whose pruning failed (logged; the pass went on with the others).
    pub failed: Vec<Uuid>,
}

impl PassReport {
    fn changed_anything(&self) -> bool {
        !self.backups_expired.is_empty() || self.wal_objects > 0 || !self.purged.is_empty()
    }
}

/// The backups that serve the lineage the instance runs on now (the API's rule for its window);
/// all of them while its timeline is not known.
fn current_lineage(
    backups: &[BackupFacts],
    (current, timelines): (Option<u32>, Vec<WalTimeline>),
) -> HashSet<Uuid> {
    let Some(current) = current else {
        return backups.iter().map(|b| b.id).collect();
    };
    let lineage = lineage(current, &timelines);
    backups
        .iter()
        .filter(|b| {
            let tli = b.timeline.and_then(|t| u32::try_from(t).ok());
            serves_lineage(tli, b.stop_lsn.as_deref(), &lineage, &timelines)
        })
        .map(|b| b.id)
        .collect()
}

impl TaskManager {
    /// Runs a pass every `retention.interval_secs` until `cancel`.
    pub async fn run_retention(&self, cancel: CancellationToken) {
        let period = Duration::from_secs(self.config.retention.interval_secs);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            match self.retention_pass(None, &cancel).await {
                Ok(r) if r.changed_anything() => tracing::info!(
                    backups = r.backups_expired.len(),
                    wal_objects = r.wal_objects,
                    wal_bytes = r.wal_bytes,
                    purged = r.purged.len(),
                    "retention pass removed expired objects"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "retention pass failed"),
            }
        }
    }

    /// Writes the configured default policy where the API reads it.
    pub async fn publish_retention_default(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        retention::publish_default(&mut conn, self.config.retention.policy())
            .await
            .context("writing the default retention policy")
    }

    /// One pass over every instance (or only `only`), each in turn; stops between instances
    /// when `cancel` is cancelled. A failure on one instance is logged and the pass goes on.
    pub async fn retention_pass(
        &self,
        only: Option<Uuid>,
        cancel: &CancellationToken,
    ) -> Result<PassReport> {
        self.publish_retention_default().await?;
        let default = self.config.retention.policy();
        let (now, candidates) = {
            let mut conn = self.pool.acquire().await?;
            retention::candidates(&mut conn, only).await?
        };
        let mut report = PassReport::default();
        for c in &candidates {
            if cancel.is_cancelled() {
                break;
            }
            report.instances += 1;
            let policy = c.policy(default);
            if let Err(e) = self.retain(c, policy, now, &mut report).await {
                tracing::warn!(instance.id = %c.id, error = %format!("{e:#}"), "retention of the instance failed; retried next pass");
                report.failed.push(c.id);
            }
        }
        Ok(report)
    }

    async fn retain(
        &self,
        c: &Candidate,
        policy: Policy,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<()> {
        let window = chrono::Duration::seconds(policy.window_secs);
        let cutoff = now - window;
        match c.deleted_at {
            Some(deleted_at) if deleted_at + window <= now => self.purge(c.id, report).await,
            _ => self.prune(c.id, policy, cutoff, report).await,
        }
    }

    /// Deletes the backups the policy no longer keeps, then the WAL the kept ones do not need.
    async fn prune(
        &self,
        id: Uuid,
        policy: Policy,
        cutoff: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if !retention::try_lock_instance(&mut tx, id).await? {
            report.deferred.push(id);
            return Ok(());
        }
        let backups = retention::lock_backups(&mut tx, id).await?;
        let in_use: HashSet<Uuid> = retention::in_use(&mut tx, id).await?.into_iter().collect();
        let on_lineage = current_lineage(&backups, retention::history(&mut tx, id).await?);
        let d = decide(&backups, &in_use, &on_lineage, policy, cutoff);
        if !d.expired.is_empty() {
            retention::mark_deleted(&mut tx, &d.expired).await?;
        }
        tx.commit().await?;
        for backup in &d.expired {
            tracing::info!(instance.id = %id, backup.id = %backup, "backup expired by retention");
            self.remove_backup_objects(*backup).await?;
            report.backups_expired.push(*backup);
        }
        let running = backups.iter().any(|b| b.state.is_running());
        let mut starts = Vec::with_capacity(d.kept.len());
        for b in backups.iter().filter(|b| d.kept.contains(&b.id)) {
            starts.push(self.start_segment(b).await?);
        }
        self.prune_wal(id, wal_cut(&starts, running, cutoff), report)
            .await
    }

    /// Where a backup's WAL starts: the control database's `start_lsn`, else the manifest's.
    async fn start_segment(&self, b: &BackupFacts) -> Result<Option<u64>> {
        if let Some(seg) = b.start_lsn.as_deref().and_then(lsn_segment) {
            return Ok(Some(seg));
        }
        let key = layout::backup_manifest(b.id);
        let Some(bytes) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let manifest: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(backup.id = %b.id, error = %e, "unreadable backup manifest; its WAL is kept");
                return Ok(None);
            }
        };
        Ok(manifest["start_lsn"].as_str().and_then(lsn_segment))
    }

    /// Removes the WAL objects `cut` allows, then raises each timeline's `first_segment` so the
    /// window shows what the store still holds.
    async fn prune_wal(&self, id: Uuid, cut: WalCut, report: &mut PassReport) -> Result<()> {
        let wal_dir = layout::wal_dir(id);
        let known = {
            let mut conn = self.pool.acquire().await?;
            retention::timelines(&mut conn, id).await?
        };
        let pruning = match cut {
            WalCut::Nothing => return Ok(()),
            WalCut::Below(cut) => {
                // The store is listed only when the cut passed what the guest last reported:
                // a listing of a week of WAL is not free, and the cut moves about once a backup.
                let reported_above = |first: &Option<String>| {
                    first
                        .as_deref()
                        .is_none_or(|f| segment_number(f).is_some_and(|n| n >= cut))
                };
                if !known.is_empty() && known.iter().all(|t| reported_above(&t.first_segment)) {
                    return Ok(());
                }
                let entries = self.store.list(&wal_dir).await?;
                let tlis: Vec<u32> = known
                    .iter()
                    .filter_map(|t| u32::try_from(t.timeline).ok())
                    .collect();
                wal::below(&StoredWal::from_listing(&wal_dir, &entries), &tlis, cut)
            }
            WalCut::WrittenBefore(before) => {
                let entries = self.store.list(&wal_dir).await?;
                let stored = StoredWal::from_listing(&wal_dir, &entries);
                wal::written_before(&stored, &entries, before)
            }
        };
        self.store
            .delete_many(&pruning.keys)
            .await
            .with_context(|| format!("removing expired WAL from {wal_dir}/"))?;
        if !pruning.keys.is_empty() {
            tracing::info!(instance.id = %id, objects = pruning.keys.len(), bytes = pruning.bytes, "WAL no kept backup needs removed");
        }
        report.wal_objects += pruning.keys.len() as u64;
        report.wal_bytes += pruning.bytes;
        let mut tx = self.pool.begin().await?;
        for row in retention::lock_timelines(&mut tx, id).await? {
            let floor = u32::try_from(row.timeline)
                .ok()
                .and_then(|t| pruning.floors.get(&t));
            let (Some(floor), Some(first)) = (floor, row.first_segment.as_deref()) else {
                continue;
            };
            if first.to_ascii_uppercase() >= *floor {
                continue;
            }
            let gaps = wal::gaps_from(&row.gaps.0, floor);
            retention::set_floor(&mut tx, id, row.timeline, floor, &gaps).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A deleted instance whose window has passed since the delete: every backup and all its
    /// WAL go, unless one of its backups is being restored right now.
    async fn purge(&self, id: Uuid, report: &mut PassReport) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if !retention::try_lock_instance(&mut tx, id).await? {
            report.deferred.push(id);
            return Ok(());
        }
        let backups = retention::lock_backups(&mut tx, id).await?;
        if !retention::in_use(&mut tx, id).await?.is_empty() {
            tracing::info!(instance.id = %id, "a backup of the deleted instance is being restored; its objects stay for now");
            report.deferred.push(id);
            return Ok(());
        }
        let mut ids: Vec<Uuid> = backups.iter().map(|b| b.id).collect();
        if !ids.is_empty() {
            retention::mark_deleted(&mut tx, &ids).await?;
        }
        // Earlier removals that failed are tried again, so nothing is left behind.
        ids.extend(retention::delete_failed(&mut tx, id).await?);
        tx.commit().await?;
        let mut all_removed = true;
        for backup in &ids {
            all_removed &= self.remove_backup_objects(*backup).await?;
        }
        report.backups_expired.extend(backups.iter().map(|b| b.id));
        let wal_dir = layout::wal_dir(id);
        let wal = self
            .store
            .delete_prefix(&wal_dir)
            .await
            .with_context(|| format!("removing {wal_dir}/"))?;
        report.wal_objects += wal.objects;
        report.wal_bytes += wal.bytes;
        if !all_removed {
            bail!("some backups of the deleted instance could not be removed");
        }
        let mut tx = self.pool.begin().await?;
        retention::mark_purged(&mut tx, id).await?;
        tx.commit().await?;
        tracing::info!(instance.id = %id, backups = ids.len(), wal_objects = wal.objects, "deleted instance's backups and WAL removed at the end of its retention");
        report.purged.push(id);
        Ok(())
    }
}
