//! Datastores and their versions: read-only, looked up by id or name.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
    routing::get,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    db::catalog,
    error::{ApiError, ApiResult},
    state::AppState,
    views,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1.0/{tenant}/datastores", get(list_datastores))
        .route(
            "/v1.0/{tenant}/datastores/versions/{id}",
            get(show_version_by_id),
        )
        .route("/v1.0/{tenant}/datastores/{ds}", get(show_datastore))
        .route(
            "/v1.0/{tenant}/datastores/{ds}/versions",
            get(list_versions),
        )
        .route(
            "/v1.0/{tenant}/datastores/{ds}/versions/{version}",
            get(show_version),
        )
}

async fn list_datastores(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let base = super::base_url(&state, &headers);
    let links = super::links(&base, &tenant);
    let mut out = Vec::new();
    for d in catalog::datastores(&mut conn).await? {
        let versions: Vec<_> = catalog::versions_of(&mut conn, d.id)
            .await?
            .into_iter()
            .filter(|v| v.active)
            .collect();
        // Like Trove, datastores without an active version are hidden.
        if !versions.is_empty() {
            out.push(views::datastore(&d, &versions, &links));
        }
    }
    Ok(Json(json!({"datastores": out})))
}

async fn show_datastore(
    State(state): State<AppState>,
    Path((tenant, ds)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let base = super::base_url(&state, &headers);
    let links = super::links(&base, &tenant);
    let d = catalog::datastore(&mut conn, &ds)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Datastore '{ds}' cannot be found.")))?;
    let versions: Vec<_> = catalog::versions_of(&mut conn, d.id)
        .await?
        .into_iter()
        .filter(|v| v.active)
        .collect();
    Ok(Json(
        json!({"datastore": views::datastore(&d, &versions, &links)}),
    ))
}

async fn list_versions(
    State(state): State<AppState>,
    Path((tenant, ds)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let base = super::base_url(&state, &headers);
    let links = super::links(&base, &tenant);
    let d = catalog::datastore(&mut conn, &ds)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Datastore '{ds}' cannot be found.")))?;
    let versions = catalog::versions_of(&mut conn, d.id).await?;
    Ok(Json(json!({"versions": versions
        .iter()
        .filter(|v| v.active)
        .map(|v| views::version(v, &links, true))
        .collect::<Vec<_>>()})))
}

async fn show_version(
    State(state): State<AppState>,
    Path((tenant, ds, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let base = super::base_url(&state, &headers);
    let links = super::links(&base, &tenant);
    let d = catalog::datastore(&mut conn, &ds)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Datastore '{ds}' cannot be found.")))?;
    let v = catalog::version_of(&mut conn, d.id, &version)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("Datastore version '{version}' cannot be found."))
        })?;
    Ok(Json(json!({"version": views::version(&v, &links, true)})))
}

async fn show_version_by_id(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let base = super::base_url(&state, &headers);
    let links = super::links(&base, &tenant);
    let not_found = || ApiError::NotFound(format!("Datastore version '{id}' cannot be found."));
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let v = catalog::version_by_id(&mut conn, uuid)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(json!({"version": views::version(&v, &links, true)})))
}
