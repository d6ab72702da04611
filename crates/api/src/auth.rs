//! Token auth: `X-Auth-Token` looked up in a token file; the path tenant must be the token's
//! project unless the token has the admin role.

use std::{collections::HashMap, path::Path};

use anyhow::{Context, Result};
use axum::{
    extract::{FromRequestParts, Request, State},
    http::request::Parts,
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{error::ApiError, limits, state::AppState};

#[derive(Debug, Clone, Deserialize)]
pub struct TokenEntry {
    pub project_id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Tokens(HashMap<String, TokenEntry>);

impl Tokens {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading token file {}", path.display()))?;
        let map: HashMap<String, TokenEntry> = serde_json::from_str(&text)
            .with_context(|| format!("parsing token file {} (expected {{\"<token>\": {{\"project_id\": \"...\", \"roles\": [...]}}}})", path.display()))?;
        Ok(Self(map))
    }

    pub fn from_map(map: HashMap<String, TokenEntry>) -> Self {
        Self(map)
    }

    fn get(&self, token: &str) -> Option<&TokenEntry> {
        self.0.get(token)
    }
}

/// Who is calling, as established by [`require_token`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub project_id: String,
    pub user: Option<String>,
    pub is_admin: bool,
    pub roles: Vec<String>,
}

impl Caller {
    /// Which parts of a view this caller may read.
    pub fn audience(&self) -> crate::views::Audience {
        if self.is_admin {
            crate::views::Audience::Admin
        } else {
            crate::views::Audience::Member
        }
    }
}

impl Caller {
    /// Whose rows a lookup by id may find: the path's project, or (for admins, as Trove's
    /// `find_by` lets them) any project's, so an admin's client reaches an instance by its id
    /// alone.
    pub fn scope<'a>(&self, path_tenant: &'a str) -> Option<&'a str> {
        (!self.is_admin).then_some(path_tenant)
    }

    /// Admin-only operations: 403 in Trove's words (`PolicyNotAuthorized`) for anyone else.
    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "Policy doesn't allow {action} to be performed."
            )))
        }
    }
}

/// The caller of a route behind [`require_token`]; a route outside it is a bug, answered as 500.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "no caller: the route is outside the token check"
            ))
        })
    }
}

/// Middleware for everything under `/v1.0/{tenant}/`.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(token) = token else {
        return ApiError::Unauthorized(
            "Authentication required: send an X-Auth-Token header.".into(),
        )
        .into_response();
    };
    // A token longer than any the file can hold is not looked up (nor hashed) at all.
    let known = (token.len() <= limits::TOKEN_BYTES)
        .then(|| state.tokens.get(&token).cloned())
        .flatten();
    let Some(entry) = known else {
        return ApiError::Unauthorized("The request you have made requires authentication.".into())
            .into_response();
    };
    let tenant = req
        .uri()
        .path()
        .strip_prefix("/v1.0/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
        .to_string();
    let is_admin = entry.roles.iter().any(|r| r == "admin");
    if tenant != entry.project_id && !is_admin {
        return ApiError::Forbidden(format!(
            "User with tenant id {} cannot access this resource.",
            entry.project_id
        ))
        .into_response();
    }
    req.extensions_mut().insert(Caller {
        project_id: entry.project_id,
        user: entry.user,
        is_admin,
        roles: entry.roles,
    });
    next.run(req).await
}
