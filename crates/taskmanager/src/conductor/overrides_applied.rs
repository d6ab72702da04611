//! `overrides_applied`: the guest applied (or could not apply) the instance's configuration
//! group. A parameter that only takes effect at a restart leaves the instance in Trove's
//! RESTART_REQUIRED until `instance restart`; a failure is the instance's fault to read.

use anyhow::Result;
use trove_common::{fault::FaultCode, status::ServiceStatus};
use uuid::Uuid;

use super::lock_reported;
use crate::{
    db::{configurations, faults, instances},
    manager::TaskManager,
};

/// What the guest reported.
pub(crate) struct OverridesReport {
    pub instance_id: Uuid,
    pub revision: i64,
    pub restart_required: bool,
    pub error: Option<String>,
}

impl TaskManager {
    pub(crate) async fn overrides_applied(
        &self,
        sender: &str,
        report: OverridesReport,
    ) -> Result<()> {
        let OverridesReport {
            instance_id,
            revision,
            restart_required,
            error,
        } = report;
        let mut tx = self.pool.begin().await?;
        if lock_reported(&mut tx, sender, instance_id).await?.is_none() {
            return Ok(());
        }
        // Only the report for the configuration the control plane holds now settles anything.
        if !configurations::set_applied(&mut tx, instance_id, revision).await? {
            tracing::info!(instance.id = %instance_id, revision, "report for a configuration that is no longer current ignored");
            return Ok(());
        }
        match error {
            None => {
                faults::clear_codes(&mut tx, instance_id, &[FaultCode::ConfigurationFailed])
                    .await?;
                // Never cleared here: only a restart makes the pending values take effect.
                if restart_required {
                    instances::set_service_status(
                        &mut tx,
                        instance_id,
                        ServiceStatus::RestartRequired,
                    )
                    .await?;
                }
                tracing::info!(instance.id = %instance_id, revision, restart_required, "configuration applied");
            }
            Some(why) => {
                faults::record(
                    &mut tx,
                    instance_id,
                    FaultCode::ConfigurationFailed,
                    "The configuration group could not be applied; the instance runs with its previous settings.",
                    &why,
                )
                .await?;
                tracing::warn!(instance.id = %instance_id, revision, error = %why, "configuration not applied");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
