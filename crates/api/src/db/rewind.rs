//! An instance's rewind window and what its guest last reported of the delayed copy.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use trove_common::rewind::RewindStatus;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RewindRow {
    pub rewind_window_secs: i32,
    pub rewind_status: Option<Json<serde_json::Value>>,
    pub rewind_reported_at: Option<DateTime<Utc>>,
}

impl RewindRow {
    /// The reported status; None if none was reported or it does not parse (older agent).
    pub fn status(&self) -> Option<RewindStatus> {
        let v = self.rewind_status.as_ref()?;
        serde_json::from_value(v.0.clone()).ok()
    }
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<RewindRow>> {
    sqlx::query_as(
        "SELECT rewind_window_secs, rewind_status, rewind_reported_at FROM instances \
         WHERE id = $1 AND NOT deleted",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn set_window(conn: &mut PgConnection, id: Uuid, secs: i32) -> sqlx::Result<()> {
    sqlx::query("UPDATE instances SET rewind_window_secs = $2, updated = now() WHERE id = $1")
        .bind(id)
        .bind(secs)
        .execute(conn)
        .await?;
    Ok(())
}
