//! Our own extractors, so malformed JSON, wrong media types and bad query strings come out in
//! Trove's error envelope instead of axum's plain-text rejections.

use anyhow::anyhow;
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, RawPathParams, Request},
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use serde_json::Value;

use crate::{error::ApiError, limits, state::AppState, validate, views::Links};

/// A JSON object body. Trove ignores the body when no Content-Type is sent; we require JSON
/// whenever a body is present, and answer 415 for any other media type. A body over
/// [`limits::BODY_BYTES`] is 413; a string or key anywhere in it with a control character is 400,
/// so no handler ever sees one (PostgreSQL cannot store a NUL in text).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = match req.headers().get(header::CONTENT_TYPE) {
            None => None,
            Some(v) => Some(v.to_str().map(str::to_ascii_lowercase).map_err(|_| {
                ApiError::BadMediaType("Unreadable Content-Type; send application/json.".into())
            })?),
        };
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(unreadable_body)?;
        if let Some(ct) = &content_type
            && !ct.starts_with("application/json")
        {
            let shown: String = ct.chars().take(limits::REF_CHARS).collect();
            return Err(ApiError::BadMediaType(format!(
                "Unsupported Content-Type {shown}; send application/json."
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
        if let Some(at) = control_character_at(&value) {
            return Err(ApiError::BadRequest(format!(
                "Validation error: {at} must not contain control characters"
            )));
        }
        Ok(Self(value))
    }
}

/// A body that could not be read: too large (413) or broken off (400).
fn unreadable_body(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::OverLimit(format!(
            "The request body is larger than {} bytes.",
            limits::BODY_BYTES
        ))
    } else {
        ApiError::BadRequest(format!("Cannot read the request body: {e}"))
    }
}

/// A JSON object body that may be left out (`root enable` posts nothing unless a password is
/// given): no body, or one of only whitespace, is `None`; anything else is a [`JsonBody`].
pub struct MaybeJsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for MaybeJsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(unreadable_body)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        let JsonBody(v) = JsonBody::from_request(req, state).await?;
        Ok(Self(Some(v)))
    }
}

/// Where the first string or key holding a control character is, in Trove's path notation
/// (`instance['users'][0]['password']`); one pass over the body, no value echoed.
fn control_character_at(v: &Value) -> Option<String> {
    fn walk(v: &Value, path: &mut Vec<String>) -> bool {
        match v {
            Value::String(s) => s.chars().any(char::is_control),
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                path.push(format!("[{i}]"));
                let found = walk(item, path);
                if !found {
                    path.pop();
                }
                found
            }),
            Value::Object(o) => o.iter().any(|(k, item)| {
                if k.chars().any(char::is_control) {
                    path.push("[<a key>]".into());
                    return true;
                }
                path.push(if path.is_empty() {
                    k.clone()
                } else {
                    format!("['{k}']")
                });
                let found = walk(item, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = Vec::new();
    walk(v, &mut path).then(|| {
        if path.is_empty() {
            "the request body".into()
        } else {
            path.concat()
        }
    })
}

/// `limit` and `marker` query parameters, and the others a route reads through
/// [`Paging::param`]. Every key and value is checked for control characters and length.
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
            let (k, v) = (percent_decode(k), percent_decode(v));
            validate::text(&k, "a query parameter name", limits::REF_CHARS)?;
            validate::text(&v, &format!("query parameter '{k}'"), limits::REF_CHARS)?;
            match k.as_str() {
                "limit" => {
                    let n = validate::digits(&v).filter(|n| *n >= 1).ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "limit must be a positive integer, got '{v}'."
                        ))
                    })?;
                    out.limit = Some(n);
                }
                "marker" => out.marker = Some(v),
                _ => out.params.push((k, v)),
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
            base: base_url(state, &parts.headers)?,
            tenant,
        })
    }
}

/// Base URL for links: the configured public endpoint, else what the client dialled, as a proxy
/// in front reports it (`X-Forwarded-Proto`, `X-Forwarded-Host`) or else the request's `Host`.
/// A forwarded value that is not a plain scheme or host is ignored rather than refused: it came
/// from a hop, not from the client, and is echoed into every link. A bad `Host` is the client's
/// own, and is 400.
pub fn base_url(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    base_url_of(&state.config.public_endpoint, headers)
}

