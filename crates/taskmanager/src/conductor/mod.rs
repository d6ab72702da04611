//! Trove's conductor role: applies what guests report. The sender of a report is the registered
//! guest host whose broker user published it, as the broker validated (`user_id`); a report from
//! anyone else, or about an instance on another host, is refused and changes nothing.

mod accounts_applied;
mod heartbeat;
mod host_heartbeat;
mod instance_deleted;
mod overrides_applied;
mod sent;
mod transactions_listed;
mod update_access;
mod update_backup;
mod update_recovery;
mod update_restore_point;
mod update_wal;

use sqlx::PgConnection;
use trove_common::{
    amqp::{Delivered, Outcome},
    rpc::{conductor::ConductorMethod, topics},
};
use uuid::Uuid;

use crate::{
    db::{
        hosts,
        instances::{self, Instance},
    },
    manager::{TaskManager, outcome, parse_or_dead_letter},
};

/// A report the conductor will not apply: it names a host or an instance its sender does not
/// own. It is dead-lettered with one log line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl TaskManager {
    pub async fn handle_conductor(&self, delivered: Delivered) -> Outcome {
        let Delivered { message, sender } = delivered;
        let method = match parse_or_dead_letter::<ConductorMethod>(&message, topics::CONDUCTOR) {
            Ok(m) => m,
            Err(dead) => return dead,
        };
        let name = message.method.as_str();
        let host = match self.sending_host(sender.as_deref()).await {
            Ok(Some(host)) => host,
            Ok(None) => {
                tracing::warn!(
                    method = name,
                    broker.user = sender.as_deref().unwrap_or("<none>"),
                    "report from a broker user that is no registered guest host refused"
                );
                return Outcome::DeadLetter;
            }
            Err(e) => return outcome(name, Err(e)),
        };
        let host = host.as_str();
        let r = match method {
            ConductorMethod::Heartbeat {
                instance_id,
                payload,
                sent,
            } => {
                self.heartbeat(host, instance_id, payload, sent::clamp(sent))
                    .await
            }
            ConductorMethod::UpdateBackup { .. } => self.update_backup(host, method).await,
            ConductorMethod::UpdateRecovery { .. } => self.update_recovery(host, method).await,
            ConductorMethod::TransactionsListed { .. } => {
                self.transactions_listed(host, method).await
            }
            ConductorMethod::UpdateRestorePoint { .. } => {
                self.update_restore_point(host, method).await
            }
            ConductorMethod::HostHeartbeat {
                host: named,
                address,
                sent,
                public_key,
                ..
            } => {
                self.host_heartbeat(
                    host,
                    &named,
                    &address,
                    sent::clamp(sent),
                    public_key.as_ref(),
                )
                .await
            }
            ConductorMethod::UpdateWal {
                instance_id,
                sent,
                current_timeline,
                timelines,
            } => {
                self.update_wal(
                    host,
                    instance_id,
                    sent::clamp(sent),
                    current_timeline,
                    timelines,
                )
                .await
            }
            ConductorMethod::InstanceDeleted { instance_id, .. } => {
                self.instance_deleted(host, instance_id).await
            }
            ConductorMethod::UpdateAccess {
                instance_id,
                access,
                error,
                ..
            } => {
                let report = update_access::AccessReport {
                    instance_id,
                    access,
                    error,
                };
                self.access_applied(host, report).await
            }
            ConductorMethod::AccountsApplied {
                instance_id,
                op_id,
                sent,
                error,
                accounts,
            } => {
                let report = accounts_applied::AccountsReport {
                    instance_id,
                    op_id,
                    sent: sent::clamp(sent),
                    error,
                    accounts,
                };
                self.accounts_applied(host, report).await
            }
            ConductorMethod::OverridesApplied {
                instance_id,
                revision,
                restart_required,
                error,
                ..
            } => {
                let report = overrides_applied::OverridesReport {
                    instance_id,
                    revision,
                    restart_required,
                    error,
                };
                self.overrides_applied(host, report).await
            }
        };
        match r {
            Err(e) if e.downcast_ref::<Refused>().is_some() => {
                tracing::warn!(method = name, host, reason = %e, "guest report refused");
                Outcome::DeadLetter
            }
            r => outcome(name, r),
        }
    }

    /// The registered guest host whose broker user published a report, if any.
    async fn sending_host(&self, broker_user: Option<&str>) -> anyhow::Result<Option<String>> {
        let Some(user) = broker_user else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        Ok(hosts::by_broker_user(&mut conn, user).await?)
    }
}

/// An address a guest reports (for tenants to connect to, or its own): a host name or an IP
/// address, never text that would mislead whoever reads it.
pub(crate) fn check_address(address: &str) -> Result<(), Refused> {
    let ok = !address.is_empty()
        && address.len() <= 253
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(Refused(format!(
            "address '{}' is not a host name or IP address",
            address
                .chars()
                .take(64)
                .collect::<String>()
                .escape_default()
        )))
    }
}

/// The instance a guest report speaks for, locked, if it exists and is not deleted. Refused when
/// the instance is unknown or placed on another host than the sender's.
pub(crate) async fn lock_reported(
    conn: &mut PgConnection,
    sender: &str,
    instance_id: Uuid,
) -> anyhow::Result<Option<Instance>> {
    let inst = check_hosted(
        sender,
        instance_id,
        instances::lock(conn, instance_id).await?,
    )?;
    Ok((!inst.deleted).then_some(inst))
}

/// A guest may only speak for instances placed on its own host; a report about a deleted
/// instance of its own is a harmless race with the delete.
pub(crate) fn check_hosted(
    sender: &str,
    instance_id: Uuid,
    inst: Option<Instance>,
) -> Result<Instance, Refused> {
    match inst {
        None => Err(Refused(format!("no instance {instance_id} exists"))),
        Some(i) if i.host.as_deref() != Some(sender) => Err(Refused(format!(
            "instance {instance_id} is not placed on host {sender}"
        ))),
        Some(i) => Ok(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_host_names_or_ip_addresses() {
        for ok in ["127.0.0.1", "db1.example.com", "::1", "[2001:db8::1]"] {
            assert!(check_address(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "evil\nline", "x/y", &"a".repeat(254)] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }
}
