//! `POST /instances/{id}/recover` (alias `/restore`): bring a running instance back to a backup,
//! in place. Every refusal happens before anything is written.

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use trove_common::{
    recovery::{StopPoint, TargetKind, format_lsn},
    restore_point::RestorePointName,
    rpc::taskmanager::TaskManagerMethod,
    status::InstanceTask,
    timefmt::trove_time,
};
use uuid::Uuid;

use super::{availability::ensure_available, dispatch::Dispatch, path_uuid, table::Routes};
use crate::{
    db::{backups, instances, recoveries},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    recovery_request::{self, BackupUse, PointInTime, Target},
    recovery_window,
    state::AppState,
    validate::{self, bad},
};

/// The `status` a recover answers with, as Trove's restore answers it: the instance's status
/// word, not a recovery state.
const ACCEPTED_STATUS: &str = "BUILDING";

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::POST,
            "/v1.0/{tenant}/instances/{id}/recover",
            recover_instance,
        )
        .add(
            Method::POST,
            "/v1.0/{tenant}/instances/{id}/restore",
            recover_instance,
        )
}

/// The parsed body: which backup, which point in time, on which timeline.
struct RecoverRequest {
    backup_id: Option<Uuid>,
    point: PointInTime,
    /// A restore point to look up; `point.stop` is set from it before planning.
    restore_point: Option<RestorePointName>,
    /// Stop before the cut-over, the staged copy readable until a confirm or cancel.
    preview: bool,
}

fn parse(body: &Value, path_id: Uuid) -> ApiResult<RecoverRequest> {
    let r = validate::root(body, "recovery")?;
    if let Some(k) = r.keys().find(|k| {
        !matches!(
            k.as_str(),
            "instance" | "backup" | "point_in_time" | "target" | "timeline" | "preview"
        )
    }) {
        return Err(bad(format!(
            "Validation error: recovery has an unknown key '{k}' (allowed: instance, backup, point_in_time, target, timeline, preview)."
        )));
    }
    let preview = match r.get("preview") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(bad(
                "Validation error: recovery['preview'] must be true or false",
            ));
        }
    };
    if let Some(i) = r.get("instance") {
        let i = validate::uuid_strict(i, "recovery['instance']")?;
        if i != path_id {
            return Err(bad(format!(
                "recovery['instance'] {i} does not match the instance {path_id} in the URL."
            )));
        }
    }
    let mut point = PointInTime::parse(r, "recovery")?;
    let mut restore_point = None;
    // `target` is the other way to say where replay stops; one request names one stop point.
    if let Some(t) = r.get("target").filter(|t| !t.is_null()) {
        if point.stop.is_some() {
            return Err(bad(
                "recovery names two targets (point_in_time and target); name one.",
            ));
        }
        match recovery_request::parse_target(t, "recovery")? {
            Target::Stop(stop) => point.stop = Some(stop),
            Target::RestorePoint(name) => {
                restore_point = Some(name);
                // Stands in until the name is resolved, so the checks below see a target.
                point.stop = Some(StopPoint::Latest);
            }
        }
    }
    point.check_timeline("recovery")?;
    let backup_id = match r.get("backup") {
        None | Some(Value::Null) if point.stop.is_some() => None,
        None | Some(Value::Null) => {
            return Err(bad(
                "Validation error: recovery needs 'backup', 'point_in_time' (a time with a zone offset, or \"latest\"), or 'target' (an lsn, an xid or a restore_point)",
            ));
        }
        Some(b) => Some(validate::uuid_strict(b, "recovery['backup']")?),
    };
    Ok(RecoverRequest {
        backup_id,
        point,
        restore_point,
        preview,
    })
}

