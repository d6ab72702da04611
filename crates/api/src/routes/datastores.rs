//! Datastores and their versions: read-only, looked up by id or name.

use axum::{
    Json,
    extract::{Path, State},
    http::Method,
};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::table::Routes;
use crate::{
    db::catalog::{self, DatastoreRow, VersionRow},
    error::{ApiError, ApiResult},
    state::AppState,
    views::{self, Links},
};

pub fn routes() -> Routes {
    Routes::new()
        .add(Method::GET, "/v1.0/{tenant}/datastores", list_datastores)
        .add(
            Method::GET,
            "/v1.0/{tenant}/datastores/versions/{id}",
            show_version_by_id,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/datastores/{ds}",
            show_datastore,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/datastores/{ds}/versions",
            list_versions,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/datastores/{ds}/versions/{version}",
            show_version,
        )
}

/// A datastore by id or name: 404 when there is none.
async fn find_datastore(conn: &mut PgConnection, key: &str) -> ApiResult<DatastoreRow> {
    catalog::datastore(conn, key)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Datastore '{key}' cannot be found.")))
}

/// Only active versions are shown, as in Trove.
async fn active_versions(
    conn: &mut PgConnection,
    datastore_id: Uuid,
) -> ApiResult<Vec<VersionRow>> {
    let mut versions = catalog::versions_of(conn, datastore_id).await?;
    versions.retain(|v| v.active);
    Ok(versions)
}

/// A datastore by id or name (404 when there is none) with its active versions.
async fn with_versions(state: &AppState, key: &str) -> ApiResult<(DatastoreRow, Vec<VersionRow>)> {
    let mut conn = state.pool.acquire().await?;
    let d = find_datastore(&mut conn, key).await?;
    let versions = active_versions(&mut conn, d.id).await?;
    Ok((d, versions))
}

async fn list_datastores(State(state): State<AppState>, links: Links) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let mut out = Vec::new();
    for d in catalog::datastores(&mut conn).await? {
        let versions = active_versions(&mut conn, d.id).await?;
        // Like Trove, datastores without an active version are hidden.
        if !versions.is_empty() {
            out.push(views::datastore(&d, &versions, &links));
        }
    }
    Ok(Json(json!({"datastores": out})))
}

async fn show_datastore(
    State(state): State<AppState>,
    Path((_tenant, ds)): Path<(String, String)>,
    links: Links,
) -> ApiResult<Json<Value>> {
    let (d, versions) = with_versions(&state, &ds).await?;
    Ok(Json(
        json!({"datastore": views::datastore(&d, &versions, &links)}),
    ))
}

async fn list_versions(
    State(state): State<AppState>,
    Path((_tenant, ds)): Path<(String, String)>,
    links: Links,
) -> ApiResult<Json<Value>> {
    let (_, versions) = with_versions(&state, &ds).await?;
    Ok(Json(json!({"versions": versions
        .iter()
        .map(|v| views::version(v, &links, true))
        .collect::<Vec<_>>()})))
}

async fn show_version(
    State(state): State<AppState>,
    Path((_tenant, ds, version)): Path<(String, String, String)>,
    links: Links,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let d = find_datastore(&mut conn, &ds).await?;
    let v = catalog::version_of(&mut conn, d.id, &version, None)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("Datastore version '{version}' cannot be found."))
        })?;
    Ok(Json(json!({"version": views::version(&v, &links, true)})))
}

async fn show_version_by_id(
    State(state): State<AppState>,
    Path((_tenant, id)): Path<(String, String)>,
    links: Links,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let not_found = || ApiError::NotFound(format!("Datastore version '{id}' cannot be found."));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let v = catalog::version_by_id(&mut conn, uuid)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(json!({"version": views::version(&v, &links, true)})))
}
