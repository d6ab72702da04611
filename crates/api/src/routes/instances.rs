//! Instances: list, detail, show, create (also from a backup), rename and delete.

use axum::{
    Extension, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::get,
};
use serde_json::{Value, json};
use trove_common::{
    outbox,
    rpc::{
        RpcMessage,
        guest::{RecoveryTarget, wal_location},
        taskmanager::{DatabaseSpec, FlavorRef, TaskManagerMethod, UserSpec},
        topics,
    },
    status::{BackupState, InstanceTask, ServiceStatus},
};
use uuid::Uuid;

use crate::{
    auth::Caller,
    db::{backups, catalog, instances, wal},
    error::{ApiError, ApiResult},
    extract::{JsonBody, Paging},
    recovery_window::{self, Target},
    request_id::RequestId,
    state::AppState,
    validate::{self, bad},
    views,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1.0/{tenant}/instances",
            get(list_instances).post(create_instance),
        )
        .route(
            "/v1.0/{tenant}/instances/detail",
            get(list_instances_detail),
        )
        .route(
            "/v1.0/{tenant}/instances/{id}",
            get(show_instance)
                .put(update_instance)
                .patch(update_instance)
                .delete(delete_instance),
        )
}

/// Path ids that are not UUIDs name nothing: 404, as for an unknown id.
pub fn path_uuid(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found(id))
}

async fn list_page(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    paging: &Paging,
    detail: bool,
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
    let mut rows = instances::list(&mut conn, tenant, marker, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let base = super::base_url(state, headers);
    let links = super::links(&base, tenant);
    let expiry = state.config.agent_heartbeat_expiry_secs;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            if detail {
                views::instance_detail(r, &links, expiry)
            } else {
                views::instance_summary(r, &links, expiry)
            }
        })
        .collect();
    let mut body = json!({"instances": items});
    if more && let Some(last) = rows.last() {
        let path = if detail {
            "instances/detail"
        } else {
            "instances"
        };
        body["links"] = json!([{
            "rel": "next",
            "href": format!("{base}/v1.0/{tenant}/{path}?limit={limit}&marker={}", last.id),
        }]);
    }
    Ok(Json(body))
}

async fn list_instances(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    list_page(&state, &tenant, &headers, &paging, false).await
}

async fn list_instances_detail(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    list_page(&state, &tenant, &headers, &paging, true).await
}

pub async fn detail_json(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    id: Uuid,
) -> ApiResult<Value> {
    let mut conn = state.pool.acquire().await?;
    let row = instances::find(&mut conn, id, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let base = super::base_url(state, headers);
    let mut v = views::instance_detail(
        &row,
        &super::links(&base, tenant),
        state.config.agent_heartbeat_expiry_secs,
    );
    let window = wal::window_of(&mut conn, id, None).await?;
    v["recovery_window"] = window.map(|(w, _)| w.summary()).unwrap_or(Value::Null);
    Ok(v)
}

async fn show_instance(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    Ok(Json(
        json!({"instance": detail_json(&state, &tenant, &headers, id).await?}),
    ))
}

/// Databases and users from a create body, checked before anything is written.
fn parse_databases_and_users(
    inst: &serde_json::Map<String, Value>,
) -> ApiResult<(Vec<DatabaseSpec>, Vec<UserSpec>)> {
    let mut dbs = Vec::new();
    if let Some(list) = inst.get("databases") {
        let list = list
            .as_array()
            .ok_or_else(|| bad("Validation error: instance['databases'] must be a list"))?;
        for d in list {
            let name = d
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Validation error: each database needs a 'name' string"))?;
            validate::pg_identifier(name, "database name")?;
            if dbs.iter().any(|x: &DatabaseSpec| x.name == name) {
                return Err(bad(format!("Database '{name}' is listed twice.")));
            }
            dbs.push(DatabaseSpec { name: name.into() });
        }
    }
    let mut users = Vec::new();
    if let Some(list) = inst.get("users") {
        let list = list
            .as_array()
            .ok_or_else(|| bad("Validation error: instance['users'] must be a list"))?;
        for u in list {
            let name = u
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Validation error: each user needs a 'name' string"))?;
            validate::pg_identifier(name, "user name")?;
            let password = u
                .get("password")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    bad(format!(
                        "Validation error: user '{name}' needs a non-empty 'password'"
                    ))
                })?;
            let mut granted = Vec::new();
            if let Some(ds) = u.get("databases") {
                let ds = ds.as_array().ok_or_else(|| {
                    bad(format!(
                        "Validation error: databases of user '{name}' must be a list"
                    ))
                })?;
                for d in ds {
                    let dn = d.get("name").and_then(Value::as_str).ok_or_else(|| {
                        bad(format!(
                            "Validation error: each database of user '{name}' needs a 'name'"
                        ))
                    })?;
                    if !dbs.iter().any(|x| x.name == dn) {
                        return Err(bad(format!(
                            "User '{name}' is granted database '{dn}', which is not in the instance's databases."
                        )));
                    }
                    granted.push(DatabaseSpec { name: dn.into() });
                }
            }
            if users.iter().any(|x: &UserSpec| x.name == name) {
                return Err(bad(format!("User '{name}' is listed twice.")));
            }
            users.push(UserSpec {
                name: name.into(),
                password: password.into(),
                databases: granted,
            });
        }
    }
    Ok((dbs, users))
}

