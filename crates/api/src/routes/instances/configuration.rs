//! An instance's configuration group: attach and detach (`PUT`/`PATCH /instances/{id}` with
//! `configuration`), the group given at create, and `GET /instances/{id}/configuration`, the
//! settings the instance runs with.

use axum::{
    Json,
    extract::{Path, State},
};
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, Postgres, Transaction};
use trove_common::{overrides::memory, rpc::taskmanager::TaskManagerMethod};
use uuid::Uuid;

use crate::{
    db::{catalog, configurations, instances::LockedInstance},
    error::{ApiError, ApiResult},
    routes::{availability::ensure_available, dispatch::Dispatch, path_uuid},
    state::AppState,
    validate::{self, bad},
};

/// What `instance['configuration']` asks for: a group to attach, or (null) a detach.
pub(super) fn parse(v: &Value) -> ApiResult<Option<Uuid>> {
    match v {
        Value::Null => Ok(None),
        v => validate::uuid_ref(v, "instance['configuration']").map(Some),
    }
}

/// A group of `tenant` that fits instances of `datastore_version_id`: 404 when there is no such
/// group, 400 when it is for another datastore version (Trove's
/// ConfigurationDatastoreNotMatchInstance).
pub(super) async fn usable_group(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: &str,
    datastore_version_id: Uuid,
) -> ApiResult<Uuid> {
    let group = configurations::find(conn, id, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Configuration group {id} cannot be found.")))?;
    if group.datastore_version_id != datastore_version_id {
        return Err(bad(format!(
            "Configuration group {id} is for datastore {} {}, which does not match the instance's.",
            group.ds_name, group.ds_version_name
        )));
    }
    Ok(group.id)
}

/// Attaches (`Some`) or detaches (`None`) the instance's group in `tx`, and sends the change to
/// the taskmanager with the commit.
pub(super) async fn attach_or_detach(
    mut tx: Transaction<'_, Postgres>,
    dispatch: Dispatch,
    tenant: &str,
    inst: &LockedInstance,
    wanted: Option<Uuid>,
) -> ApiResult<()> {
    let id = inst.id;
    ensure_available(&mut tx, inst).await?;
    match (wanted, inst.configuration_id) {
        (Some(_), Some(current)) => {
            return Err(bad(format!(
                "Instance {id} already has configuration group {current} attached; detach it first."
            )));
        }
        // Nothing attached, nothing to detach: the instance already runs without a group.
        (None, None) => {
            tx.commit().await?;
            return Ok(());
        }
        (Some(group), None) => {
            usable_group(&mut tx, group, tenant, inst.datastore_version_id).await?;
        }
        (None, Some(_)) => {}
    }
    let revision = configurations::set_on_instance(&mut tx, id, wanted).await?;
    let method = TaskManagerMethod::UpdateConfiguration {
        instance_id: id,
        revision,
    };
    dispatch.send_all(tx, &[method]).await?;
    tracing::info!(instance.id = %id, configuration.id = ?wanted, revision, "configuration change accepted");
    Ok(())
}

/// `GET /instances/{id}/configuration`: the memory settings of the instance's flavor, with the
/// attached group's values over them (they win on the server too).
pub(super) async fn show_instance_configuration(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    let mut conn = state.pool.acquire().await?;
    let inst = crate::db::instances::find(&mut conn, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let ram = catalog::flavor(&mut conn, &inst.flavor_id)
        .await?
        .map_or(0, |f| i64::from(f.ram));
    let mut effective: Map<String, Value> = memory::settings(ram)
        .into_iter()
        .map(|(k, v)| (k, plain(&v.to_string())))
        .collect();
    if let Some(group) = inst.configuration_id {
        effective.extend(configurations::values(&mut conn, group).await?);
    }
    Ok(Json(json!({"instance": {"configuration": effective}})))
}

/// A rendered setting as a client reads it: unquoted, numbers as numbers.
fn plain(rendered: &str) -> Value {
    let unquoted = rendered.trim_matches('\'');
    unquoted
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(unquoted))
}
