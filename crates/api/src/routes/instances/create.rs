//! `POST /instances`: a new instance, empty, from a backup, or from another instance's history at
//! a point in time (`restorePoint`).

use axum::{
    Json,
    extract::{Path, State},
};
use std::collections::HashSet;

use serde_json::{Map, Value, json};
use trove_common::{
    recovery::{RecoveryTarget, StopPoint},
    restore_point::RestorePointName,
    rpc::taskmanager::{DatabaseSpec, FlavorRef, TaskManagerMethod, UserSpec},
    secrets::{Password, PublicKey, user_password_context},
    status::{InstanceTask, ServiceStatus},
};
use uuid::Uuid;

use super::{detail_json, options};
use crate::{
    auth::Caller,
    db::{backups, catalog, instances, retention},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    limits, quota,
    recovery_request::{self, BackupUse, PointInTime},
    routes::{deadline_in, dispatch::Dispatch},
    state::AppState,
    validate::{self, bad},
    views::Links,
};

/// A user of a create body, its password still in clear; it is sealed once the instance has an
/// id ([`NewUser::seal`]), so the clear text never leaves this request.
struct NewUser {
    name: String,
    password: Password,
    databases: Vec<DatabaseSpec>,
}

impl NewUser {
    /// Sealed for the taskmanager and bound to this instance and user.
    fn seal(self, for_key: &PublicKey, instance_id: Uuid) -> UserSpec {
        let context = user_password_context(instance_id, &self.name);
        UserSpec {
            password: for_key.seal(&context, &self.password),
            name: self.name,
            databases: self.databases,
        }
    }
}

/// Databases and users from a create body, checked before anything is written. Lists are
/// capped and duplicates found through sets, so the work grows linearly with the body.
fn parse_databases_and_users(
    inst: &Map<String, Value>,
) -> ApiResult<(Vec<DatabaseSpec>, Vec<NewUser>)> {
    let listed = validate::list(
        inst,
        "databases",
        "instance['databases']",
        limits::DATABASES,
    )?;
    let mut db_names = HashSet::with_capacity(listed.len());
    let mut dbs = Vec::with_capacity(listed.len());
    for d in listed {
        let name = validate::entry_name(d, "database")?;
        if !db_names.insert(name) {
            return Err(bad(format!("Database '{name}' is listed twice.")));
        }
        dbs.push(DatabaseSpec { name: name.into() });
    }
    let listed = validate::list(inst, "users", "instance['users']", limits::USERS)?;
    let mut user_names = HashSet::with_capacity(listed.len());
    let mut users = Vec::with_capacity(listed.len());
    for u in listed {
        let name = validate::entry_name(u, "user")?;
        let password = validate::password(u.get("password"), name)?;
        let granted_list = match u.as_object() {
            Some(o) => validate::list(
                o,
                "databases",
                &format!("databases of user '{name}'"),
                limits::DATABASES_PER_USER,
            )?,
            None => &[],
        };
        let mut granted_names = HashSet::with_capacity(granted_list.len());
        let mut granted = Vec::with_capacity(granted_list.len());
        for d in granted_list {
            let dn = d.get("name").and_then(Value::as_str).ok_or_else(|| {
                bad(format!(
                    "Validation error: each database of user '{name}' needs a 'name'"
                ))
            })?;
            validate::pg_identifier(dn, &format!("database name of user '{name}'"))?;
            if !db_names.contains(dn) {
                return Err(bad(format!(
                    "User '{name}' is granted database '{dn}', which is not in the instance's databases."
                )));
            }
            // Granting the same database twice is harmless; it is granted once.
            if granted_names.insert(dn) {
                granted.push(DatabaseSpec { name: dn.into() });
            }
        }
        if !user_names.insert(name) {
            return Err(bad(format!("User '{name}' is listed twice.")));
        }
        users.push(NewUser {
            name: name.into(),
            password: Password::new(password),
            databases: granted,
        });
    }
    Ok((dbs, users))
}

