//! Periodic reports: the host's own heartbeat (liveness and address; its capacity is what the
//! operator registered) and one status heartbeat per instance.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use trove_common::{
    rpc::conductor::{ConductorMethod, HeartbeatPayload},
    status::ServiceStatus,
    timefmt::epoch_seconds,
};

use crate::{agent::Agent, hosted::Hosted};

/// How long an unchanged catalog goes unreported at most.
const ACCOUNTS_REPEAT: Duration = Duration::from_secs(60);

impl Agent {
    pub async fn run_heartbeats(self: Arc<Self>) {
        let period = Duration::from_millis(self.config.heartbeat_interval_ms);
        loop {
            self.report_best_effort(
                ConductorMethod::HostHeartbeat {
                    host: self.config.host.clone(),
                    address: self.config.address.clone(),
                    capacity: None,
                    sent: epoch_seconds(Utc::now()),
                    public_key: Some(self.secret_key.public_key()),
                },
                None,
            )
            .await;
            let hosted: Vec<Arc<Hosted>> = self.instances.lock().await.values().cloned().collect();
            for h in hosted {
                // A heartbeat taken while the server is deliberately down (restart, recovery
                // cut-over) would only show a transient SHUTDOWN; that operation reports itself.
                if h.is_disrupted() {
                    continue;
                }
                self.send_status(&h, None, None, false).await;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    /// Probes the server and sends its status with the endpoint tenants use.
    /// `reliable` for the report that ends an operation (prepare, restart), which must arrive.
    pub async fn send_status(
        &self,
        h: &Hosted,
        error: Option<String>,
        request_id: Option<String>,
        reliable: bool,
    ) {
        self.send_status_completing(h, error, None, request_id, reliable)
            .await
    }

    /// Like [`Agent::send_status`], naming the operation the report concludes.
    pub async fn send_status_completing(
        &self,
        h: &Hosted,
        error: Option<String>,
        completes: Option<&str>,
        request_id: Option<String>,
        reliable: bool,
    ) {
        let status = if error.is_some() {
            ServiceStatus::Failed
        } else if h.cluster.is_healthy().await {
            ServiceStatus::Healthy
        } else if h.cluster.is_running().await {
            ServiceStatus::Running
        } else {
            ServiceStatus::Shutdown
        };
        let accounts = if status == ServiceStatus::Healthy {
            self.accounts_if_due(h).await
        } else {
            None
        };
        // What the data takes on disk, for `volume.used`; counted off the async threads.
        let data_dir = h.cluster.spec().data_dir.clone();
        let volume_used_bytes =
            tokio::task::spawn_blocking(move || crate::postgres::dir_bytes(&data_dir))
                .await
                .ok();
        let msg = ConductorMethod::Heartbeat {
            instance_id: h.id,
            payload: HeartbeatPayload {
                service_status: status.description().to_string(),
                address: Some(self.config.address.clone()),
                port: Some(h.port()),
                error,
                completes: completes.map(str::to_string),
                accounts,
                volume_used_bytes,
                rewind: h.rewind.lock().await.status.clone(),
            },
            sent: epoch_seconds(Utc::now()),
        };
        if reliable {
            self.report(msg, request_id).await
        } else {
            self.report_best_effort(msg, request_id).await
        }
    }

    /// The server's databases and users when they changed since the last report or
    /// [`ACCOUNTS_REPEAT`] passed (a lost report is repaired), else `None`.
    async fn accounts_if_due(&self, h: &Hosted) -> Option<trove_common::accounts::Accounts> {
        let now = h.cluster.read_accounts().await.ok()?;
        let mut last = h.last_accounts.lock().await;
        let due = match &*last {
            Some((a, at)) => *a != now || at.elapsed() >= ACCOUNTS_REPEAT,
            None => true,
        };
        if !due {
            return None;
        }
        *last = Some((now.clone(), Instant::now()));
        Some(now)
    }
}
