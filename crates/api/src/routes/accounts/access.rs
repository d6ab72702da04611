//! `GET|PUT /instances/{id}/users/{user}/databases` and
//! `DELETE /instances/{id}/users/{user}/databases/{name}`: which databases a user may use.

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use trove_common::accounts::AccountOp;

use super::{database_in_path, lock_available, user_in_path, users::reported_user, visible};
use crate::{
    account_ops,
    error::{ApiError, ApiResult},
    extract::JsonBody,
    limits,
    routes::{dispatch::Dispatch, table::Routes},
    state::AppState,
    validate,
};

pub fn routes() -> Routes {
    let access = "/v1.0/{tenant}/instances/{id}/users/{user}/databases";
    Routes::new()
        .add(Method::GET, access, list_access)
        .add(Method::PUT, access, grant_access)
        .add(
            Method::DELETE,
            "/v1.0/{tenant}/instances/{id}/users/{user}/databases/{name}",
            revoke_access,
        )
}

async fn list_access(
    State(state): State<AppState>,
    Path((tenant, id, user)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let user = user_in_path(&user)?;
    let id = visible(&state, &tenant, &id).await?;
    let mut conn = state.pool.acquire().await?;
    let have = account_ops::reported(&mut conn, id).await?;
    let u = reported_user(&have, &user, id)?;
    let dbs: Vec<Value> = u.databases.iter().map(|d| json!({"name": d})).collect();
    Ok(Json(json!({"databases": dbs})))
}

async fn grant_access(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id, user)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let user = user_in_path(&user)?;
    let obj = body.as_object().expect("JsonBody only yields objects");
    let names = validate::database_names(obj, limits::DATABASES_PER_USER, false)?;
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    let have = account_ops::reported(&mut tx, inst.id).await?;
    reported_user(&have, &user, inst.id)?;
    if let Some(missing) = names.iter().find(|n| !have.has_database(n)) {
        return Err(ApiError::NotFound(format!(
            "Database {missing} cannot be found on instance {}.",
            inst.id
        )));
    }
    let op = AccountOp::GrantAccess {
        user,
        databases: names,
    };
    account_ops::submit(&state, dispatch, tx, inst.id, op).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn revoke_access(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id, user, name)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let user = user_in_path(&user)?;
    let name = database_in_path(&name)?;
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    let have = account_ops::reported(&mut tx, inst.id).await?;
    let u = reported_user(&have, &user, inst.id)?;
    // Trove's answer when the user has no access to the database.
    if !u.databases.contains(&name) {
        return Err(ApiError::NotFound(format!(
            "Database {name} cannot be found for user {user} on instance {}.",
            inst.id
        )));
    }
    let op = AccountOp::RevokeAccess {
        user,
        database: name,
    };
    account_ops::submit(&state, dispatch, tx, inst.id, op).await?;
    Ok(StatusCode::ACCEPTED)
}
