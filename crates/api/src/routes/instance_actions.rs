//! `POST /instances/{id}/action` (restart) and `GET /instances/{id}/backups`.

use axum::{
    Extension, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use serde_json::Value;
use sqlx::PgConnection;
use trove_common::{
    outbox,
    rpc::{RpcMessage, taskmanager::TaskManagerMethod, topics},
    status::{InstanceTask, ServiceStatus},
};

use super::instances::path_uuid;
use crate::{
    auth::Caller,
    db::{instances, instances::LockedInstance, recoveries},
    error::{ApiError, ApiResult},
    extract::{JsonBody, Paging},
    request_id::RequestId,
    state::AppState,
    validate::bad,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1.0/{tenant}/instances/{id}/action",
            post(act_on_instance),
        )
        .route(
            "/v1.0/{tenant}/instances/{id}/backups",
            get(list_instance_backups),
        )
}

/// Trove's `validate_can_perform_action`: no task, a service that can take an action, no
/// running backup, and (ours) no recovery. Anything else is 422.
pub async fn ensure_available(conn: &mut PgConnection, inst: &LockedInstance) -> ApiResult<()> {
    let task = InstanceTask::from_code(inst.task_id).unwrap_or(InstanceTask::None);
    let service = ServiceStatus::from_code(inst.status_id).unwrap_or(ServiceStatus::Unknown);
    let busy_reason = if task != InstanceTask::None {
        Some(format!("task status was {}", task.description()))
    } else if !service.action_is_allowed() {
        Some(format!("service status was {}", service.description()))
    } else if running_backup(conn, inst.id).await? {
        Some("a backup is running".to_string())
    } else if recoveries::active_exists(conn, inst.id).await? {
        Some("a recovery is running".to_string())
    } else {
        None
    };
    match busy_reason {
        Some(r) => Err(ApiError::Unprocessable(format!(
            "Instance {} is not currently available for an action to be performed ({r}).",
            inst.id
        ))),
        None => Ok(()),
    }
}

async fn running_backup(conn: &mut PgConnection, id: uuid::Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM backups WHERE instance_id = $1 AND NOT deleted \
         AND state IN ('NEW', 'BUILDING', 'SAVING'))",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

async fn act_on_instance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(rid): Extension<RequestId>,
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
    if action != "restart" {
        return Err(ApiError::NotImplemented(format!(
            "Action '{action}' is not supported; supported actions: restart."
        )));
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
    instances::set_task(
        &mut tx,
        id,
        InstanceTask::Rebooting.code(),
        InstanceTask::Rebooting.description(),
        Some(super::deadline_in(state.config.task_timeout_secs)),
    )
    .await?;
    let msg = RpcMessage::new(
        &TaskManagerMethod::Restart { instance_id: id },
        super::context(&caller, &rid),
    );
    let oid = outbox::enqueue(&mut tx, topics::TASKMANAGER, &msg).await?;
    tx.commit().await?;
    super::flush_later(&state, vec![oid]);
    Ok(StatusCode::ACCEPTED)
}

async fn list_instance_backups(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    {
        let mut conn = state.pool.acquire().await?;
        instances::find(&mut conn, id, Some(&tenant))
            .await?
            .ok_or_else(|| ApiError::not_found(id))?;
    }
    super::backups::list_page(
        &state,
        &tenant,
        &headers,
        &paging,
        Some(id),
        &format!("instances/{id}/backups"),
    )
    .await
}
