//! `GET|POST|PUT /instances/{id}/users` and `GET|PUT|DELETE /instances/{id}/users/{user}`.

use std::collections::HashSet;

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Map, Value, json};
use trove_common::{
    accounts::{AccountOp, AccountUser, Accounts, NewAccountUser},
    secrets::Password,
};
use uuid::Uuid;

use super::{lock_available, page, user_in_path, visible};
use crate::{
    account_ops,
    error::{ApiError, ApiResult},
    extract::{JsonBody, Paging},
    limits,
    routes::{dispatch::Dispatch, instances::options, table::Routes},
    state::AppState,
    validate::{self, bad},
    views::Links,
};

pub fn routes() -> Routes {
    let users = "/v1.0/{tenant}/instances/{id}/users";
    let user = "/v1.0/{tenant}/instances/{id}/users/{user}";
    Routes::new()
        .add(Method::GET, users, list_users)
        .add(Method::POST, users, create_users)
        .add(Method::PUT, users, change_passwords)
        .add(Method::GET, user, show_user)
        .add(Method::PUT, user, update_user)
        .add(Method::DELETE, user, delete_user)
}

/// Trove's user view: PostgreSQL roles answer from any host.
pub(super) fn user_view(u: &AccountUser) -> Value {
    json!({
        "name": u.name,
        "host": "%",
        "databases": u.databases.iter().map(|d| json!({"name": d})).collect::<Vec<_>>(),
    })
}

pub(super) fn not_found(user: &str, instance: Uuid) -> ApiError {
    ApiError::NotFound(format!(
        "User {user} cannot be found on instance {instance}."
    ))
}

/// The user as reported, or 404.
pub(super) fn reported_user<'a>(
    have: &'a Accounts,
    user: &str,
    instance: Uuid,
) -> ApiResult<&'a AccountUser> {
    have.user(user).ok_or_else(|| not_found(user, instance))
}

async fn list_users(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    links: Links,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let id = visible(&state, &tenant, &id).await?;
    let mut conn = state.pool.acquire().await?;
    let mut have = account_ops::reported(&mut conn, id).await?;
    have.users.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<String> = have.users.iter().map(|u| u.name.clone()).collect();
    let limit = paging.limit.unwrap_or(state.config.page_size).min(1000);
    let (shown, more) = page(&names, paging.marker.as_deref(), limit);
    let last = shown.end.checked_sub(1).filter(|_| !shown.is_empty());
    let views: Vec<Value> = have.users[shown].iter().map(user_view).collect();
    let mut body = json!({"users": views, "links": []});
    if let (true, Some(last)) = (more, last) {
        let marker = &names[last];
        body["links"] = links.next_page(&format!("instances/{id}/users"), limit, marker, &[]);
    }
    Ok(Json(body))
}

/// A user entry's password, sealed for the taskmanager under the user's name.
fn sealed_password(
    state: &AppState,
    instance: Uuid,
    name: &str,
    v: Option<&Value>,
) -> ApiResult<trove_common::secrets::Sealed> {
    let password = Password::new(validate::password(v, name)?);
    account_ops::seal(state, instance, name, &password)
}

