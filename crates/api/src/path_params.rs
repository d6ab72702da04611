//! Every segment a route captures (`{tenant}`, `{id}`, `{ds}`, …) is checked before its handler
//! runs: valid UTF-8 once percent-decoded, no control characters, at most 255 characters. A
//! handler can then bind it to a query without PostgreSQL refusing it (a NUL) and answering 500.

use axum::{
    extract::{FromRequestParts, RawPathParams, Request},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{error::ApiError, limits, validate};

/// Middleware on every route with captures; runs after the token check.
pub async fn check(req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => {
            for (name, value) in &params {
                let what = format!("path segment '{name}'");
                if let Err(e) = validate::text(value, &what, limits::REF_CHARS) {
                    return e.into_response();
                }
            }
        }
        Err(_) => {
            return ApiError::BadRequest(
                "Validation error: a path segment is not valid UTF-8 once percent-decoded".into(),
            )
            .into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}
