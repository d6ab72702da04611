//! `host_heartbeat`: a registered guest host stays eligible for placement. It can change its
//! address and liveness, never its capacity, which is what the operator registered.

use anyhow::Result;
use chrono::{DateTime, Utc};
use trove_common::rpc::topics;

use super::{Refused, check_address};
use crate::{db::hosts, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn host_heartbeat(
        &self,
        sender: &str,
        named: &str,
        address: &str,
        sent: f64,
    ) -> Result<()> {
        if named != sender {
            return Err(Refused(format!(
                "host heartbeat of host {sender} names host {named}"
            ))
            .into());
        }
        check_address(address)?;
        let seen =
            DateTime::<Utc>::from_timestamp_micros((sent * 1e6) as i64).unwrap_or_else(Utc::now);
        let mut conn = self.pool.acquire().await?;
        hosts::seen(&mut conn, sender, address, seen).await?;
        // The host consumes its provisioning queue; only the control plane may declare it.
        let queue = topics::guest_host(sender);
        if let Err(e) = self.bus.declare_route(&queue, &queue).await {
            tracing::warn!(host = sender, error = %format!("{e:#}"), "could not declare the host's queue");
        }
        Ok(())
    }
}
