//! `apply_accounts`: forward a stored database, user, grant or root change to the instance's
//! guest, with its passwords opened with the taskmanager's key and sealed again for the host.

use anyhow::Result;
use trove_common::{
    accounts::AccountOp,
    rpc::{RequestContext, guest::GuestMethod},
    secrets::{PublicKey, user_password_context},
};
use uuid::Uuid;

use crate::{
    db::{account_ops, hosts, instances},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn apply_accounts(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
        op_id: Uuid,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let Some(inst) = instances::lock(&mut tx, instance_id).await? else {
            return Ok(());
        };
        // A redelivery after the op was forwarded or settled finds nothing to do.
        let Some(row) = account_ops::lock(&mut tx, op_id).await? else {
            tracing::warn!(op.id = %op_id, "apply_accounts for an unknown op ignored");
            return Ok(());
        };
        if row.state != "PENDING" || row.instance_id != instance_id {
            return Ok(());
        }
        let mut op = row.op.0;
        let host = match (inst.deleted, inst.host.clone()) {
            (false, Some(h)) => h,
            _ => {
                account_ops::settle(
                    &mut tx,
                    op_id,
                    "FAILED",
                    Some("The instance is not running."),
                )
                .await?;
                tx.commit().await?;
                return Ok(());
            }
        };
        if let Err(why) = self.reseal(&mut tx, &host, instance_id, &mut op).await? {
            account_ops::settle(&mut tx, op_id, "FAILED", Some(why)).await?;
            tx.commit().await?;
            tracing::error!(instance.id = %instance_id, op.id = %op_id, reason = why, "account change not forwarded");
            return Ok(());
        }
        account_ops::settle(&mut tx, op_id, "SENT", None).await?;
        let kind = op.kind();
        let method = GuestMethod::ApplyAccounts { op_id, op };
        self.commit_with_instance_cast(tx, instance_id, &host, &method, ctx)
            .await?;
        tracing::info!(instance.id = %instance_id, op.id = %op_id, op.kind = kind, "account change sent to the guest");
        Ok(())
    }

    /// Opens each password of `op` (sealed by trove-api for this taskmanager) and seals it for
    /// `host`; `Err` says, without naming a secret, why that is not possible.
    async fn reseal(
        &self,
        conn: &mut sqlx::PgConnection,
        host: &str,
        instance_id: Uuid,
        op: &mut AccountOp,
    ) -> Result<Result<(), &'static str>> {
        let sealed = op.sealed_mut();
        if sealed.is_empty() {
            return Ok(Ok(()));
        }
        let Some(key) = hosts::public_key(conn, host)
            .await?
            .and_then(|text| text.parse::<PublicKey>().ok())
        else {
            return Ok(Err(
                "The instance's guest host has no valid public key for passwords.",
            ));
        };
        for (user, value) in sealed {
            let context = user_password_context(instance_id, &user);
            let Ok(password) = self.secret_key.open(&context, value) else {
                return Ok(Err(
                    "The password could not be read by the control plane (trove-api's taskmanager_public_key does not match).",
                ));
            };
            *value = key.seal(&context, &password);
        }
        Ok(Ok(()))
    }
}
