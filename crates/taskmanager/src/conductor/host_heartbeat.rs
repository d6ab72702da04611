//! `host_heartbeat`: a registered guest host stays eligible for placement. It can change its
//! address and liveness, never its capacity, which is what the operator registered.

use anyhow::Result;
use chrono::{DateTime, Utc};
use trove_common::{rpc::topics, secrets::PublicKey};

use super::{Refused, check_address};
use crate::{db::hosts, manager::TaskManager};

impl TaskManager {
    pub(crate) async fn host_heartbeat(
        &self,
        sender: &str,
        named: &str,
        address: &str,
        sent: f64,
        public_key: Option<&PublicKey>,
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
        // One transaction: a host seen live is never placed on without the key it reported.
        let mut tx = self.pool.begin().await?;
        hosts::seen(&mut tx, sender, address, seen).await?;
        // The key a host reports for itself is as trustworthy as the heartbeat's sender: the
        // broker's authentication of the sender is what makes it the host's own key.
        if let Some(key) = public_key {
            hosts::set_public_key(&mut tx, sender, &key.to_base64()).await?;
        }
        tx.commit().await?;
        // The host consumes its provisioning queue; only the control plane may declare it.
        let queue = topics::guest_host(sender);
        if let Err(e) = self.bus.declare_route(&queue, &queue).await {
            tracing::warn!(host = sender, error = %format!("{e:#}"), "could not declare the host's queue");
        }
        Ok(())
    }
}
