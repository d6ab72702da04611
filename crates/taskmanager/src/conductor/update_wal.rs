//! `update_wal`: what the store holds of an instance's WAL, per timeline. The recoverable window
//! the API shows is computed from these rows.

use anyhow::Result;
use sqlx::types::Json;
use trove_common::rpc::conductor::WalTimeline;
use uuid::Uuid;

use super::lock_reported;
use crate::{db::instances, manager::TaskManager};

impl TaskManager {
    pub async fn update_wal(
        &self,
        sender: &str,
        instance_id: Uuid,
        sent: f64,
        current_timeline: u32,
        timelines: Vec<WalTimeline>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if lock_reported(&mut tx, sender, instance_id).await?.is_none() {
            return Ok(());
        }
        if !instances::message_is_fresh(&mut tx, instance_id, "update_wal", sent).await? {
            return Ok(());
        }
        for t in &timelines {
            // `first_segment` never moves back: retention raises it when it removes WAL, and a
            // report the guest made before that removal still names the old first segment. Gaps
            // wholly below it are gone with it. Segment names of one timeline are fixed-width
            // hex, so they compare as bytes (`COLLATE "C"`).
            sqlx::query(
                r#"INSERT INTO wal_timelines (instance_id, timeline, parent_timeline, switch_lsn,
                 first_segment, last_segment, gaps, latest_commit, latest_lsn, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
                 ON CONFLICT (instance_id, timeline) DO UPDATE SET parent_timeline = $3,
                 switch_lsn = $4,
                 first_segment = GREATEST(wal_timelines.first_segment COLLATE "C", $5),
                 last_segment = $6,
                 gaps = (SELECT coalesce(jsonb_agg(g.gap ORDER BY g.n), '[]'::jsonb)
                         FROM jsonb_array_elements($7) WITH ORDINALITY AS g(gap, n)
                         WHERE wal_timelines.first_segment IS NULL
                            OR upper(g.gap->>1) COLLATE "C" >= upper(wal_timelines.first_segment)),
                 latest_commit = coalesce($8, wal_timelines.latest_commit), latest_lsn = $9,
                 updated = now()"#,
            )
            .bind(instance_id)
            .bind(t.timeline as i32)
            .bind(t.parent.map(|p| p as i32))
            .bind(&t.switch_lsn)
            .bind(&t.first_segment)
            .bind(&t.last_segment)
            .bind(Json(&t.gaps))
            .bind(t.latest_commit)
            .bind(&t.latest_lsn)
            .execute(&mut *tx)
            .await?;
        }
        instances::set_timeline(&mut tx, instance_id, current_timeline).await?;
        tx.commit().await?;
        Ok(())
    }
}
