//! `host_heartbeat`: guest hosts register and stay eligible for placement.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::{db::hosts, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn host_heartbeat(
        &self,
        sender: Option<&str>,
        host: &str,
        address: &str,
        capacity: i32,
        sent: f64,
    ) -> Result<()> {
        if sender != Some(host) || host.is_empty() || capacity < 0 {
            tracing::warn!(
                host,
                "host heartbeat with a mismatched sender or bad capacity ignored"
            );
            return Ok(());
        }
        let seen =
            DateTime::<Utc>::from_timestamp_micros((sent * 1e6) as i64).unwrap_or_else(Utc::now);
        // A guest clock ahead of ours must not keep a dead host eligible.
        let seen = seen.min(Utc::now());
        let mut conn = self.pool.acquire().await?;
        hosts::upsert(&mut conn, host, address, capacity, seen).await?;
        Ok(())
    }
}
