//! Rows and objects as the API and a guest agent would have left them, for the retention tests:
//! backups with their archive and manifest in the store, and WAL segments (a chunk and a seal
//! each) and history files in the store's WAL layout.

use anyhow::Result;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use trove_common::{
    status::{BackupState, InstanceTask},
    store::{
        BlobStore, layout,
        wal_keys::{ChunkId, chunk_key, history_key, seal_key},
    },
};
use trove_taskmanager::retention::{PassReport, segment_name};
use uuid::Uuid;

use crate::support::Harness;

/// Bytes of every fake chunk.
pub const CHUNK: &[u8] = b"not really WAL, but 32 bytes....";

pub struct World {
    pub h: Harness,
}

impl World {
    pub async fn start() -> Result<World> {
        Ok(World {
            h: Harness::start().await?,
        })
    }

    pub fn store(&self) -> &BlobStore {
        &self.h.tm.store
    }

    /// An idle instance whose own policy is `window_secs` and `min_backups`.
    pub async fn instance(&self, window_secs: i64, min_backups: i32) -> Result<Uuid> {
        let id = self.h.instance(InstanceTask::None).await?;
        sqlx::query(
            "UPDATE instances SET retention_window_secs = $2, retention_min_backups = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(window_secs)
        .bind(min_backups)
        .execute(&self.h.pool)
        .await?;
        Ok(id)
    }

    /// A completed backup of `instance` that stopped `age_secs` ago and started at `start_lsn`
    /// (None: not recorded in the row, only in the manifest), with its objects in the store.
    pub async fn backup(
        &self,
        instance: Uuid,
        age_secs: i64,
        start_lsn: Option<&str>,
        manifest_start: &str,
    ) -> Result<Uuid> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO backups (id, name, tenant_id, state, instance_id, location, checksum, \
             size, start_lsn, stop_lsn, stop_time, timeline, created) \
             VALUES ($1, 'b', 'tenant-a', $2, $3, $4, 'ab12', 0.1, $5, NULL, \
             now() - make_interval(secs => $6), 1, now() - make_interval(secs => $6 + 10))",
        )
        .bind(id)
        .bind(BackupState::Completed)
        .bind(instance)
        .bind(layout::backup_archive(id))
        .bind(start_lsn)
        .bind(age_secs as f64)
        .execute(&self.h.pool)
        .await?;
        let store = self.store();
        store
            .put(&layout::backup_archive(id), Bytes::from_static(b"zstd tar"))
            .await?;
        let manifest = serde_json::json!({"backup_id": id, "start_lsn": manifest_start});
        store
            .put(
                &layout::backup_manifest(id),
                Bytes::from(serde_json::to_vec(&manifest)?),
            )
            .await?;
        Ok(id)
    }

    /// Records where `backup` stopped, on `timeline`.
    pub async fn stopped_at(&self, backup: Uuid, timeline: i32, stop_lsn: &str) -> Result<()> {
        sqlx::query("UPDATE backups SET timeline = $2, stop_lsn = $3 WHERE id = $1")
            .bind(backup)
            .bind(timeline)
            .bind(stop_lsn)
            .execute(&self.h.pool)
            .await?;
        Ok(())
    }

    /// A failed backup row created `age_secs` ago (it wrote nothing).
    pub async fn failed_backup(&self, instance: Uuid, age_secs: i64) -> Result<Uuid> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO backups (id, name, tenant_id, state, instance_id, created) \
             VALUES ($1, 'f', 'tenant-a', $2, $3, now() - make_interval(secs => $4))",
        )
        .bind(id)
        .bind(BackupState::Failed)
        .bind(instance)
        .bind(age_secs as f64)
        .execute(&self.h.pool)
        .await?;
        Ok(id)
    }

    /// Segment `segno` of timeline `tli` of `instance`'s WAL: one chunk and its seal.
    pub async fn segment(&self, instance: Uuid, tli: u32, segno: u64) -> Result<()> {
        let (wal, name) = (layout::wal_dir(instance), segment_name(tli, segno));
        let end = CHUNK.len() as u64;
        self.store()
            .put(
                &chunk_key(
                    &wal,
                    tli,
                    &name,
                    ChunkId {
                        seq: 0,
                        start: 0,
                        end,
                    },
                ),
                Bytes::from_static(CHUNK),
            )
            .await?;
        self.store()
            .put(&seal_key(&wal, tli, &name, &"0".repeat(64)), Bytes::new())
            .await
    }

    pub async fn history(&self, instance: Uuid, tli: u32) -> Result<()> {
        let key = history_key(&layout::wal_dir(instance), tli);
        self.store()
            .put(
                &key,
                Bytes::from_static(b"1\t0/6000000\tno recovery target\n"),
            )
            .await
    }

    /// A `wal_timelines` row as the guest's last report left it.
    pub async fn reported(
        &self,
        instance: Uuid,
        tli: i32,
        parent: Option<i32>,
        first: u64,
        last: u64,
        gaps: serde_json::Value,
    ) -> Result<()> {
        let name = |segno| segment_name(tli as u32, segno);
        sqlx::query(
            "INSERT INTO wal_timelines (instance_id, timeline, parent_timeline, first_segment, \
             last_segment, gaps, latest_commit, latest_lsn) \
             VALUES ($1, $2, $3, $4, $5, $6, now(), '0/9000000')",
        )
        .bind(instance)
        .bind(tli)
        .bind(parent)
        .bind(name(first))
        .bind(name(last))
        .bind(gaps)
        .execute(&self.h.pool)
        .await?;
        Ok(())
    }

    /// One retention pass over every instance.
    pub async fn pass(&self) -> Result<PassReport> {
        self.h
            .tm
            .retention_pass(None, &CancellationToken::new())
            .await
    }

    /// Which of `backups` still have their archive and manifest in the store.
    pub async fn stored_backups(&self, backups: &[Uuid]) -> Result<Vec<Uuid>> {
        let mut out = Vec::new();
        for b in backups {
            let archive = self.store().get(&layout::backup_archive(*b)).await?;
            let manifest = self.store().get(&layout::backup_manifest(*b)).await?;
            if archive.is_some() && manifest.is_some() {
                out.push(*b);
            }
        }
        Ok(out)
    }

    /// Which of `backups` the API still shows (rows not deleted).
    pub async fn visible_backups(&self, backups: &[Uuid]) -> Result<Vec<Uuid>> {
        let visible: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM backups WHERE id = ANY($1) AND NOT deleted ORDER BY created",
        )
        .bind(backups)
        .fetch_all(&self.h.pool)
        .await?;
        Ok(backups
            .iter()
            .copied()
            .filter(|b| visible.contains(b))
            .collect())
    }

    /// The WAL segments the store holds for `instance`, as (timeline, segno) with a chunk and
    /// a seal each, and its history files.
    pub async fn stored_wal(&self, instance: Uuid) -> Result<(Vec<(u32, u64)>, Vec<u32>)> {
        use trove_common::store::wal_keys::StoredWal;
        let dir = layout::wal_dir(instance);
        let wal = StoredWal::from_listing(&dir, &self.store().list(&dir).await?);
        let mut segments = Vec::new();
        let mut histories = Vec::new();
        for (tli, tl) in &wal.timelines {
            if tl.history.is_some() {
                histories.push(*tli);
            }
            for (name, seg) in &tl.segments {
                let segno = trove_common::recovery::segment_number(name).unwrap_or(u64::MAX);
                assert_eq!(seg.keys.len(), 2, "{name} lost only part of its objects");
                segments.push((*tli, segno));
            }
        }
        Ok((segments, histories))
    }

    /// (first_segment, gaps) of each reported timeline of `instance`.
    pub async fn floors(&self, instance: Uuid) -> Result<Vec<(i32, String, serde_json::Value)>> {
        Ok(sqlx::query_as(
            "SELECT timeline, first_segment, gaps FROM wal_timelines WHERE instance_id = $1 \
             ORDER BY timeline",
        )
        .bind(instance)
        .fetch_all(&self.h.pool)
        .await?)
    }
}
