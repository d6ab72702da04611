//! `POST|GET /instances/{id}/restore-points`: named restore points (`pg_create_restore_point`)
//! that a recovery can later stop at (`{"target": {"restore_point": "<name>"}}`).

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use trove_common::{restore_point::RestorePointName, rpc::taskmanager::TaskManagerMethod};
use uuid::Uuid;

use super::{availability::ensure_available, dispatch::Dispatch, path_uuid, table::Routes};
use crate::{
    db::{
        instances,
        restore_points::{self, RestorePointRow},
    },
    error::{ApiError, ApiResult},
    extract::JsonBody,
    recovery_window::rfc3339,
    state::AppState,
    validate::{self, bad},
};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::POST,
            "/v1.0/{tenant}/instances/{id}/restore-points",
            create_restore_point,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/restore-points",
            list_restore_points,
        )
}

/// A restore point name from a request: 400 unless it follows [`RestorePointName`]'s rules.
pub fn parse_name(v: Option<&Value>, what: &str) -> ApiResult<RestorePointName> {
    v.and_then(Value::as_str)
        .and_then(RestorePointName::parse)
        .ok_or_else(|| {
            bad(format!(
                "Validation error: {what} must be 1 to 63 of the characters A-Z a-z 0-9 _ . - starting with a letter or digit"
            ))
        })
}

fn view(r: &RestorePointRow) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "status": r.state,
        "lsn": r.lsn,
        "timeline": r.timeline,
        "time": r.point_time.map(rfc3339),
        "created": rfc3339(r.created),
        "error": r.error,
    })
}

async fn create_restore_point(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_uuid(&id)?;
    let rp = validate::root(&body, "restore_point")?;
    if let Some(k) = rp.keys().find(|k| k.as_str() != "name") {
        return Err(bad(format!(
            "Validation error: restore_point has an unknown key '{k}' (allowed: name)."
        )));
    }
    let name = parse_name(rp.get("name"), "restore_point['name']")?;

    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    // Names are unique per instance: recovery finds a point by its name.
    if restore_points::find_by_name(&mut tx, id, name.as_str())
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "Instance {id} already has a restore point named '{name}'."
        )));
    }
    ensure_available(&mut tx, &inst).await?;
    let rp_id = Uuid::new_v4();
    let row = restore_points::insert(&mut tx, rp_id, id, &tenant, name.as_str()).await?;
    let method = TaskManagerMethod::CreateRestorePoint {
        instance_id: id,
        restore_point_id: rp_id,
        name,
    };
    dispatch.send(tx, &method).await?;
    tracing::info!(instance.id = %id, restore_point.id = %rp_id, "restore point accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"restore_point": view(&row)})),
    ))
}

async fn list_restore_points(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    let mut conn = state.pool.acquire().await?;
    instances::find(&mut conn, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let rows = restore_points::list(&mut conn, id).await?;
    Ok(Json(
        json!({"restore_points": rows.iter().map(view).collect::<Vec<_>>()}),
    ))
}
