//! The one path every database, user, grant and root change takes from the API: the change is
//! stored in `account_ops` with its message in the outbox, in the handler's transaction; then
//! the handler waits, a bounded time, for the guest's report to settle it, so a `user create`
//! followed by `user list` shows the user, and a refusal by the server reaches the client.

use std::time::Duration;

use sqlx::{PgConnection, Postgres, Transaction, types::Json};
use trove_common::{
    accounts::{AccountOp, Accounts},
    rpc::taskmanager::TaskManagerMethod,
    secrets::{Password, user_password_context},
};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    routes::dispatch::Dispatch,
    state::AppState,
};

/// How often a waiting handler looks at its op: well under the guest's time to apply one.
const POLL: Duration = Duration::from_millis(50);

/// How a submitted change ended for the client.
#[derive(Debug)]
pub enum Settled {
    Done,
    /// Still on its way after the wait; it is applied later (Trove answers 202 without waiting).
    Pending,
}

/// Stores `op` for `instance_id`, sends it, and waits up to the configured time for the guest.
/// A change the server refused is a 400 with the server's reason, as Trove's `GuestError`.
pub async fn submit(
    state: &AppState,
    dispatch: Dispatch,
    mut tx: Transaction<'_, Postgres>,
    instance_id: Uuid,
    op: AccountOp,
) -> ApiResult<Settled> {
    let op_id = Uuid::new_v4();
    sqlx::query("INSERT INTO account_ops (id, instance_id, kind, op) VALUES ($1, $2, $3, $4)")
        .bind(op_id)
        .bind(instance_id)
        .bind(op.kind())
        .bind(Json(&op))
        .execute(&mut *tx)
        .await?;
    dispatch
        .send(tx, &TaskManagerMethod::ApplyAccounts { instance_id, op_id })
        .await?;
    let until = tokio::time::Instant::now() + Duration::from_secs(state.config.guest_wait_secs);
    loop {
        let (op_state, error): (String, Option<String>) =
            sqlx::query_as("SELECT state, error FROM account_ops WHERE id = $1")
                .bind(op_id)
                .fetch_one(&state.pool)
                .await?;
        match op_state.as_str() {
            "DONE" => return Ok(Settled::Done),
            "FAILED" => {
                return Err(ApiError::BadRequest(error.unwrap_or_else(|| {
                    "The instance could not apply the change.".into()
                })));
            }
            _ if tokio::time::Instant::now() >= until => return Ok(Settled::Pending),
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// `password` sealed for the taskmanager, bound to the instance and user.
pub fn seal(
    state: &AppState,
    instance_id: Uuid,
    user: &str,
    password: &Password,
) -> ApiResult<trove_common::secrets::Sealed> {
    let key = state
        .config
        .taskmanager_public_key
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("taskmanager_public_key is not configured"))?;
    Ok(key.seal(&user_password_context(instance_id, user), password))
}

/// What the instance's guest last reported; empty before its first report.
pub async fn reported(conn: &mut PgConnection, instance_id: Uuid) -> ApiResult<Accounts> {
    let row: Option<(Json<Accounts>,)> =
        sqlx::query_as("SELECT accounts FROM instance_accounts WHERE instance_id = $1")
            .bind(instance_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(Json(a),)| a).unwrap_or_default())
}
