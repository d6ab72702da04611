//! `apply_accounts`: one change to the server's databases, users, grants or root, reported with
//! what the server holds after it.

use std::{collections::HashMap, sync::Arc};

use chrono::Utc;
use trove_common::{
    accounts::AccountOp,
    rpc::conductor::ConductorMethod,
    secrets::{Password, user_password_context},
    timefmt::epoch_seconds,
};
use uuid::Uuid;

use crate::{agent::Agent, hosted::Hosted, postgres::AccountError};

impl Agent {
    pub(crate) async fn apply_accounts(
        &self,
        h: &Arc<Hosted>,
        op_id: Uuid,
        mut op: AccountOp,
        rid: Option<String>,
    ) {
        // Not while a recovery swaps data directories or a restart stops the server.
        let _guard = h.op.lock().await;
        let kind = op.kind();
        let error = match self.open_passwords(h, &mut op) {
            Err(why) => Some(why),
            Ok(passwords) => match h.cluster.apply_account_op(&op, &passwords).await {
                Ok(()) => None,
                Err(AccountError::Refused(why)) => Some(why),
                Err(AccountError::Internal(e)) => {
                    tracing::warn!(instance.id = %h.id, op.id = %op_id, error = %format!("{e:#}"), "account change failed");
                    Some("The instance could not apply the change; the server may be down.".into())
                }
            },
        };
        match &error {
            None => {
                tracing::info!(instance.id = %h.id, op.id = %op_id, op.kind = kind, "account change applied")
            }
            Some(why) => {
                tracing::info!(instance.id = %h.id, op.id = %op_id, op.kind = kind, reason = %why, "account change refused")
            }
        }
        let accounts = self.read_accounts(h).await;
        self.report(
            ConductorMethod::AccountsApplied {
                instance_id: h.id,
                op_id,
                sent: epoch_seconds(Utc::now()),
                error,
                accounts,
            },
            rid,
        )
        .await;
    }

    /// The op's passwords, opened with this host's key, by user name.
    fn open_passwords(
        &self,
        h: &Hosted,
        op: &mut AccountOp,
    ) -> Result<HashMap<String, Password>, String> {
        op.sealed_mut()
            .into_iter()
            .map(|(user, sealed)| {
                let context = user_password_context(h.id, &user);
                match self.secret_key.open(&context, sealed) {
                    Ok(p) => Ok((user, p)),
                    Err(_) => Err(format!(
                        "The password of {user} could not be read on the instance's host."
                    )),
                }
            })
            .collect()
    }

    /// What the server holds now, remembered as reported; `None` when it cannot be read.
    pub(crate) async fn read_accounts(
        &self,
        h: &Hosted,
    ) -> Option<trove_common::accounts::Accounts> {
        match h.cluster.read_accounts().await {
            Ok(a) => {
                *h.last_accounts.lock().await = Some((a.clone(), std::time::Instant::now()));
                Some(a)
            }
            Err(e) => {
                tracing::debug!(instance.id = %h.id, error = %format!("{e:#}"), "accounts not read");
                None
            }
        }
    }
}
