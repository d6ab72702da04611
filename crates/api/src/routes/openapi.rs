//! `GET /openapi.json`: the OpenAPI 3 document of this API, kept in the repository as
//! `crates/api/openapi.json` and compiled in, so the served document is the one under review.

use axum::{
    http::{Method, header},
    response::IntoResponse,
};

use super::table::Routes;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub fn routes() -> Routes {
    Routes::new().add(Method::GET, "/openapi.json", show_openapi)
}

async fn show_openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