async fn recover_instance(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_uuid(&id)?;
    let mut req = parse(&body, id)?;

    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let inst_row = instances::find(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    if let Some(bid) = req.backup_id {
        let backup =
            recovery_request::requested_backup(&mut tx, &tenant, bid, BackupUse::Recovery).await?;
        same_datastore(&backup, &inst_row.ds_name, id)?;
    }
    if let Some(name) = req.restore_point {
        req.point.stop = Some(recovery_request::resolve_restore_point(&mut tx, id, name).await?);
    }
    if req.preview && req.point.stop == Some(StopPoint::Latest) {
        return Err(bad(
            "A preview needs a target replay can pause at; \"latest\" ends wherever the WAL ends. Name a time, an lsn, an xid, a restore point or a backup.",
        ));
    }
    // The point-in-time plan (or the plain backup) decides which backup is restored.
    let plan = match req.point.stop {
        Some(stop) => Some(
            recovery_request::plan(&mut tx, id, stop, req.point.timeline, req.backup_id).await?,
        ),
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
    // Holds off a concurrent delete of the backup, by a user or by retention, until this
    // recovery is recorded; one deleted meanwhile is gone.
    backups::lock(&mut tx, backup.id)
        .await?
        .ok_or_else(|| ApiError::not_found(backup.id))?;
    recovery_request::ensure_completed(&backup, BackupUse::Recovery)?;
    same_datastore(&backup, &inst_row.ds_name, id)?;
    ensure_available(&mut tx, &inst).await?;
    // The preview's staged copy is a second server on the host until it is settled.
    if req.preview && !recoveries::host_has_room_for_preview(&mut tx, id).await? {
        return Err(ApiError::Conflict(format!(
            "The host of instance {id} has no free capacity for a preview's second server; recover without a preview, or try again when a slot is free."
        )));
    }

    let recovery_id = Uuid::new_v4();
    let deadline = super::deadline_in(state.config.recovery_timeout_secs);
    // Stored as columns, which the taskmanager rebuilds into the same target.
    let (kind, target_time, timeline, point_in_time) = match &plan {
        Some(p) => (
            p.target.stop.kind(),
            p.target.stop.time(),
            Some(p.target.timeline),
            p.point_in_time.map(recovery_window::rfc3339),
        ),
        None => (
            TargetKind::Backup,
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
            target_lsn: plan.as_ref().and_then(|p| p.target.stop.lsn()),
            target_xid: plan.as_ref().and_then(|p| p.target.stop.xid()),
            target_name: plan.as_ref().and_then(|p| p.target.stop.restore_point()),
            deadline,
            preview: req.preview,
        },
    )
    .await?;
    let method = TaskManagerMethod::DoInstanceRecovery {
        instance_id: id,
        backup_id: backup.id,
        recovery_id,
    };
    dispatch
        .start_task(tx, id, InstanceTask::Recovering, deadline, &method)
        .await?;
    tracing::info!(instance.id = %id, backup.id = %backup.id, recovery.id = %recovery_id, target = %kind, preview = req.preview, "recovery accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"recovery": {
            "id": id,
            "name": inst_row.name,
            "status": ACCEPTED_STATUS,
            "datastore": inst_row.ds_name,
            "recovered_from_backup": backup.id,
            "point_in_time": point_in_time,
            "target": plan.as_ref().and_then(|p| target_view(p.target.stop)),
            "timeline": timeline,
            "recovery_id": recovery_id,
            "preview": req.preview,
        }})),
    ))
}

/// The `target` a response echoes: the LSN or transaction replay stops at; None for a time.
fn target_view(stop: StopPoint) -> Option<Value> {
    match stop {
        StopPoint::Lsn(l) => Some(json!({"lsn": format_lsn(l)})),
        StopPoint::Xid { xid, inclusive } => Some(json!({"xid": xid, "inclusive": inclusive})),
        StopPoint::RestorePoint { name, lsn } => {
            Some(json!({"restore_point": name.as_str(), "lsn": format_lsn(lsn)}))
        }
        StopPoint::Time(_) | StopPoint::Latest => None,
    }
}

/// A backup can serve a recovery of `instance` only when it is of the instance's datastore.
fn same_datastore(backup: &backups::BackupRow, datastore: &str, instance: Uuid) -> ApiResult<()> {
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
        let previewed = parse(
            &json!({"recovery": {"backup": b.to_string(), "preview": true}}),
            p,
        )
        .expect("a preview of a backup");
        assert!(previewed.preview);
        assert!(
            !parse(
                &json!({"recovery": {"backup": b.to_string(), "preview": null}}),
                p
            )
            .expect("null is absent")
            .preview
        );
        assert!(
            parse(
                &json!({"recovery": {"backup": b.to_string(), "preview": "yes"}}),
                p
            )
            .is_err()
        );
        assert!(
            parse(
                &json!({"recovery": {"target": {"lsn": "0/3000028"}, "timeline": 1}}),
                p
            )
            .is_ok()
        );
        assert!(
            parse(
                &json!({"recovery": {"target": {"xid": 735}, "point_in_time": "latest"}}),
                p
            )
            .is_err()
        );
    }
}