pub(super) async fn create_instance(
    State(state): State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    Path(tenant): Path<String>,
    links: Links,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let inst = validate::root(&body, "instance")?;
    let name = validate::non_empty_name(inst.get("name"), "instance 'name'")?;
    let flavor_key = validate::flavor_ref(inst.get("flavorRef"))?;
    let volume_size = validate::volume_size(inst.get("volume"))?;
    let (databases, users) = parse_databases_and_users(inst)?;
    options::refuse_unimplemented(inst)?;
    // Absent or null: the instance is open to every address, as before access was enforced.
    let access = validate::access(inst.get("access"))?;
    let restore_point = parse_restore_point(inst.get("restorePoint"))?;
    let (ds_type, ds_version) = validate::datastore(inst.get("datastore"))?;
    let version_number = validate::optional_string(
        inst.get("datastore").and_then(|d| d.get("version_number")),
        "instance['datastore']['version_number']",
        limits::REF_CHARS,
    )?;

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
        // Trove's `version_number` tells apart versions that share a name.
        Some(v) => catalog::version_of(&mut tx, ds.id, v, version_number.as_deref())
            .await?
            .ok_or_else(|| match &version_number {
                Some(n) => bad(format!(
                    "Datastore version '{v}' with version number '{}' cannot be found.",
                    validate::printable(n)
                )),
                None => bad(format!("Datastore version '{v}' cannot be found.")),
            })?,
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
    // Without a version name, the number can only confirm the default version, or contradict it.
    if let Some(n) = &version_number
        && *n != version.version
    {
        return Err(bad(format!(
            "Datastore version '{}' is version {}, not '{}'.",
            version.name,
            version.version,
            validate::printable(n)
        )));
    }
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

    // The client sends the group's id; absent, null or empty is none, as before groups existed.
    let configuration_id = match inst.get("configuration") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(v) => {
            let group = super::configuration::parse(v)?
                .ok_or_else(|| bad("Validation error: instance['configuration'] must be an id"))?;
            Some(super::configuration::usable_group(&mut tx, group, &tenant, version.id).await?)
        }
    };

    // Last before the insert: the project's quota stays locked until the commit.
    let delta = quota::Amounts {
        instances: 1,
        volumes: volume_size.map_or(0, i64::from),
        ram: i64::from(flavor.ram),
        ..quota::Amounts::default()
    };
    quota::check(&mut tx, &tenant, &state.config.quotas, &delta).await?;
    let id = Uuid::new_v4();
    let sealing_key = state
        .config
        .taskmanager_public_key
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("taskmanager_public_key is not configured"))?;
    let users: Vec<UserSpec> = users.into_iter().map(|u| u.seal(sealing_key, id)).collect();
    instances::insert(
        &mut tx,
        &instances::NewInstance {
            id,
            name: &name,
            tenant_id: &tenant,
            flavor_id: &flavor.id,
            datastore_version_id: version.id,
            volume_size,
            access: access
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(anyhow::Error::from)?,
            restored_from_backup: backup.as_ref().map(|b| b.id),
            restore_target: restore_target
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok()),
            task: InstanceTask::Building,
            task_deadline: deadline_in(state.config.task_timeout_secs),
            status: ServiceStatus::New,
            configuration_id,
        },
    )
    .await?;
    let method = TaskManagerMethod::CreateInstance {
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
    };
    dispatch.send(tx, &method).await?;
    tracing::info!(instance.id = %id, "instance create accepted");
    let detail = detail_json(&state, &links, id, &caller).await?;
    Ok(Json(json!({ "instance": detail })))
}

