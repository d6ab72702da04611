//! Flavors: read-only, not paginated.

use axum::{
    Json,
    extract::{Path, State},
    http::Method,
};
use serde_json::{Value, json};

use super::table::Routes;
use crate::{
    db::catalog,
    error::{ApiError, ApiResult},
    state::AppState,
    views::{self, Links},
};

pub fn routes() -> Routes {
    Routes::new()
        .add(Method::GET, "/v1.0/{tenant}/flavors", list_flavors)
        .add(Method::GET, "/v1.0/{tenant}/flavors/{id}", show_flavor)
}

async fn list_flavors(State(state): State<AppState>, links: Links) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let rows = catalog::flavors(&mut conn).await?;
    Ok(Json(
        json!({"flavors": rows.iter().map(|f| views::flavor(f, &links)).collect::<Vec<_>>()}),
    ))
}

async fn show_flavor(
    State(state): State<AppState>,
    Path((_tenant, id)): Path<(String, String)>,
    links: Links,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let f = catalog::flavor(&mut conn, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(&id))?;
    Ok(Json(json!({"flavor": views::flavor(&f, &links)})))
}