/// The databases a `users` entry is granted: names of databases the instance has.
fn granted(entry: &Map<String, Value>, user: &str, have: &Accounts) -> ApiResult<Vec<String>> {
    let what = format!("databases of user '{user}'");
    let listed = validate::list(entry, "databases", &what, limits::DATABASES_PER_USER)?;
    let mut seen = HashSet::with_capacity(listed.len());
    let mut out = Vec::with_capacity(listed.len());
    for d in listed {
        let name = validate::entry_name(d, &format!("database of user '{user}'"))?;
        if !have.has_database(name) {
            return Err(ApiError::NotFound(format!(
                "Database {name} cannot be found on the instance."
            )));
        }
        if seen.insert(name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// The `users` list of a create (`new`) or of a password change: each user named once, with its
/// password sealed for the taskmanager. New users must not exist and get the databases they list;
/// the others must exist.
fn parse_users(
    state: &AppState,
    obj: &Map<String, Value>,
    instance: Uuid,
    have: &Accounts,
    new: bool,
) -> ApiResult<Vec<NewAccountUser>> {
    let listed = validate::list(obj, "users", "users", limits::USERS)?;
    if listed.is_empty() {
        return Err(bad("Validation error: 'users' must list at least one user"));
    }
    let mut seen = HashSet::with_capacity(listed.len());
    let mut users = Vec::with_capacity(listed.len());
    for u in listed {
        let name = validate::entry_name(u, "user")?;
        if !seen.insert(name) {
            return Err(bad(format!("User '{name}' is listed twice.")));
        }
        let entry = u.as_object().expect("entry_name found a name in an object");
        let databases = if new {
            if have.user(name).is_some() {
                return Err(bad(format!(
                    "A user with the name '{name}' already exists."
                )));
            }
            granted(entry, name, have)?
        } else {
            reported_user(have, name, instance)?;
            Vec::new()
        };
        users.push(NewAccountUser {
            password: sealed_password(state, instance, name, entry.get("password"))?,
            databases,
            name: name.to_string(),
        });
    }
    Ok(users)
}

async fn create_users(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let obj = body.as_object().expect("JsonBody only yields objects");
    options::refuse_entry_options(obj)?;
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    let have = account_ops::reported(&mut tx, inst.id).await?;
    let users = parse_users(&state, obj, inst.id, &have, true)?;
    let op = AccountOp::CreateUsers { users };
    account_ops::submit(&state, dispatch, tx, inst.id, op).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Trove's `update_all`: new passwords for existing users.
async fn change_passwords(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let obj = body.as_object().expect("JsonBody only yields objects");
    options::refuse_entry_options(obj)?;
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    let have = account_ops::reported(&mut tx, inst.id).await?;
    let users = parse_users(&state, obj, inst.id, &have, false)?;
    let op = AccountOp::ChangePasswords { users };
    account_ops::submit(&state, dispatch, tx, inst.id, op).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn show_user(
    State(state): State<AppState>,
    Path((tenant, id, user)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let user = user_in_path(&user)?;
    let id = visible(&state, &tenant, &id).await?;
    let mut conn = state.pool.acquire().await?;
    let have = account_ops::reported(&mut conn, id).await?;
    let u = reported_user(&have, &user, id)?;
    Ok(Json(json!({"user": user_view(u)})))
}

/// Trove's `update_attributes`: a new name and/or a new password (`host` only as `%`).
async fn update_user(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id, user)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let user = user_in_path(&user)?;
    let attrs = validate::root(&body, "user")?;
    if let Some(h) = attrs.get("host").filter(|h| !h.is_null())
        && h.as_str() != Some("%")
    {
        return Err(ApiError::NotImplemented(
            "Users are not bound to a host; 'host' may only be '%'.".into(),
        ));
    }
    let new_name = match attrs.get("name") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = validate::string(v, "the new user name", limits::PG_IDENTIFIER_BYTES)?;
            validate::pg_identifier(n, "the new user name")?;
            (n != user).then(|| n.to_string())
        }
    };
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    let password = match attrs.get("password") {
        None | Some(Value::Null) => None,
        v => {
            let final_name = new_name.as_deref().unwrap_or(&user);
            Some(sealed_password(&state, inst.id, final_name, v)?)
        }
    };
    if new_name.is_none() && password.is_none() {
        return Err(bad(format!(
            "No updates specified for user {user}: give a new 'name' or 'password'."
        )));
    }
    let have = account_ops::reported(&mut tx, inst.id).await?;
    reported_user(&have, &user, inst.id)?;
    if let Some(n) = &new_name
        && have.user(n).is_some()
    {
        return Err(bad(format!("A user with the name '{n}' already exists.")));
    }
    let op = AccountOp::UpdateUser {
        name: user,
        new_name,
        password,
    };
    account_ops::submit(&state, dispatch, tx, inst.id, op).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn delete_user(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id, user)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let user = user_in_path(&user)?;
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    let have = account_ops::reported(&mut tx, inst.id).await?;
    reported_user(&have, &user, inst.id)?;
    account_ops::submit(
        &state,
        dispatch,
        tx,
        inst.id,
        AccountOp::DeleteUser { name: user },
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}
