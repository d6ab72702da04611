//! `ApiError`: every failure leaves the API in Trove's envelope `{"<faultName>": {"code", "message"}}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadMethod(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    OverLimit(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn not_found(id: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("Resource {id} cannot be found."))
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "badRequest"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "itemNotFound"),
            Self::BadMethod(_) => (StatusCode::METHOD_NOT_ALLOWED, "badMethod"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::BadMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "badMediaType"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessableEntity"),
            Self::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "notImplemented"),
            Self::OverLimit(_) => (StatusCode::PAYLOAD_TOO_LARGE, "overLimit"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "instanceFault"),
        }
    }
}

/// SQLSTATEs of class 22 (data exception) that a value from a request can cause: a NUL or an
/// unencodable character in text (22021, 22P05), a value too long for its column (22001), text
/// that is not a number or a time (22P02, 22007, 22008), a number out of range (22003).
const INVALID_VALUE_STATES: [&str; 7] = [
    "22021", "22P05", "22001", "22P02", "22007", "22008", "22003",
];

impl From<sqlx::Error> for ApiError {
    /// Validation refuses such values first; this is the defense in depth behind it, so a value
    /// the database cannot store is still the client's 400, never a 500. Mapped by SQLSTATE,
    /// never by message text.
    fn from(e: sqlx::Error) -> Self {
        if let Some(code) = e.as_database_error().and_then(|d| d.code())
            && INVALID_VALUE_STATES.contains(&code.as_ref())
        {
            tracing::warn!(error = %e, sqlstate = %code, "database refused a value from a request");
            return Self::BadRequest(
                "Validation error: the request holds a value that cannot be stored.".into(),
            );
        }
        Self::Internal(anyhow::Error::new(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, name) = self.parts();
        let message = match &self {
            // 5xx bodies stay opaque; the cause is logged once, here, inside the request span.
            Self::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                "Internal Server Error. Please keep the x-openstack-request-id of this response to help us figure out what went wrong.".to_string()
            }
            other => other.to_string(),
        };
        (
            status,
            Json(json!({ name: { "code": status.as_u16(), "message": message } })),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
