//! The parameters a configuration group may set for a datastore version (Trove's
//! `configuration-parameters`), by version id or by datastore and version name.

use axum::{
    Json,
    extract::{Path, State},
    http::Method,
};
use serde_json::{Value, json};
use trove_common::overrides::{self, ParamType, Rule, RuleSet};
use uuid::Uuid;

use super::table::Routes;
use crate::{
    db::catalog::{self, VersionRow},
    error::{ApiError, ApiResult},
    state::AppState,
};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/v1.0/{tenant}/datastores/versions/{version}/parameters",
            list_parameters_by_version,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/datastores/versions/{version}/parameters/{name}",
            show_parameter_by_version,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/datastores/{ds}/versions/{version}/parameters",
            list_parameters,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/datastores/{ds}/versions/{version}/parameters/{name}",
            show_parameter,
        )
}

/// Trove's `ConfigurationParameterView`.
fn view(rule: &Rule, version: &VersionRow) -> Value {
    let mut v = json!({
        "name": rule.name,
        "datastore_version_id": version.id,
        "restart_required": rule.restart_required,
        "type": rule.kind.as_str(),
    });
    // Trove shows integers; a float rule's bounds are shown as they are. A string's bounds are
    // in PostgreSQL's unit for it, which the view does not carry: they are checked, not shown.
    let bounds = match rule.kind {
        ParamType::Integer | ParamType::Float => [("min", rule.min), ("max", rule.max)],
        ParamType::Boolean | ParamType::String => [("min", None), ("max", None)],
    };
    for (key, bound) in bounds {
        if let Some(b) = bound {
            v[key] = if b.fract() == 0.0 && b.abs() < 9.0e15 {
                json!(b as i64)
            } else {
                json!(b)
            };
        }
    }
    v
}

fn version_not_found(key: &str) -> ApiError {
    ApiError::NotFound(format!("Datastore version '{key}' cannot be found."))
}

async fn by_id(state: &AppState, key: &str) -> ApiResult<VersionRow> {
    let id = Uuid::parse_str(key).map_err(|_| version_not_found(key))?;
    let mut conn = state.pool.acquire().await?;
    catalog::version_by_id(&mut conn, id)
        .await?
        .ok_or_else(|| version_not_found(key))
}

async fn by_name(state: &AppState, ds: &str, key: &str) -> ApiResult<VersionRow> {
    let mut conn = state.pool.acquire().await?;
    let d = catalog::datastore(&mut conn, ds)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Datastore '{ds}' cannot be found.")))?;
    catalog::version_of(&mut conn, d.id, key, None)
        .await?
        .ok_or_else(|| version_not_found(key))
}

fn rules_of(version: &VersionRow) -> ApiResult<&'static RuleSet> {
    overrides::for_manager(&version.manager).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "Configuration groups are not supported for this datastore: {} {}.",
            version.datastore_name, version.name
        ))
    })
}

fn list(version: &VersionRow) -> ApiResult<Json<Value>> {
    let params: Vec<Value> = rules_of(version)?
        .rules()
        .map(|r| view(r, version))
        .collect();
    Ok(Json(json!({ "configuration-parameters": params })))
}

fn show(version: &VersionRow, name: &str) -> ApiResult<Json<Value>> {
    let rule = rules_of(version)?.get(name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "Configuration parameter '{}' cannot be found.",
            crate::validate::printable(name)
        ))
    })?;
    Ok(Json(view(rule, version)))
}

async fn list_parameters_by_version(
    State(state): State<AppState>,
    Path((_tenant, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    list(&by_id(&state, &version).await?)
}

async fn show_parameter_by_version(
    State(state): State<AppState>,
    Path((_tenant, version, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    show(&by_id(&state, &version).await?, &name)
}

async fn list_parameters(
    State(state): State<AppState>,
    Path((_tenant, ds, version)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    list(&by_name(&state, &ds, &version).await?)
}

async fn show_parameter(
    State(state): State<AppState>,
    Path((_tenant, ds, version, name)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    show(&by_name(&state, &ds, &version).await?, &name)
}
