//! `GET`/`PUT /mgmt/quotas/{project}`: a project's quotas with its usage, and an admin's new
//! limits for it (`openstack database quota show|update`).

use axum::{
    Json,
    extract::{Path, State},
    http::Method,
};
use serde_json::{Map, Value, json};

use super::table::Routes;
use crate::{
    auth::Caller,
    db::quotas,
    error::{ApiError, ApiResult},
    extract::JsonBody,
    quota::RESOURCES,
    state::AppState,
    validate::{self, bad},
};

pub fn routes() -> Routes {
    let one = "/v1.0/{tenant}/mgmt/quotas/{project}";
    Routes::new()
        .add(Method::GET, one, show_quotas)
        .add(Method::PUT, one, update_quotas)
}

/// As in Trove, a project may read its own quotas; an admin reads anyone's.
async fn show_quotas(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, project)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if project != tenant && !caller.is_admin {
        return Err(ApiError::Forbidden(format!(
            "Operation not allowed for tenant {tenant}."
        )));
    }
    let mut conn = state.pool.acquire().await?;
    let limits = quotas::limits(&mut conn, &project, &state.config.quotas).await?;
    let usage = quotas::usage(&mut conn, &project).await?;
    let rows: Vec<Value> = RESOURCES
        .iter()
        .map(|r| json!({"resource": r, "in_use": usage.get(r), "reserved": 0, "limit": limits.get(r)}))
        .collect();
    Ok(Json(json!({ "quotas": rows })))
}

/// Trove's update: `{"quotas": {"<resource>": <limit>, ...}}`; a null limit is skipped, a limit
/// under -1 is 400, an unknown resource 404. Answers the limits it set.
async fn update_quotas(
    State(state): State<AppState>,
    caller: Caller,
    Path((_tenant, project)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    caller.require_admin("quota:update")?;
    validate::text(&project, "the project id", crate::limits::REF_CHARS)?;
    let given = validate::root(&body, "quotas")?;
    let mut set = Vec::with_capacity(given.len());
    for (resource, limit) in given {
        if limit.is_null() {
            continue;
        }
        let Some(known) = RESOURCES.iter().find(|r| **r == resource.as_str()) else {
            return Err(ApiError::NotFound(format!(
                "Unknown quota resources ['{}'].",
                validate::printable(resource)
            )));
        };
        let n = limit
            .as_i64()
            .filter(|n| *n <= i64::from(i32::MAX))
            .ok_or_else(|| {
                bad(format!(
                    "Validation error: quotas['{known}'] must be an integer from -1 to {}",
                    i32::MAX
                ))
            })?;
        if n < -1 {
            return Err(bad(format!(
                "Quota limit '{n}' for '{known}' is too small - must be at least '-1'."
            )));
        }
        set.push((*known, n as i32));
    }
    let mut tx = state.pool.begin().await?;
    let mut out = Map::new();
    for (resource, limit) in set {
        quotas::set(&mut tx, &project, resource, limit).await?;
        out.insert(resource.into(), json!(limit));
    }
    tx.commit().await?;
    let body = json!({ "quotas": out });
    tracing::info!(project = %project, quotas = %body["quotas"], "quotas updated");
    Ok(Json(body))
}
