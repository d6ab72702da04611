//! Casts from the guest to the conductor. The guest has no database, so an outcome that cannot be
//! sent is retried with backoff until a deadline; periodic reports are sent once. The conductor
//! knows the sender from the broker user the message is published as, not from the context.

use std::time::Duration;

use trove_common::rpc::{RequestContext, RpcMessage, conductor::ConductorMethod, topics};

use crate::agent::Agent;

impl Agent {
    /// The context of a report. `guest_host` only helps a reader of the message: the conductor
    /// never trusts it.
    pub fn context(&self, request_id: Option<String>) -> RequestContext {
        RequestContext {
            request_id,
            guest_host: Some(self.config.host.clone()),
            ..Default::default()
        }
    }

    /// Sends a report that matters (an outcome): retried with backoff for up to ten minutes,
    /// because the message that asked for the work is already acknowledged.
    pub async fn report(&self, method: ConductorMethod, request_id: Option<String>) {
        self.send_report(method, request_id, Duration::from_secs(600))
            .await
    }

    /// Sends a periodic report (heartbeat, progress); the next one replaces a lost one.
    pub async fn report_best_effort(&self, method: ConductorMethod, request_id: Option<String>) {
        self.send_report(method, request_id, Duration::ZERO).await
    }

    async fn send_report(
        &self,
        method: ConductorMethod,
        request_id: Option<String>,
        patience: Duration,
    ) {
        let msg = RpcMessage::new(&method, self.context(request_id));
        let deadline = tokio::time::Instant::now() + patience;
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.bus.publish(topics::CONDUCTOR, &msg).await {
                Ok(()) => return,
                Err(e) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::warn!(method = %msg.method, attempt, error = %format!("{e:#}"), "report not sent, retrying");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => {
                            tracing::error!(method = %msg.method, "report abandoned at shutdown");
                            return;
                        }
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    if patience.is_zero() {
                        tracing::warn!(method = %msg.method, error = %format!("{e:#}"), "periodic report not sent");
                    } else {
                        tracing::error!(method = %msg.method, error = %format!("{e:#}"), "report lost after retries");
                    }
                    return;
                }
            }
        }
    }
}
