//! `GET|POST|DELETE /instances/{id}/root`: the instance administrator `root`, with a password
//! generated here (or given) and shown once; `GET` says whether root was ever enabled, as Trove.

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use trove_common::{
    accounts::{AccountOp, ROOT_USER},
    secrets::Password,
};
use uuid::Uuid;

use super::{lock_available, visible};
use crate::{
    account_ops,
    error::{ApiError, ApiResult},
    extract::MaybeJsonBody,
    routes::{dispatch::Dispatch, table::Routes},
    state::AppState,
    validate,
};

pub fn routes() -> Routes {
    let root = "/v1.0/{tenant}/instances/{id}/root";
    Routes::new()
        .add(Method::GET, root, show_root)
        .add(Method::POST, root, enable_root)
        .add(Method::DELETE, root, disable_root)
}

async fn ever_enabled(conn: &mut sqlx::PgConnection, id: Uuid) -> ApiResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM root_enabled_history WHERE instance_id = $1)",
    )
    .bind(id)
    .fetch_one(conn)
    .await?)
}

async fn show_root(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = visible(&state, &tenant, &id).await?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        json!({"rootEnabled": ever_enabled(&mut conn, id).await?}),
    ))
}

/// 128 bits from the OS's generator as 32 hex digits: within every password rule, and no
/// character a shell or a connection string would need quoted.
fn generated_password() -> String {
    format!("{}", Uuid::new_v4().simple())
}

async fn enable_root(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    MaybeJsonBody(body): MaybeJsonBody,
) -> ApiResult<Json<Value>> {
    // No body, `{}` or a null password: a generated one. Anything else must be an object.
    let given = match &body {
        None | Some(Value::Null) => None,
        Some(Value::Object(b)) => match b.get("password") {
            None | Some(Value::Null) => None,
            v => Some(validate::password(v, ROOT_USER)?),
        },
        Some(_) => {
            return Err(validate::bad(
                "Validation error: the body must be an object, e.g. {\"password\": \"...\"}, or empty.",
            ));
        }
    };
    let password = Password::new(given.unwrap_or_else(generated_password));
    let (tx, inst) = lock_available(&state, &tenant, &id).await?;
    let sealed = account_ops::seal(&state, inst.id, ROOT_USER, &password)?;
    let op = AccountOp::EnableRoot { password: sealed };
    // Answered with the password even when the guest has not confirmed within the wait: the
    // change is stored and will be applied, and the password is shown only here.
    account_ops::submit(&state, dispatch, tx, inst.id, op).await?;
    Ok(Json(
        json!({"user": {"name": ROOT_USER, "password": password.expose()}}),
    ))
}

async fn disable_root(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    if !ever_enabled(&mut tx, inst.id).await? {
        return Err(ApiError::NotFound(format!(
            "Root was never enabled on instance {}.",
            inst.id
        )));
    }
    account_ops::submit(&state, dispatch, tx, inst.id, AccountOp::DisableRoot {}).await?;
    Ok(StatusCode::NO_CONTENT)
}
