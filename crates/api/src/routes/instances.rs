//! Instances: list, detail, show, create (also from a backup or a point in time), update (name
//! and network access) and delete.

mod configuration;
mod create;
pub(crate) mod options;

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
    auth::Caller,
    db::{instance_detail, instances, retention as retention_db},
    error::{ApiError, ApiResult},
    extract::{JsonBody, Paging},
    retention,
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
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/configuration",
            configuration::show_instance_configuration,
        )
}

/// `GET /instances`, or with `DETAIL` `GET /instances/detail`: ordered by id; the marker is the
/// last id seen, as in Trove. No filter applies (the client's `include_clustered` means nothing
/// without clusters), so `next` carries only `limit` and `marker`.
async fn list_instances<const DETAIL: bool>(
    State(state): State<AppState>,
    caller: Caller,
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
    let expiry = state.config.agent_heartbeat_expiry_secs;
    let audience = caller.audience();
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            if DETAIL {
                views::instance_detail(r, &links, expiry, audience)
            } else {
                views::instance_summary(r, &links, expiry)
            }
        })
        .collect();
    let mut body = json!({"instances": items});
    if more && let Some(last) = rows.last() {
        let path = if DETAIL {
            "instances/detail"
        } else {
            "instances"
        };
        body["links"] = links.next_page(path, limit, last.id, &[]);
    }
    Ok(Json(body))
}

/// The detail view of one instance, with its recoverable window, as `audience` may see it: one
/// statement against the control database.
async fn detail_json(
    state: &AppState,
    links: &Links,
    id: Uuid,
    caller: &Caller,
) -> ApiResult<Value> {
    let audience = caller.audience();
    let mut conn = state.pool.acquire().await?;
    let d = instance_detail::find(&mut conn, id, caller.scope(&links.tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let expiry = state.config.agent_heartbeat_expiry_secs;
    let mut v = views::instance_detail(&d.row, links, expiry, audience);
    v["recovery_window"] = d.window.map(|w| w.summary()).unwrap_or(Value::Null);
    v["retention"] = retention::view(
        d.row.retention_window_secs,
        d.row.retention_min_backups,
        d.default_retention,
    );
    Ok(v)
}

async fn show_instance(
    State(state): State<AppState>,
    caller: Caller,
    Path((_tenant, id)): Path<(String, String)>,
    links: Links,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    let detail = detail_json(&state, &links, id, &caller).await?;
    Ok(Json(json!({ "instance": detail })))
}

/// `PUT`/`PATCH`: a new `name` (at once), the instance's own `retention` policy (at once; `null`
/// returns to the operator's default), and either new network `access` (Trove's UPDATING task:
/// the guest rewrites the server's rules and reloads them, no restart) or a `configuration`
/// group to attach (`null` detaches it; see [`configuration`]).
async fn update_instance(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id)?;
    let inst = validate::root(&body, "instance")?;
    if let Some(k) = inst.keys().find(|k| {
        !matches!(
            k.as_str(),
            "name" | "access" | "retention" | "configuration"
        )
    }) {
        return Err(ApiError::NotImplemented(format!(
            "Updating '{}' is not supported; only 'name', 'access', 'retention' and 'configuration' can be changed.",
            validate::printable(k)
        )));
    }
    let name = inst
        .get("name")
        .map(|n| validate::non_empty_name(Some(n), "instance 'name'"))
        .transpose()?;
    // Present means a change: null is not an access.
    let access = match inst.get("access") {
        None => None,
        Some(v) => Some(
            validate::access(Some(v))?
                .ok_or_else(|| bad("Validation error: instance['access'] must be an object"))?,
        ),
    };
    // Present means a change: null clears the override.
    let retention = inst
        .get("retention")
        .map(retention::parse_update)
        .transpose()?;
    // Present means a change: null detaches.
    let config = inst
        .get("configuration")
        .map(configuration::parse)
        .transpose()?;
    if access.is_some() && config.is_some() {
        return Err(bad(
            "Validation error: 'access' and 'configuration' cannot be changed at the same time",
        ));
    }
    if name.is_none() && access.is_none() && retention.is_none() && config.is_none() {
        return Err(bad(
            "Validation error: instance needs 'name', 'access', 'retention' or 'configuration' to update",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let locked = instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let task = InstanceTask::from_code(locked.task_id).unwrap_or(InstanceTask::None);
    // Access can change on an idle instance, or again after a change that failed; not while
    // another task may stop the server or swap its data.
    if access.is_some() && !matches!(task, InstanceTask::None | InstanceTask::UpdatingErrorAccess) {
        return Err(ApiError::Unprocessable(format!(
            "Instance {id} is not currently available for an access change (task: {}).",
            task.description()
        )));
    }
    if let Some(name) = &name {
        instances::rename(&mut tx, id, name).await?;
    }
    if let Some(update) = retention {
        let (window_secs, min_backups) = update.columns();
        retention_db::set_override(&mut tx, id, window_secs, min_backups).await?;
        tracing::info!(instance.id = %id, ?window_secs, ?min_backups, "retention override set");
    }
    if let Some(wanted) = config {
        configuration::attach_or_detach(tx, dispatch, &tenant, &locked, wanted).await?;
        return Ok(StatusCode::ACCEPTED);
    }
    let Some(access) = access else {
        tx.commit().await?;
        return Ok(StatusCode::ACCEPTED);
    };
    instances::set_access(&mut tx, id, &access).await?;
    let deadline = super::deadline_in(state.config.task_timeout_secs);
    let method = TaskManagerMethod::UpdateAccess {
        instance_id: id,
        access,
    };
    dispatch
        .start_task(tx, id, InstanceTask::Updating, deadline, &method)
        .await?;
    tracing::info!(instance.id = %id, "access update accepted");
    Ok(StatusCode::ACCEPTED)
}

async fn delete_instance(
    State(state): State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id)?;
    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, id, caller.scope(&tenant))
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
