//! `GET /` and `GET /v1.0/` (also without the slash): the version documents; `GET /healthcheck`: liveness, as oslo's
//! healthcheck middleware answers it in Trove's pipeline (no token, plain text).

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, Method, header},
    response::IntoResponse,
};
use serde_json::{Value, json};

use super::table::Routes;
use crate::{error::ApiResult, state::AppState};

pub fn routes() -> Routes {
    Routes::new()
        .add(Method::GET, "/", list_versions)
        .add(Method::GET, "/v1.0/", show_version)
        .add(Method::GET, "/v1.0", show_version)
        .add(Method::GET, "/healthcheck", show_health)
}

/// The one version this API speaks, linking to `base`.
fn v1(base: &str) -> Value {
    json!({
        "id": "v1.0",
        "status": "CURRENT",
        "updated": "2012-08-01T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v1.0/")}],
    })
}

async fn list_versions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let base = crate::extract::base_url(&state, &headers)?;
    Ok(Json(json!({"versions": [v1(&base)]})))
}

async fn show_version(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    let base = crate::extract::base_url(&state, &headers)?;
    Ok(Json(json!({"version": v1(&base)})))
}

/// Answers while the process serves HTTP; it deliberately checks no dependency, as oslo's
/// default (`disable_by_file`) backend does, so a load balancer does not drain every API at
/// once when the database blips.
async fn show_health() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], "OK")
}