fn base_url_of(public_endpoint: &str, headers: &HeaderMap) -> Result<String, ApiError> {
    if !public_endpoint.is_empty() {
        return Ok(public_endpoint.trim_end_matches('/').to_string());
    }
    let scheme = forwarded(headers, "x-forwarded-proto")
        .map(str::to_ascii_lowercase)
        .filter(|p| p == "http" || p == "https")
        .unwrap_or_else(|| "http".into());
    if let Some(host) = forwarded(headers, "x-forwarded-host").filter(|h| forwarded_host(h)) {
        return Ok(format!("{scheme}://{host}"));
    }
    let Some(host) = headers.get(header::HOST) else {
        return Ok(format!("{scheme}://localhost:8779"));
    };
    let plausible = |h: &[u8]| {
        !h.is_empty()
            && h.len() <= limits::HOST_BYTES
            && h.iter()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(b))
    };
    match host.to_str() {
        Ok(h) if plausible(h.as_bytes()) => Ok(format!("{scheme}://{h}")),
        _ => Err(ApiError::BadRequest(
            "Invalid Host header: send a host name or address, optionally with a port.".into(),
        )),
    }
}

/// The first value of a forwarded header: each proxy appends its own after a comma, so the first
/// is the one the client dialled.
fn forwarded<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let v = headers.get(name)?.to_str().ok()?;
    Some(v.split(',').next()?.trim())
}

/// `name[:port]` with a name of letters, digits, dots and hyphens, or `[IPv6][:port]`: nothing
/// that could end a URL's authority or start its path.
fn forwarded_host(h: &str) -> bool {
    if h.is_empty() || h.len() > limits::HOST_BYTES {
        return false;
    }
    // Digits only: `u16::from_str` would also take a sign.
    let port_ok = |p: Option<&str>| {
        p.is_none_or(|p| {
            p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 5 && p.parse::<u16>().is_ok()
        })
    };
    if let Some(rest) = h.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        return literal.parse::<std::net::Ipv6Addr>().is_ok() && port_ok(port);
    }
    let (name, port) = match h.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (h, None),
    };
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && port_ok(port)
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

    #[test]
    fn links_follow_the_public_endpoint_then_the_proxy_then_host() {
        use axum::http::HeaderMap;
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().expect("test header values are valid"));
            }
            h
        };
        let base = |endpoint: &str, h: &HeaderMap| super::base_url_of(endpoint, h).ok();
        let proxied = headers(&[
            ("host", "10.0.0.5:8779"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "db.example.com, inner.proxy"),
        ]);
        assert_eq!(
            base("https://api.example.org/", &proxied).as_deref(),
            Some("https://api.example.org")
        );
        assert_eq!(
            base("", &proxied).as_deref(),
            Some("https://db.example.com")
        );
        let spoofed = headers(&[
            ("host", "10.0.0.5:8779"),
            ("x-forwarded-proto", "javascript"),
            ("x-forwarded-host", "evil.example/x?"),
        ]);
        assert_eq!(base("", &spoofed).as_deref(), Some("http://10.0.0.5:8779"));
        assert_eq!(base("", &headers(&[("host", "a/b")])), None);
    }

    #[test]
    fn forwarded_hosts_are_names_or_bracketed_ipv6_with_an_optional_port() {
        let ok = super::forwarded_host;
        for h in [
            "db.example.com",
            "db.example.com:443",
            "10.0.0.1:8779",
            "[::1]",
            "[fe80::1]:8779",
        ] {
            assert!(ok(h), "{h}");
        }
        for h in [
            "",
            "evil.com/path",
            "a@b",
            "a b",
            "host:",
            "host:99999",
            "host:80:80",
            "[::1",
            "[zz]",
            "[::1]x",
            "h\"x",
            "h_x",
        ] {
            assert!(!ok(h), "{h}");
        }
    }

    #[test]
    fn control_characters_are_found_with_their_path() {
        use serde_json::json;
        let at = |v| super::control_character_at(&v);
        assert_eq!(at(json!({"instance": {"name": "ok", "n": 1}})), None);
        assert_eq!(
            at(json!({"instance": {"users": [{"name": "u"}, {"password": "a\u{0}"}]}})).as_deref(),
            Some("instance['users'][1]['password']")
        );
        assert_eq!(
            at(json!({"backup": {"x\u{1b}": 1}})).as_deref(),
            Some("backup[<a key>]")
        );
        assert_eq!(at(json!({"a": ["\n"]})).as_deref(), Some("a[0]"));
    }
}