/// `restorePoint`: a backup, optionally replayed to a point in time (ours), or an instance's
/// history at a point in time (`instanceRef`, the origin document's proposal).
struct RestorePoint {
    backup: Option<Uuid>,
    instance: Option<Uuid>,
    point: PointInTime,
    /// A named restore point of the source (`target: {"restore_point": …}`); `point.stop` is
    /// then a placeholder until the name is looked up.
    named: Option<RestorePointName>,
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
    let uuid_ref = |k: &str| {
        rp.get(k)
            .filter(|v| !v.is_null())
            .map(|v| validate::uuid_ref(v, &format!("restorePoint['{k}']")))
            .transpose()
    };
    let backup = uuid_ref("backupRef")?;
    let instance = uuid_ref("instanceRef")?;
    let mut point = PointInTime::parse(rp, "restorePoint")?;
    let mut named = None;
    // `target` (an LSN, a transaction or a named restore point) is the other way to say where
    // replay stops.
    if let Some(t) = rp.get("target").filter(|t| !t.is_null()) {
        if point.stop.is_some() {
            return Err(bad(
                "restorePoint names two targets (point_in_time and target); name one.",
            ));
        }
        point.stop = Some(match recovery_request::parse_target(t, "restorePoint")? {
            recovery_request::Target::Stop(stop) => stop,
            // Resolved by name on the source instance once it is known.
            recovery_request::Target::RestorePoint(name) => {
                named = Some(name);
                StopPoint::Latest
            }
        });
    }
    if backup.is_none() && instance.is_none() {
        return Err(bad(
            "Validation error: restorePoint needs 'backupRef', or 'instanceRef' with 'point_in_time'",
        ));
    }
    if instance.is_some() && point.stop.is_none() {
        return Err(bad(
            "restorePoint['instanceRef'] needs 'point_in_time' (a time with a zone offset, or \"latest\") or 'target' (an lsn, an xid or a restore_point).",
        ));
    }
    point.check_timeline("restorePoint")?;
    Ok(Some(RestorePoint {
        backup,
        instance,
        point,
        named,
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
            Some(recovery_request::requested_backup(conn, tenant, bid, BackupUse::Restore).await?)
        }
        None => None,
    };
    let Some(stop) = rp.point.stop else {
        let b = requested.expect("parse demands backupRef without point_in_time");
        lock_backup(conn, &b).await?;
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
    // A deleted source still serves while its retention keeps its backups and WAL.
    if !retention::restore_source_exists(conn, source, tenant).await? {
        return Err(ApiError::not_found(source));
    }
    let stop = match rp.named {
        Some(name) => recovery_request::resolve_restore_point(conn, source, name).await?,
        None => stop,
    };
    let plan = recovery_request::plan(conn, source, stop, rp.point.timeline, rp.backup).await?;
    let b = backups::find(conn, plan.backup, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(plan.backup))?;
    lock_backup(conn, &b).await?;
    Ok((b, Some(plan.target)))
}

/// Holds off a concurrent delete of the backup, by a user or by retention, until the new
/// instance that restores it is recorded; one that was deleted meanwhile is gone (404).
async fn lock_backup(conn: &mut sqlx::PgConnection, b: &backups::BackupRow) -> ApiResult<()> {
    backups::lock(conn, b.id)
        .await?
        .map(drop)
        .ok_or_else(|| ApiError::not_found(b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    use trove_common::recovery::StopPoint;

    fn restore_point(v: Value) -> ApiResult<Option<RestorePoint>> {
        parse_restore_point(Some(&v))
    }

    fn message(r: ApiResult<Option<RestorePoint>>) -> String {
        match r {
            Err(e) => e.to_string(),
            Ok(_) => "accepted".into(),
        }
    }

    #[test]
    fn a_restore_point_names_a_backup_or_an_instance_at_a_point_in_time() {
        let id = Uuid::new_v4().to_string();
        assert!(matches!(
            restore_point(json!({"backupRef": id})),
            Ok(Some(_))
        ));
        assert!(matches!(
            restore_point(json!({"instanceRef": id, "point_in_time": "latest", "timeline": 2})),
            Ok(Some(RestorePoint {
                point: PointInTime {
                    timeline: Some(2),
                    ..
                },
                ..
            }))
        ));
        assert_eq!(
            message(restore_point(json!({}))),
            "Validation error: restorePoint needs 'backupRef', or 'instanceRef' with 'point_in_time'"
        );
        // Which refusal wins when a body has several faults is part of the contract.
        assert_eq!(
            message(restore_point(json!({"instanceRef": id, "timeline": 2}))),
            "restorePoint['instanceRef'] needs 'point_in_time' (a time with a zone offset, or \"latest\") or 'target' (an lsn, an xid or a restore_point)."
        );
        assert!(matches!(
            restore_point(json!({"instanceRef": id, "target": {"lsn": "0/3000028"}})),
            Ok(Some(RestorePoint {
                point: PointInTime {
                    stop: Some(StopPoint::Lsn(0x300_0028)),
                    ..
                },
                ..
            }))
        ));
        assert!(matches!(
            restore_point(json!({"instanceRef": id, "target": {"restore_point": "before-v2"}})),
            Ok(Some(RestorePoint { named: Some(n), .. })) if n.as_str() == "before-v2"
        ));
        assert_eq!(
            message(restore_point(
                json!({"instanceRef": id, "target": {"xid": 900}, "point_in_time": "latest"})
            )),
            "restorePoint names two targets (point_in_time and target); name one."
        );
        assert_eq!(
            message(restore_point(json!({"backupRef": id, "timeline": 2}))),
            "restorePoint['timeline'] only applies together with point_in_time."
        );
        assert_eq!(
            message(restore_point(json!({"timeline": 0}))),
            "Validation error: restorePoint['timeline'] must be a positive integer"
        );
        assert_eq!(
            message(restore_point(json!("backup"))),
            "Validation error: instance['restorePoint'] must be an object"
        );
    }
}