async fn create_instance(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(rid): Extension<RequestId>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let inst = validate::root(&body, "instance")?;
    let name = validate::non_empty_name(inst.get("name"), "instance 'name'")?;
    let flavor_key = validate::flavor_ref(inst.get("flavorRef"))?;
    let volume_size = validate::volume_size(inst.get("volume"))?;
    let (databases, users) = parse_databases_and_users(inst)?;
    let access = inst.get("access").cloned();
    let restore_point = parse_restore_point(inst.get("restorePoint"))?;
    let ds_type = inst
        .get("datastore")
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let ds_version = inst
        .get("datastore")
        .and_then(|d| d.get("version"))
        .and_then(Value::as_str)
        .map(str::to_string);

    let mut tx = state.pool.begin().await?;
    let flavor = catalog::flavor(&mut tx, &flavor_key)
        .await?
        .ok_or_else(|| bad(format!("Flavor '{flavor_key}' cannot be found.")))?;

    let (backup, restore_target) = match &restore_point {
        Some(rp) => {
            let (b, t) = resolve_restore_point(&mut tx, &tenant, rp).await?;
            (Some(b), t)
        }
        None => (None, None),
    };

    let ds_key = ds_type
        .clone()
        .or_else(|| backup.as_ref().and_then(|b| b.ds_name.clone()))
        .unwrap_or_else(|| state.config.default_datastore.clone());
    let ds = catalog::datastore(&mut tx, &ds_key)
        .await?
        .ok_or_else(|| bad(format!("Datastore '{ds_key}' cannot be found.")))?;
    let version = match &ds_version {
        Some(v) => catalog::version_of(&mut tx, ds.id, v)
            .await?
            .ok_or_else(|| bad(format!("Datastore version '{v}' cannot be found.")))?,
        None => {
            let vid = match (&backup, ds.default_version_id) {
                (Some(b), _) if b.ds_name.as_deref() == Some(ds.name.as_str()) => {
                    b.datastore_version_id
                }
                (_, d) => d,
            }
            .ok_or_else(|| {
                bad(format!(
                    "Datastore '{}' has no default version; specify one.",
                    ds.name
                ))
            })?;
            catalog::version_by_id(&mut tx, vid)
                .await?
                .ok_or_else(|| bad(format!("Datastore version '{vid}' cannot be found.")))?
        }
    };
    if !version.active {
        return Err(bad(format!(
            "Datastore version '{}' is not active.",
            version.name
        )));
    }
    if let Some(b) = &backup
        && b.ds_name.as_deref() != Some(ds.name.as_str())
    {
        return Err(bad(format!(
            "The backup is of datastore {}, not {}.",
            b.ds_name.as_deref().unwrap_or("unknown"),
            ds.name
        )));
    }

    let id = Uuid::new_v4();
    instances::insert(
        &mut tx,
        &instances::NewInstance {
            id,
            name: &name,
            tenant_id: &tenant,
            flavor_id: &flavor.id,
            datastore_version_id: version.id,
            volume_size,
            access,
            restored_from_backup: backup.as_ref().map(|b| b.id),
            restore_target: restore_target
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
            task_id: InstanceTask::Building.code(),
            task_description: InstanceTask::Building.description(),
            task_deadline: super::deadline_in(state.config.task_timeout_secs),
            status_id: ServiceStatus::New.code(),
            status_description: ServiceStatus::New.description(),
        },
    )
    .await?;
    let msg = RpcMessage::new(
        &TaskManagerMethod::CreateInstance {
            instance_id: id,
            name: name.clone(),
            flavor: FlavorRef {
                id: flavor.id.clone(),
                ram: flavor.ram.into(),
            },
            datastore_manager: version.manager.clone(),
            ds_version: version.version.clone(),
            volume_size,
            backup_id: backup.as_ref().map(|b| b.id),
            databases,
            users,
            restore_target,
        },
        super::context(&caller, &rid),
    );
    let oid = outbox::enqueue(&mut tx, topics::TASKMANAGER, &msg).await?;
    tx.commit().await?;
    super::flush_later(&state, vec![oid]);
    tracing::info!(instance.id = %id, "instance create accepted");
    Ok(Json(
        json!({"instance": detail_json(&state, &tenant, &headers, id).await?}),
    ))
}

