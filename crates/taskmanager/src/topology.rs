//! The guest queues the control plane owns on the broker, declared again at start-up: a broker
//! that lost them, or a deployment upgraded from queues named `guestagent.<id>`, works again
//! without waiting for the next cast to each instance.

use anyhow::Result;
use trove_common::rpc::topics;

use crate::{
    db::{hosts, instances},
    manager::TaskManager,
};

impl TaskManager {
    /// Declares every enabled host's provisioning queue and every placed instance's queue.
    pub async fn declare_guest_queues(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let enabled = hosts::enabled(&mut conn).await?;
        let placed = instances::placed(&mut conn).await?;
        drop(conn);
        for host in &enabled {
            let queue = topics::guest_host(host);
            self.bus.declare_route(&queue, &queue).await?;
        }
        for (id, host) in &placed {
            self.ensure_instance_queue(host, *id).await?;
        }
        tracing::info!(
            hosts = enabled.len(),
            instances = placed.len(),
            "guest queues declared"
        );
        Ok(())
    }
}
