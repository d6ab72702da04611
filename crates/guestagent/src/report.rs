//! Casts from the guest to the conductor. The guest has no database, so a report that cannot be
//! sent is retried a few times with backoff before it is given up (and logged).

use std::time::Duration;

use trove_common::rpc::{RequestContext, RpcMessage, conductor::ConductorMethod, topics};

use crate::agent::Agent;

impl Agent {
    pub fn context(&self, request_id: Option<String>) -> RequestContext {
        RequestContext {
            request_id,
            guest_host: Some(self.config.host.clone()),
            ..Default::default()
        }
    }

    pub async fn report(&self, method: ConductorMethod, request_id: Option<String>) {
        let msg = RpcMessage::new(&method, self.context(request_id));
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=5 {
            match self.bus.publish(topics::CONDUCTOR, &msg).await {
                Ok(()) => return,
                Err(e) if attempt < 5 => {
                    tracing::warn!(method = %msg.method, attempt, error = %format!("{e:#}"), "report not sent, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::error!(method = %msg.method, error = %format!("{e:#}"), "report lost after retries");
                }
            }
        }
    }
}
