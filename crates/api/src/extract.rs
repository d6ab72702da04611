//! Our own extractors, so malformed JSON, wrong media types and bad query strings come out in
//! Trove's error envelope instead of axum's plain-text rejections.

use anyhow::anyhow;
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, RawPathParams, Request},
    http::{HeaderMap, header, request::Parts},
};
use serde_json::Value;

use crate::{error::ApiError, state::AppState, views::Links};

/// A JSON object body. Trove ignores the body when no Content-Type is sent; we require JSON
/// whenever a body is present, and answer 415 for any other media type.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.to_ascii_lowercase());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("Cannot read the request body: {e}")))?;
        if let Some(ct) = &content_type
            && !ct.starts_with("application/json")
        {
            return Err(ApiError::BadMediaType(format!(
                "Unsupported Content-Type {ct}; send application/json."
            )));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest("The request body is empty.".into()));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("Malformed JSON in request body: {e}")))?;
        if !value.is_object() {
            return Err(ApiError::BadRequest(
                "The request body must be a JSON object.".into(),
            ));
        }
        Ok(Self(value))
    }
}

/// `limit` and `marker` query parameters.
#[derive(Debug, Default)]
pub struct Paging {
    pub limit: Option<i64>,
    pub marker: Option<String>,
    pub params: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut out = Paging::default();
        let query = parts.uri.query().unwrap_or("");
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| {
                        ApiError::BadRequest(format!(
                            "limit must be a positive integer, got '{v}'."
                        ))
                    })?;
                    if n < 1 {
                        return Err(ApiError::BadRequest(format!(
                            "limit must be a positive integer, got '{v}'."
                        )));
                    }
                    out.limit = Some(n);
                }
                "marker" => out.marker = Some(v),
                _ => out.params.push((k.to_string(), v)),
            }
        }
        Ok(out)
    }
}

impl Paging {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The links of a request under `/v1.0/{tenant}/`.
impl FromRequestParts<AppState> for Links {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let tenant = params
            .iter()
            .find(|(k, _)| *k == "tenant")
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| anyhow!("route {} has no {{tenant}}", parts.uri.path()))?;
        Ok(Self {
            base: base_url(state, &parts.headers),
            tenant,
        })
    }
}

/// Base URL for links: the configured public endpoint, else the request's Host.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if !state.config.public_endpoint.is_empty() {
        return state
            .config
            .public_endpoint
            .trim_end_matches('/')
            .to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:8779");
    format!("http://{host}")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding_handles_escapes_and_truncation() {
        assert_eq!(super::percent_decode("a%20b"), "a b");
        assert_eq!(super::percent_decode("a%2"), "a%2");
        assert_eq!(super::percent_decode("%zz"), "%zz");
    }
}
