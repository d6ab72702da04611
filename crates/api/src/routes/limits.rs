//! `GET /limits` (`openstack database limit list`): the project's absolute limits in Trove's
//! shape. No per-verb rate limiting is enforced, so no rate rows follow the absolute one.

use axum::{
    Json,
    extract::{Path, State},
    http::Method,
};
use serde_json::{Value, json};

use super::table::Routes;
use crate::{db::quotas, error::ApiResult, quota::RESOURCES, state::AppState};

pub fn routes() -> Routes {
    Routes::new().add(Method::GET, "/v1.0/{tenant}/limits", list_limits)
}

async fn list_limits(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let limits = quotas::limits(&mut conn, &tenant, &state.config.quotas).await?;
    let mut absolute = json!({"verb": "ABSOLUTE"});
    for r in RESOURCES {
        absolute[format!("max_{r}")] = json!(limits.get(r));
    }
    Ok(Json(json!({ "limits": [absolute] })))
}
