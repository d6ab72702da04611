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
    db::{backups, instances, recoveries, wal},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    recovery_window::{self, Target},
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

/// The parsed body: which backup, which point in time, on which timeline.
struct RecoverRequest {
    backup_id: Option<Uuid>,
    target: Option<Target>,
    timeline: Option<i32>,
}

fn parse(body: &Value, path_id: Uuid) -> ApiResult<RecoverRequest> {
    let r = validate::root(body, "recovery")?;
    if let Some(k) = r.keys().find(|k| {
        !matches!(
            k.as_str(),
            "instance" | "backup" | "point_in_time" | "timeline"
        )
    }) {
        return Err(bad(format!(
            "Validation error: recovery has an unknown key '{k}' (allowed: instance, backup, point_in_time, timeline)."
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
    let target = match r.get("point_in_time") {
        None | Some(Value::Null) => None,
        Some(v) => Some(recovery_window::parse_target(v)?),
    };
    let timeline = match r.get("timeline") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .and_then(|t| i32::try_from(t).ok())
                .filter(|t| *t >= 1)
                .ok_or_else(|| {
                    bad("Validation error: recovery['timeline'] must be a positive integer")
                })?,
        ),
    };
    if timeline.is_some() && target.is_none() {
        return Err(bad(
            "recovery['timeline'] only applies together with point_in_time.",
        ));
    }
    let backup_id = match r.get("backup") {
        None | Some(Value::Null) if target.is_some() => None,
        None | Some(Value::Null) => {
            return Err(bad(
                "Validation error: recovery needs 'backup', or 'point_in_time' (a time with a zone offset, or \"latest\")",
            ));
        }
        Some(b) => Some(validate::uuid_strict(b, "recovery['backup']")?),
    };
    Ok(RecoverRequest {
        backup_id,
        target,
        timeline,
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
    let inst_row = instances::find(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    if let Some(bid) = req.backup_id {
        let backup = backups::find(&mut tx, bid, Some(&tenant))
            .await?
            .ok_or_else(|| ApiError::not_found(bid))?;
        check_backup(&backup, &inst_row.ds_name, id)?;
    }
    // The point-in-time plan (or the plain backup) decides which backup is restored.
    let plan = match req.target {
        Some(target) => {
            let w = wal::planning_window(&mut tx, id, req.timeline).await?;
            Some(recovery_window::plan(&w, target, req.backup_id)?)
        }
        None => None,
    };
    let backup_id = plan
        .as_ref()
        .map(|p| p.backup)
        .or(req.backup_id)
        .expect("parse demands a backup or a point in time");
    let backup = backups::find(&mut tx, backup_id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(backup_id))?;
    // Holds off a concurrent delete of the backup until this recovery is recorded.
    backups::lock(&mut tx, backup.id).await?;
    check_backup(&backup, &inst_row.ds_name, id)?;
    super::instance_actions::ensure_available(&mut tx, &inst).await?;

    let recovery_id = Uuid::new_v4();
    let deadline = super::deadline_in(state.config.recovery_timeout_secs);
    let (kind, target_time, timeline, point_in_time) = match &plan {
        Some(p) => (
            if p.time.is_some() { "time" } else { "latest" },
            p.time,
            Some(p.timeline),
            Some(recovery_window::rfc3339(p.point_in_time)),
        ),
        None => (
            "backup",
            backup.stop_time,
            None,
            backup.stop_time.map(trove_time),
        ),
    };
    recoveries::insert(
        &mut tx,
        &recoveries::NewRecovery {
            id: recovery_id,
            instance_id: id,
            backup_id: backup.id,
            target_kind: kind,
            target_time,
            target_timeline: timeline,
            deadline,
        },
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
    tracing::info!(instance.id = %id, backup.id = %backup.id, recovery.id = %recovery_id, target = kind, "recovery accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"recovery": {
            "id": id,
            "name": inst_row.name,
            "status": "BUILDING",
            "datastore": inst_row.ds_name,
            "recovered_from_backup": backup.id,
            "point_in_time": point_in_time,
            "timeline": timeline,
            "recovery_id": recovery_id,
        }})),
    ))
}

/// A backup can serve a recovery of `instance` only when complete and of its datastore.
fn check_backup(backup: &backups::BackupRow, datastore: &str, instance: Uuid) -> ApiResult<()> {
    if backup.state != BackupState::Completed.as_str() {
        return Err(ApiError::Conflict(format!(
            "Backup {} cannot be used for a recovery: its status is {}, not COMPLETED.",
            backup.id, backup.state
        )));
    }
    if backup.ds_name.as_deref() != Some(datastore) {
        return Err(bad(format!(
            "Backup {} is of datastore {}, but instance {instance} runs {datastore}.",
            backup.id,
            backup.ds_name.as_deref().unwrap_or("unknown"),
        )));
    }
    Ok(())
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
        assert!(parse(&json!({"recovery": {"point_in_time": "latest"}}), p).is_ok());
        assert!(
            parse(
                &json!({"recovery": {"point_in_time": "2026-01-01T00:00:00"}}),
                p
            )
            .is_err()
        );
        assert!(
            parse(
                &json!({"recovery": {"backup": b.to_string(), "timeline": 2}}),
                p
            )
            .is_err()
        );
        assert!(parse(&json!({"recovery": {"backup": "not-a-uuid"}}), p).is_err());
        assert!(parse(&json!({"recover": {}}), p).is_err());
    }
}
