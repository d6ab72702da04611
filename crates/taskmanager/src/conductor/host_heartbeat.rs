//! `host_heartbeat`: guest hosts register and stay eligible for placement.

use anyhow::Result;
use chrono::{DateTime, Utc};
use trove_common::secrets::PublicKey;

use crate::{db::hosts, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn host_heartbeat(
        &self,
        sender: Option<&str>,
        host: &str,
        address: &str,
        capacity: i32,
        sent: f64,
        public_key: Option<&PublicKey>,
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
        // The key a host reports for itself is as trustworthy as the heartbeat's sender: the
        // broker's authentication of the sender is what makes it the host's own key.
        if let Some(key) = public_key {
            hosts::set_public_key(&mut conn, host, &key.to_base64()).await?;
        }
        Ok(())
    }
}
