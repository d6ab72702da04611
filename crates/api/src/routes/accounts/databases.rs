//! `GET|POST /instances/{id}/databases`, `DELETE /instances/{id}/databases/{name}`.

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use trove_common::accounts::AccountOp;

use super::{database_in_path, lock_available, page, visible};
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
    Routes::new()
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/databases",
            list_databases,
        )
        .add(
            Method::POST,
            "/v1.0/{tenant}/instances/{id}/databases",
            create_databases,
        )
        .add(
            Method::DELETE,
            "/v1.0/{tenant}/instances/{id}/databases/{name}",
            delete_database,
        )
}

async fn list_databases(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    links: Links,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let id = visible(&state, &tenant, &id).await?;
    let mut conn = state.pool.acquire().await?;
    let mut names = account_ops::reported(&mut conn, id).await?.databases;
    names.sort();
    let limit = paging.limit.unwrap_or(state.config.page_size).min(1000);
    let (shown, more) = page(&names, paging.marker.as_deref(), limit);
    let mut body = json!({
        "databases": names[shown.clone()].iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
        "links": [],
    });
    if let (true, Some(last)) = (more, names[shown].last()) {
        body["links"] = links.next_page(&format!("instances/{id}/databases"), limit, last, &[]);
    }
    Ok(Json(body))
}

async fn create_databases(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let obj = body.as_object().expect("JsonBody only yields objects");
    let names = validate::database_names(obj, limits::DATABASES, true)?;
    options::refuse_entry_options(obj)?;
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    let have = account_ops::reported(&mut tx, inst.id).await?;
    if let Some(n) = names.iter().find(|n| have.has_database(n)) {
        return Err(bad(format!(
            "A database with the name '{n}' already exists."
        )));
    }
    let op = AccountOp::CreateDatabases { databases: names };
    account_ops::submit(&state, dispatch, tx, inst.id, op).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn delete_database(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let name = database_in_path(&name)?;
    let (mut tx, inst) = lock_available(&state, &tenant, &id).await?;
    if !account_ops::reported(&mut tx, inst.id)
        .await?
        .has_database(&name)
    {
        return Err(ApiError::NotFound(format!(
            "Database {name} cannot be found on instance {}.",
            inst.id
        )));
    }
    let op = AccountOp::DeleteDatabase { name };
    account_ops::submit(&state, dispatch, tx, inst.id, op).await?;
    Ok(StatusCode::ACCEPTED)
}
