//! `POST /instances/{id}/action`: restart, resize, and (admin) reset_status.

mod reset_status;
mod resize;

use axum::{
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::Value;
use trove_common::{rpc::taskmanager::TaskManagerMethod, status::InstanceTask};

use super::{availability::ensure_available, dispatch::Dispatch, path_uuid, table::Routes};
use crate::{
    auth::Caller,
    db::instances,
    error::{ApiError, ApiResult},
    extract::JsonBody,
    state::AppState,
    validate::bad,
};

pub fn routes() -> Routes {
    Routes::new().add(
        Method::POST,
        "/v1.0/{tenant}/instances/{id}/action",
        act_on_instance,
    )
}

async fn act_on_instance(
    State(state): State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id)?;
    let obj = body.as_object().expect("JsonBody only yields objects");
    let action = match obj.keys().next() {
        Some(k) if obj.len() == 1 => k.as_str(),
        _ => {
            return Err(bad(
                "Exactly one action must be given, e.g. {\"restart\": {}}.",
            ));
        }
    };
    match action {
        "restart" => {}
        "reset_status" => {
            return reset_status::reset_status(&state, &caller, &tenant, id, obj.get(action)).await;
        }
        "resize" => {
            resize::resize_instance(&state, dispatch, &tenant, id, obj.get("resize")).await?;
            return Ok(StatusCode::ACCEPTED);
        }
        _ => {
            return Err(ApiError::NotImplemented(format!(
                "Action '{action}' is not supported; supported actions: restart, resize, reset_status."
            )));
        }
    }
    if !matches!(
        obj.get("restart"),
        Some(Value::Object(_)) | Some(Value::Null)
    ) {
        return Err(bad(
            "Validation error: restart must be an object, e.g. {\"restart\": {}}.",
        ));
    }
    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    ensure_available(&mut tx, &inst).await?;
    let deadline = super::deadline_in(state.config.task_timeout_secs);
    let method = TaskManagerMethod::Restart { instance_id: id };
    dispatch
        .start_task(tx, id, InstanceTask::Rebooting, deadline, &method)
        .await?;
    Ok(StatusCode::ACCEPTED)
}
