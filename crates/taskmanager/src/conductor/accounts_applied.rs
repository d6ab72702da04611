//! `accounts_applied`: the guest applied (or could not apply) an account change; this settles
//! the op the API waits on and stores what the server holds now.

use anyhow::Result;
use trove_common::accounts::{AccountOp, Accounts};
use uuid::Uuid;

use super::{Refused, lock_reported};
use crate::{db::account_ops, manager::TaskManager};

/// What the guest reported.
pub(crate) struct AccountsReport {
    pub instance_id: Uuid,
    pub op_id: Uuid,
    pub sent: f64,
    pub error: Option<String>,
    pub accounts: Option<Accounts>,
}

/// Longest error text kept: the server's message, never a dump.
const MAX_ERROR_CHARS: usize = 500;

impl TaskManager {
    pub(crate) async fn accounts_applied(&self, sender: &str, r: AccountsReport) -> Result<()> {
        if let Some(a) = &r.accounts {
            a.check().map_err(Refused)?;
        }
        let mut tx = self.pool.begin().await?;
        if lock_reported(&mut tx, sender, r.instance_id)
            .await?
            .is_none()
        {
            return Ok(());
        }
        if let Some(a) = &r.accounts {
            account_ops::store_reported(&mut tx, r.instance_id, a, r.sent).await?;
        }
        let Some(row) = account_ops::lock(&mut tx, r.op_id).await? else {
            tx.commit().await?;
            return Ok(());
        };
        // Only the instance's own ops, and only once.
        if row.instance_id != r.instance_id || !matches!(row.state.as_str(), "SENT" | "PENDING") {
            tx.commit().await?;
            return Ok(());
        }
        match &r.error {
            None => {
                account_ops::settle(&mut tx, r.op_id, "DONE", None).await?;
                if matches!(row.op.0, AccountOp::EnableRoot { .. }) {
                    account_ops::record_root_enabled(&mut tx, r.instance_id).await?;
                }
            }
            Some(e) => {
                let shown: String = e.chars().take(MAX_ERROR_CHARS).collect();
                account_ops::settle(&mut tx, r.op_id, "FAILED", Some(&shown)).await?;
                tracing::info!(instance.id = %r.instance_id, op.id = %r.op_id, error = %shown, "account change refused by the server");
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
