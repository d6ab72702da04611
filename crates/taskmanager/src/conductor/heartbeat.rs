//! `heartbeat`: the service status, the endpoint, and the end of builds and restarts.

use anyhow::Result;
use chrono::{DateTime, Utc};
use trove_common::{
    fault::FaultCode,
    rpc::{RequestContext, conductor::HeartbeatPayload, guest::GuestMethod},
    status::{InstanceTask, ServiceStatus},
};
use uuid::Uuid;

use super::{check_address, lock_reported};
use crate::{
    db::{account_ops, configurations, faults, instances},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn heartbeat(
        &self,
        sender: &str,
        instance_id: Uuid,
        payload: HeartbeatPayload,
        sent: f64,
    ) -> Result<()> {
        let Some(status) = ServiceStatus::from_description(&payload.service_status) else {
            tracing::warn!(instance.id = %instance_id, status = %payload.service_status, "heartbeat with an unknown status ignored");
            return Ok(());
        };
        if let Some(address) = &payload.address {
            check_address(address)?;
        }

        let mut tx = self.pool.begin().await?;
        let Some(inst) = lock_reported(&mut tx, sender, instance_id).await? else {
            return Ok(());
        };
        if !instances::message_is_fresh(&mut tx, instance_id, "heartbeat", sent).await? {
            return Ok(());
        }
        // As in Trove, a server waiting for a restart stays RESTART_REQUIRED whatever periodic
        // heartbeats say; the report that ends a restart or a resize (both restart it) clears it.
        let restarted = matches!(payload.completes.as_deref(), Some("restart" | "resize"));
        let waiting = configurations::service_status(&mut tx, instance_id).await?
            == Some(ServiceStatus::RestartRequired);
        if waiting && !restarted && status.is_up() {
            configurations::touch_service_status(&mut tx, instance_id).await?;
        } else {
            instances::set_service_status(&mut tx, instance_id, status).await?;
        }
        if let Some(bytes) = payload.volume_used_bytes {
            configurations::set_volume_used(&mut tx, instance_id, bytes).await?;
        }
        if let (Some(addr), Some(port)) = (&payload.address, payload.port) {
            instances::set_endpoint(&mut tx, instance_id, addr, port).await?;
        }
        // A catalog the conductor will not store does not cost the instance its status.
        match payload.accounts.as_ref().map(|a| (a, a.check())) {
            Some((a, Ok(()))) => account_ops::store_reported(&mut tx, instance_id, a, sent).await?,
            Some((_, Err(why))) => {
                tracing::warn!(instance.id = %instance_id, reason = %why, "reported accounts ignored");
            }
            None => {}
        }
        instances::set_rewind_status(&mut tx, instance_id, payload.rewind.as_ref()).await?;
        // The guest keeps a copy the tenant no longer wants, or lacks one (or keeps another
        // window) the tenant asked for: a lost message or lost state; the window is sent again.
        let reported_window = payload.rewind.as_ref().map_or(0, |r| r.window_secs);
        let rewind_differs =
            status.is_up() && i64::from(reported_window) != i64::from(inst.rewind_window_secs);
        let sent_at = DateTime::<Utc>::from_timestamp_micros((sent * 1e6) as i64);
        let after_task_start = match (sent_at, inst.task_start_time) {
            (Some(s), Some(t)) => s >= t,
            _ => false,
        };
        let mut built = false;
        match (inst.task(), status) {
            (InstanceTask::Building, s) if s.is_up() => {
                instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                tracing::info!(instance.id = %instance_id, "instance is up, build finished");
                built = true;
            }
            (InstanceTask::Building, ServiceStatus::Failed) => {
                instances::set_task(&mut tx, instance_id, InstanceTask::BuildingErrorServer)
                    .await?;
                faults::record(
                    &mut tx,
                    instance_id,
                    FaultCode::PrepareFailed,
                    "The instance could not be prepared.",
                    payload
                        .error
                        .as_deref()
                        .unwrap_or("the guest agent reported a failure"),
                )
                .await?;
                tracing::warn!(instance.id = %instance_id, "instance build failed on the guest");
            }
            (InstanceTask::Rebooting, s)
                if s.is_up()
                    && after_task_start
                    && payload.completes.as_deref() == Some("restart") =>
            {
                instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
            }
            (InstanceTask::Resizing, s)
                if s.is_up()
                    && after_task_start
                    && payload.completes.as_deref() == Some("resize") =>
            {
                configurations::finish_flavor_resize(&mut tx, instance_id).await?;
                instances::set_task(&mut tx, instance_id, InstanceTask::None).await?;
                tracing::info!(instance.id = %instance_id, "flavor resize finished");
            }
            _ => {}
        }
        tx.commit().await?;
        if rewind_differs && inst.task() != InstanceTask::Building {
            self.configure_rewind(RequestContext::default(), instance_id)
                .await?;
        }
        if built {
            self.catch_up_configuration(instance_id, inst.host.as_deref())
                .await?;
        }
        Ok(())
    }

    /// The guest started the instance with the group's values as they were at placement
    /// (revision 0). A change made during the build reached no running instance: send the
    /// values as they are now.
    async fn catch_up_configuration(&self, instance_id: Uuid, host: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let (overrides, revision) = configurations::current(&mut tx, instance_id).await?;
        let Some(host) = host.filter(|_| revision > 0) else {
            return Ok(());
        };
        let method = GuestMethod::UpdateOverrides {
            overrides,
            revision,
        };
        self.commit_with_instance_cast(tx, instance_id, host, &method, RequestContext::default())
            .await?;
        tracing::info!(instance.id = %instance_id, revision, "configuration changed during the build sent");
        Ok(())
    }
}
