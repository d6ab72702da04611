//! `POST /instances/{id}/recover` (alias `/restore`): bring a running instance back to a backup,
//! in place. Every refusal happens before anything is written.

use axum::{
    Extension, Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use serde_json::{Value, json};
use trove_common::{
    outbox,
    rpc::{RpcMessage, taskmanager::TaskManagerMethod, topics},
    status::{BackupState, InstanceTask},
    timefmt::trove_time,
};
use uuid::Uuid;

use crate::{
    auth::Caller,
    db::{backups, instances, recoveries},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    request_id::RequestId,
    state::AppState,
    validate::{self, bad},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1.0/{tenant}/instances/{id}/recover",
            post(recover_instance),
        )
        .route(
            "/v1.0/{tenant}/instances/{id}/restore",
            post(recover_instance),
        )
}

/// The parsed body: which backup, and (checked) which instance.
struct RecoverRequest {
    backup_id: Uuid,
}

fn parse(body: &Value, path_id: Uuid) -> ApiResult<RecoverRequest> {
    let r = validate::root(body, "recovery")?;
    if let Some(k) = r
        .keys()
        .find(|k| !matches!(k.as_str(), "instance" | "backup" | "point_in_time"))
    {
        return Err(bad(format!(
            "Validation error: recovery has an unknown key '{k}' (allowed: instance, backup, point_in_time)."
        )));
    }
    if let Some(i) = r.get("instance") {
        let i = validate::uuid_strict(i, "recovery['instance']")?;
        if i != path_id {
            return Err(bad(format!(
                "recovery['instance'] {i} does not match the instance {path_id} in the URL."
            )));
        }
    }
    if r.get("point_in_time").is_some_and(|p| !p.is_null()) {
        return Err(ApiError::NotImplemented(
            "Recovery to a point in time is not available yet; recover to a backup with recovery.backup.".into(),
        ));
    }
    let backup = r
        .get("backup")
        .ok_or_else(|| bad("Validation error: recovery 'backup' is a required property"))?;
    Ok(RecoverRequest {
        backup_id: validate::uuid_strict(backup, "recovery['backup']")?,
    })
}

async fn recover_instance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(rid): Extension<RequestId>,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = super::instances::path_uuid(&id)?;
    let req = parse(&body, id)?;

    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let backup = backups::find(&mut tx, req.backup_id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(req.backup_id))?;
    // Holds off a concurrent delete of the backup until this recovery is recorded.
    backups::lock(&mut tx, backup.id).await?;
    if backup.state != BackupState::Completed.as_str() {
        return Err(ApiError::Conflict(format!(
            "Backup {} cannot be used for a recovery: its status is {}, not COMPLETED.",
            backup.id, backup.state
        )));
    }
    let inst_row = instances::find(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    if backup.ds_name.as_deref() != Some(inst_row.ds_name.as_str()) {
        return Err(bad(format!(
            "Backup {} is of datastore {}, but instance {id} runs {}.",
            backup.id,
            backup.ds_name.as_deref().unwrap_or("unknown"),
            inst_row.ds_name
        )));
    }
    super::instance_actions::ensure_available(&mut tx, &inst).await?;

    let recovery_id = Uuid::new_v4();
    let deadline = super::deadline_in(state.config.recovery_timeout_secs);
    recoveries::insert(
        &mut tx,
        recovery_id,
        id,
        backup.id,
        backup.stop_time,
        deadline,
    )
    .await?;
    instances::set_task(
        &mut tx,
        id,
        InstanceTask::Recovering.code(),
        InstanceTask::Recovering.description(),
        Some(deadline),
    )
    .await?;
    let msg = RpcMessage::new(
        &TaskManagerMethod::DoInstanceRecovery {
            instance_id: id,
            backup_id: backup.id,
            recovery_id,
        },
        super::context(&caller, &rid),
    );
    let oid = outbox::enqueue(&mut tx, topics::TASKMANAGER, &msg).await?;
    tx.commit().await?;
    super::flush_later(&state, vec![oid]);
    tracing::info!(instance.id = %id, backup.id = %backup.id, recovery.id = %recovery_id, "recovery accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"recovery": {
            "id": id,
            "name": inst_row.name,
            "status": "BUILDING",
            "datastore": inst_row.ds_name,
            "recovered_from_backup": backup.id,
            "point_in_time": backup.stop_time.map(trove_time),
            "recovery_id": recovery_id,
        }})),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_instance_must_match_path() {
        let p = Uuid::new_v4();
        let other = Uuid::new_v4();
        let b = Uuid::new_v4();
        assert!(
            parse(
                &json!({"recovery": {"instance": p.to_string(), "backup": b.to_string()}}),
                p
            )
            .is_ok()
        );
        assert!(parse(&json!({"recovery": {"backup": b.to_string()}}), p).is_ok());
        assert!(
            parse(
                &json!({"recovery": {"instance": other.to_string(), "backup": b.to_string()}}),
                p
            )
            .is_err()
        );
        assert!(parse(&json!({"recovery": {"instance": p.to_string()}}), p).is_err());
        assert!(parse(&json!({"recovery": {"backup": "not-a-uuid"}}), p).is_err());
        assert!(parse(&json!({"recover": {}}), p).is_err());
    }
}
