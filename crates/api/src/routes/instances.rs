//! Instances: list, detail, show, create (also from a backup or a point in time), rename and
//! delete.

mod create;

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use trove_common::{rpc::taskmanager::TaskManagerMethod, status::InstanceTask};
use uuid::Uuid;

use super::{dispatch::Dispatch, path_uuid, table::Routes};
use crate::{
    db::{instances, wal},
    error::{ApiError, ApiResult},
    extract::{JsonBody, Paging},
    state::AppState,
    validate::{self, bad},
    views::{self, Links},
};

pub fn routes() -> Routes {
    let one = "/v1.0/{tenant}/instances/{id}";
    Routes::new()
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances",
            list_instances::<false>,
        )
        .add(
            Method::POST,
            "/v1.0/{tenant}/instances",
            create::create_instance,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/detail",
            list_instances::<true>,
        )
        .add(Method::GET, one, show_instance)
        .add(Method::PUT, one, update_instance)
        .add(Method::PATCH, one, update_instance)
        .add(Method::DELETE, one, delete_instance)
}

/// `GET /instances`, or with `DETAIL` `GET /instances/detail`: ordered by id; the marker is the
/// last id seen, as in Trove.
async fn list_instances<const DETAIL: bool>(
    State(state): State<AppState>,
    links: Links,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let limit = paging
        .limit
        .unwrap_or(state.config.page_size)
        .min(state.config.page_size);
    let marker = match paging.marker.as_deref() {
        Some(m) => Some(Uuid::parse_str(m).map_err(|_| bad(format!("Invalid marker '{m}'.")))?),
        None => None,
    };
    let mut conn = state.pool.acquire().await?;
    let mut rows = instances::list(&mut conn, &links.tenant, marker, limit + 1).await?;
    let more = super::cut_page(&mut rows, limit);
    let view = if DETAIL {
        views::instance_detail
    } else {
        views::instance_summary
    };
    let expiry = state.config.agent_heartbeat_expiry_secs;
    let items: Vec<Value> = rows.iter().map(|r| view(r, &links, expiry)).collect();
    let mut body = json!({"instances": items});
    if more && let Some(last) = rows.last() {
        let path = if DETAIL {
            "instances/detail"
        } else {
            "instances"
        };
        body["links"] = links.next_page(path, limit, last.id);
    }
    Ok(Json(body))
}

/// The detail view of one instance, with its recoverable window.
async fn detail_json(state: &AppState, links: &Links, id: Uuid) -> ApiResult<Value> {
    let mut conn = state.pool.acquire().await?;
    let row = instances::find(&mut conn, id, Some(&links.tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let mut v = views::instance_detail(&row, links, state.config.agent_heartbeat_expiry_secs);
    let window = wal::window_of(&mut conn, id, None).await?;
    v["recovery_window"] = window.map(|(w, _)| w.summary()).unwrap_or(Value::Null);
    Ok(v)
}

async fn show_instance(
    State(state): State<AppState>,
    Path((_tenant, id)): Path<(String, String)>,
    links: Links,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    Ok(Json(
        json!({"instance": detail_json(&state, &links, id).await?}),
    ))
}

async fn update_instance(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id)?;
    let inst = validate::root(&body, "instance")?;
    if let Some(k) = inst.keys().find(|k| k.as_str() != "name") {
        return Err(ApiError::NotImplemented(format!(
            "Updating '{k}' is not supported; only 'name' can be changed."
        )));
    }
    let name = validate::non_empty_name(inst.get("name"), "instance 'name'")?;
    let mut tx = state.pool.begin().await?;
    instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    instances::rename(&mut tx, id, &name).await?;
    tx.commit().await?;
    Ok(StatusCode::ACCEPTED)
}

async fn delete_instance(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id)?;
    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let task = InstanceTask::from_code(inst.task_id).unwrap_or(InstanceTask::None);
    match task {
        InstanceTask::Building if inst.host.is_some() => {
            return Err(ApiError::Unprocessable(format!(
                "Instance {id} is not ready. (Status is BUILD)."
            )));
        }
        InstanceTask::Recovering | InstanceTask::Rebooting => {
            return Err(ApiError::Unprocessable(format!(
                "Instance {id} is busy ({}); try again when it is done.",
                task.description()
            )));
        }
        InstanceTask::Deleting => return Ok(StatusCode::ACCEPTED),
        _ => {}
    }
    let deadline = super::deadline_in(state.config.task_timeout_secs);
    let method = TaskManagerMethod::DeleteInstance { instance_id: id };
    dispatch
        .start_task(tx, id, InstanceTask::Deleting, deadline, &method)
        .await?;
    tracing::info!(instance.id = %id, "instance delete accepted");
    Ok(StatusCode::ACCEPTED)
}
