//! `GET /`: the versions document.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, Method},
};
use serde_json::{Value, json};

use super::table::Routes;
use crate::{error::ApiResult, state::AppState};

pub fn routes() -> Routes {
    Routes::new().add(Method::GET, "/", list_versions)
}

async fn list_versions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let base = crate::extract::base_url(&state, &headers)?;
    Ok(Json(json!({"versions": [{
        "id": "v1.0",
        "status": "CURRENT",
        "updated": "2012-08-01T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v1.0/")}],
    }]})))
}
