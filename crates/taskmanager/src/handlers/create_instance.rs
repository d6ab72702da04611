//! `create_instance`: place the instance on a guest host and tell that host to prepare it. The
//! users' passwords arrive sealed for the taskmanager and leave sealed for the chosen host.

use anyhow::Result;
use sqlx::{PgConnection, Postgres, Transaction};
use trove_common::{
    fault::FaultCode,
    rpc::{
        RequestContext,
        guest::{GuestMethod, RecoveryTarget},
        taskmanager::{DatabaseSpec, UserSpec},
        topics,
    },
    secrets::{Password, PublicKey, user_password_context},
    status::{InstanceTask, ServiceStatus},
};
use uuid::Uuid;

use crate::{
    db::{backups, configurations, faults, hosts, instances},
    manager::TaskManager,
};

/// What `create_instance` carries that the placement needs.
pub(crate) struct CreateArgs {
    pub instance_id: Uuid,
    pub memory_mb: i64,
    pub ds_version: String,
    pub backup_id: Option<Uuid>,
    pub databases: Vec<DatabaseSpec>,
    pub users: Vec<UserSpec>,
    pub restore_target: Option<RecoveryTarget>,
}

impl TaskManager {
    pub(crate) async fn create_instance(
        &self,
        ctx: RequestContext,
        args: CreateArgs,
    ) -> Result<()> {
        let CreateArgs {
            instance_id,
            memory_mb,
            ds_version,
            backup_id,
            databases,
            users,
            restore_target,
        } = args;
        let mut tx = self.pool.begin().await?;
        let Some(inst) = instances::lock(&mut tx, instance_id).await? else {
            tracing::warn!(instance.id = %instance_id, "create_instance for an unknown instance ignored");
            return Ok(());
        };
        if inst.deleted || inst.task() != InstanceTask::Building {
            return Ok(());
        }
        // Redelivery after the host was chosen: the prepare is already in the outbox, but the
        // instance's queue may not have been declared before the previous attempt stopped.
        if let Some(host) = inst.host {
            drop(tx);
            return self.ensure_instance_queue(&host, instance_id).await;
        }
        // A password that does not open now never will: fail the build instead of retrying.
        let Some(users) = self.open_users(instance_id, users) else {
            fail_build(
                tx,
                instance_id,
                FaultCode::PasswordsUnreadable,
                "The passwords of the instance's users could not be read by the control plane.",
                "The taskmanager could not open what trove-api sealed: trove-api's \
                 taskmanager_public_key must be the public half of the taskmanager's secret_key_file.",
            )
            .await?;
            tracing::error!(instance.id = %instance_id, "create_instance passwords do not open with this taskmanager's key");
            return Ok(());
        };
        let needs_key = !users.is_empty();
        let expiry = self.config.host_heartbeat_expiry_secs;
        let Some(host) = hosts::choose(&mut tx, expiry, needs_key).await? else {
            let (code, message, details) = if needs_key
                && hosts::choose(&mut tx, expiry, false).await?.is_some()
            {
                (
                    FaultCode::NoHostKey,
                    "No guest host with free capacity can receive the instance's passwords.",
                    "The live guest hosts with free capacity have reported no public key. Upgrade or restart their trove-guestagent (it reports its key in its host heartbeat), then create the instance again.",
                )
            } else {
                (
                    FaultCode::NoHostCapacity,
                    "No guest host with free capacity is available.",
                    "Register a guest host (trove-manage host-add) and start its trove-guestagent, or raise the capacity of a registered one (trove-manage host-capacity), then create the instance again.",
                )
            };
            fail_build(tx, instance_id, code, message, details).await?;
            tracing::warn!(instance.id = %instance_id, needs_key, "no guest host available");
            return Ok(());
        };
        let users = match sealed_for_host(&mut tx, &host, instance_id, users).await? {
            Ok(users) => users,
            Err(reason) => {
                fail_build(
                    tx,
                    instance_id,
                    FaultCode::SealFailed,
                    "The instance's passwords could not be sealed for its guest host.",
                    reason,
                )
                .await?;
                tracing::error!(instance.id = %instance_id, host = %host, reason, "cannot seal for the chosen host");
                return Ok(());
            }
        };
        let backup_info = match backup_id {
            None => None,
            Some(bid) => {
                let Some(location) = backups::lock(&mut tx, bid)
                    .await?
                    .and_then(backups::Backup::restorable)
                else {
                    instances::set_task(&mut tx, instance_id, InstanceTask::BuildingErrorServer)
                        .await?;
                    faults::record(
                        &mut tx,
                        instance_id,
                        FaultCode::BackupUnavailable,
                        &format!("Backup {bid} is no longer available for a restore."),
                        "",
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(());
                };
                Some(location)
            }
        };
        // The group attached at create; what it holds at this moment is what the server starts
        // with (a later change follows as its own `update_overrides`).
        let (overrides, _) = configurations::current(&mut tx, instance_id).await?;
        instances::set_host(&mut tx, instance_id, &host).await?;
        instances::set_service_status(&mut tx, instance_id, ServiceStatus::Building).await?;
        self.commit_with_cast(
            tx,
            &topics::guest_host(&host),
            &GuestMethod::Prepare {
                instance_id,
                memory_mb,
                databases,
                users,
                backup_info,
                ds_version,
                restore_target,
                access: inst.access(),
                overrides,
            },
            ctx,
        )
        .await?;
        // Declared after the commit, so a placement that did not commit leaves no queue bound
        // to the instance's topic; the guest's consumer waits for it while it prepares.
        self.ensure_instance_queue(&host, instance_id).await?;
        tracing::info!(instance.id = %instance_id, host = %host, "instance placed, prepare sent");
        Ok(())
    }

    /// The users' passwords opened with the taskmanager's key; `None` if any does not open.
    fn open_users(&self, instance_id: Uuid, users: Vec<UserSpec>) -> Option<Vec<OpenedUser>> {
        users
            .into_iter()
            .map(|u| {
                let context = user_password_context(instance_id, &u.name);
                let password = self.secret_key.open(&context, &u.password).ok()?;
                Some(OpenedUser {
                    name: u.name,
                    password,
                    databases: u.databases,
                })
            })
            .collect()
    }
}

/// A user whose password is in clear, in this process only, between opening and resealing.
struct OpenedUser {
    name: String,
    password: Password,
    databases: Vec<DatabaseSpec>,
}

/// The users with their passwords sealed for `host`'s public key; `Err` says why that is not
/// possible (the host has no usable key) without naming any secret.
async fn sealed_for_host(
    conn: &mut PgConnection,
    host: &str,
    instance_id: Uuid,
    users: Vec<OpenedUser>,
) -> Result<Result<Vec<UserSpec>, &'static str>> {
    if users.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let Some(text) = hosts::public_key(conn, host).await? else {
        return Ok(Err("the chosen guest host has no public key"));
    };
    let Ok(key) = text.parse::<PublicKey>() else {
        return Ok(Err(
            "the chosen guest host's recorded public key is not valid",
        ));
    };
    Ok(Ok(users
        .into_iter()
        .map(|u| UserSpec {
            password: key.seal(&user_password_context(instance_id, &u.name), &u.password),
            name: u.name,
            databases: u.databases,
        })
        .collect()))
}

/// Ends a build that cannot succeed: the task shows the error, the service FAILED, and the fault
/// says why.
async fn fail_build(
    mut tx: Transaction<'_, Postgres>,
    instance_id: Uuid,
    code: FaultCode,
    message: &str,
    details: &str,
) -> Result<()> {
    instances::set_task(&mut tx, instance_id, InstanceTask::BuildingErrorServer).await?;
    instances::set_service_status(&mut tx, instance_id, ServiceStatus::Failed).await?;
    faults::record(&mut tx, instance_id, code, message, details).await?;
    tx.commit().await?;
    Ok(())
}
