//! Flavors: read-only, not paginated.

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use serde_json::{Value, json};

use crate::{
    db::catalog,
    error::{ApiError, ApiResult},
    state::AppState,
    views::{self, Links},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1.0/{tenant}/flavors", get(list_flavors))
        .route("/v1.0/{tenant}/flavors/{id}", get(show_flavor))
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