/// `restorePoint`: a backup, optionally replayed to a point in time (ours), or an instance's
/// history at a point in time (`instanceRef`, the origin document's proposal).
struct RestorePoint {
    backup: Option<Uuid>,
    instance: Option<Uuid>,
    target: Option<Target>,
    timeline: Option<i32>,
}

fn parse_restore_point(v: Option<&Value>) -> ApiResult<Option<RestorePoint>> {
    let rp = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(bad(
                "Validation error: instance['restorePoint'] must be an object",
            ));
        }
    };
    let present = |k: &str| rp.get(k).filter(|v| !v.is_null());
    let backup = present("backupRef")
        .map(|b| validate::uuid_ref(b, "restorePoint['backupRef']"))
        .transpose()?;
    let instance = present("instanceRef")
        .map(|i| validate::uuid_ref(i, "restorePoint['instanceRef']"))
        .transpose()?;
    let target = present("point_in_time")
        .map(recovery_window::parse_target)
        .transpose()?;
    let timeline = present("timeline")
        .map(|t| {
            t.as_i64()
                .and_then(|t| i32::try_from(t).ok())
                .filter(|t| *t >= 1)
                .ok_or_else(|| {
                    bad("Validation error: restorePoint['timeline'] must be a positive integer")
                })
        })
        .transpose()?;
    if backup.is_none() && instance.is_none() {
        return Err(bad(
            "Validation error: restorePoint needs 'backupRef', or 'instanceRef' with 'point_in_time'",
        ));
    }
    if instance.is_some() && target.is_none() {
        return Err(bad(
            "restorePoint['instanceRef'] needs 'point_in_time' (a time with a zone offset, or \"latest\").",
        ));
    }
    if timeline.is_some() && target.is_none() {
        return Err(bad(
            "restorePoint['timeline'] only applies together with point_in_time.",
        ));
    }
    Ok(Some(RestorePoint {
        backup,
        instance,
        target,
        timeline,
    }))
}

/// Resolves a restore point to the backup to restore and, for a point in time, the WAL replay
/// target on the source instance's history. Refuses before anything is written.
async fn resolve_restore_point(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    rp: &RestorePoint,
) -> ApiResult<(backups::BackupRow, Option<RecoveryTarget>)> {
    let requested = match rp.backup {
        Some(bid) => {
            let b = backups::find(conn, bid, Some(tenant))
                .await?
                .ok_or_else(|| ApiError::not_found(bid))?;
            if b.state != BackupState::Completed.as_str() {
                return Err(ApiError::Conflict(format!(
                    "Backup {bid} cannot be restored: its status is {}, not COMPLETED.",
                    b.state
                )));
            }
            Some(b)
        }
        None => None,
    };
    let Some(target) = rp.target else {
        let b = requested.expect("parse demands backupRef without point_in_time");
        return Ok((b, None));
    };
    let source = match (rp.instance, requested.as_ref().and_then(|b| b.instance_id)) {
        (Some(i), Some(bi)) if i != bi => {
            return Err(bad(format!(
                "Backup {} belongs to instance {bi}, not to instanceRef {i}.",
                rp.backup.unwrap_or_default()
            )));
        }
        (Some(i), _) => i,
        (None, Some(bi)) => bi,
        (None, None) => {
            return Err(ApiError::Unprocessable(
                "The backup has no source instance whose WAL could be replayed.".into(),
            ));
        }
    };
    instances::find(conn, source, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(source))?;
    let w = wal::planning_window(conn, source, rp.timeline).await?;
    let plan = recovery_window::plan(&w, target, rp.backup)?;
    let b = backups::find(conn, plan.backup, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(plan.backup))?;
    let timeline = u32::try_from(plan.timeline)
        .map_err(|_| bad(format!("Invalid timeline {}.", plan.timeline)))?;
    Ok((
        b,
        Some(RecoveryTarget {
            time: plan.time,
            timeline,
            wal_location: wal_location(source),
        }),
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
    Extension(caller): Extension<Caller>,
    Extension(rid): Extension<RequestId>,
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
    instances::set_task(
        &mut tx,
        id,
        InstanceTask::Deleting.code(),
        InstanceTask::Deleting.description(),
        Some(super::deadline_in(state.config.task_timeout_secs)),
    )
    .await?;
    let msg = RpcMessage::new(
        &TaskManagerMethod::DeleteInstance { instance_id: id },
        super::context(&caller, &rid),
    );
    let oid = outbox::enqueue(&mut tx, topics::TASKMANAGER, &msg).await?;
    tx.commit().await?;
    super::flush_later(&state, vec![oid]);
    tracing::info!(instance.id = %id, "instance delete accepted");
    Ok(StatusCode::ACCEPTED)
}
