//! `GET /`: the versions document.

use axum::{Json, Router, extract::State, http::HeaderMap, routing::get};
use serde_json::{Value, json};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(list_versions))
}

async fn list_versions(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let base = crate::extract::base_url(&state, &headers);
    Json(json!({"versions": [{
        "id": "v1.0",
        "status": "CURRENT",
        "updated": "2012-08-01T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v1.0/")}],
    }]}))
}
