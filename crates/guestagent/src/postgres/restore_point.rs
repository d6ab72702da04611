//! `pg_create_restore_point` on the running server: a named WAL record recovery can stop at.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use trove_common::restore_point::RestorePointName;

use super::cluster::Cluster;
use super::sql::quote_literal;
use super::wal_stream::current_timeline;

/// Where a restore point was written.
pub struct Created {
    /// End of its WAL record (`X/Y`), as the function returns it.
    pub lsn: String,
    pub timeline: u32,
    pub time: DateTime<Utc>,
}

/// Writes the restore point `name`. The name is already narrow (letters, digits, `_.-`); it is
/// still quoted as a literal, so this function never depends on its caller's checks.
pub async fn create_restore_point(cluster: &Cluster, name: RestorePointName) -> Result<Created> {
    let mut conn = cluster.connect().await?;
    let sql = format!(
        "SELECT pg_create_restore_point({})::text, clock_timestamp()",
        quote_literal(name.as_str())?
    );
    let (lsn, time): (String, DateTime<Utc>) = sqlx::query_as(&sql)
        .fetch_one(&mut conn)
        .await
        .context("pg_create_restore_point")?;
    let _ = conn.close().await;
    let timeline = current_timeline(cluster).await?;
    Ok(Created {
        lsn,
        timeline,
        time,
    })
}
