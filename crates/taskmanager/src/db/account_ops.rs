//! `account_ops` and `instance_accounts` rows: account changes in flight and what each guest
//! last reported of its server's databases and users.

use sqlx::{PgConnection, types::Json};
use trove_common::accounts::{AccountOp, Accounts};
use uuid::Uuid;

/// A stored change, locked, with its state.
pub struct LockedOp {
    pub instance_id: Uuid,
    pub state: String,
    pub op: Json<AccountOp>,
}

pub async fn lock(conn: &mut PgConnection, op_id: Uuid) -> sqlx::Result<Option<LockedOp>> {
    let row: Option<(Uuid, String, Json<AccountOp>)> =
        sqlx::query_as("SELECT instance_id, state, op FROM account_ops WHERE id = $1 FOR UPDATE")
            .bind(op_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(instance_id, state, op)| LockedOp {
        instance_id,
        state,
        op,
    }))
}

/// Moves the op to `state` (`SENT`, `DONE` or `FAILED`) with the reason for a failure.
pub async fn settle(
    conn: &mut PgConnection,
    op_id: Uuid,
    state: &str,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE account_ops SET state = $2, error = $3, updated_at = now() WHERE id = $1")
        .bind(op_id)
        .bind(state)
        .bind(error)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores `accounts` as the instance's catalog unless a report read later is already stored.
pub async fn store_reported(
    conn: &mut PgConnection,
    instance_id: Uuid,
    accounts: &Accounts,
    sent: f64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO instance_accounts (instance_id, accounts, sent) VALUES ($1, $2, $3) \
         ON CONFLICT (instance_id) DO UPDATE SET accounts = EXCLUDED.accounts, \
             sent = EXCLUDED.sent, updated_at = now() \
         WHERE instance_accounts.sent <= EXCLUDED.sent",
    )
    .bind(instance_id)
    .bind(Json(accounts))
    .bind(sent)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that root was enabled on the instance (Trove's root history: once is enough).
pub async fn record_root_enabled(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO root_enabled_history (instance_id) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(instance_id)
    .execute(conn)
    .await?;
    Ok(())
}
