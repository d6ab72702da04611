//! Configuration groups: list, create, show, replace (PUT), merge (PATCH), delete, and the
//! instances a group is attached to. A change to a group's values is applied to every instance
//! it is attached to, as in Trove.

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Map, Value, json};
use trove_common::{
    overrides::{self, Overrides},
    rpc::taskmanager::TaskManagerMethod,
};
use uuid::Uuid;

use super::{dispatch::Dispatch, path_uuid, table::Routes};
use crate::{
    db::{
        catalog,
        configurations::{self as db, ConfigRow},
    },
    error::{ApiError, ApiResult},
    extract::{JsonBody, Paging},
    limits,
    state::AppState,
    validate::{self, bad},
    views::Links,
};

pub fn routes() -> Routes {
    let one = "/v1.0/{tenant}/configurations/{id}";
    Routes::new()
        .add(
            Method::GET,
            "/v1.0/{tenant}/configurations",
            list_configurations,
        )
        .add(
            Method::POST,
            "/v1.0/{tenant}/configurations",
            create_configuration,
        )
        .add(Method::GET, one, show_configuration)
        .add(Method::PUT, one, replace_configuration)
        .add(Method::PATCH, one, edit_configuration)
        .add(Method::DELETE, one, delete_configuration)
        .add(
            Method::GET,
            "/v1.0/{tenant}/configurations/{id}/instances",
            list_configuration_instances,
        )
}

/// Trove's `ConfigurationView`: the list item.
fn summary(c: &ConfigRow) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "created": trove_common::timefmt::trove_time(c.created),
        "updated": trove_common::timefmt::trove_time(c.updated),
        "datastore_version_id": c.datastore_version_id,
        "datastore_name": c.ds_name,
        "datastore_version_name": c.ds_version_name,
        // Not in Trove's list view, but `configuration list` prints it as a column.
        "datastore_version_number": c.ds_version_number,
    })
}

/// Trove's `DetailedConfigurationView`.
fn detail(c: &ConfigRow, values: &Overrides, instance_count: i64) -> Value {
    let mut v = summary(c);
    v["values"] = json!(values);
    v["instance_count"] = json!(instance_count);
    v
}

fn marker(paging: &Paging) -> ApiResult<Option<Uuid>> {
    paging
        .marker
        .as_deref()
        .map(|m| Uuid::parse_str(m).map_err(|_| bad(format!("Invalid marker '{m}'."))))
        .transpose()
}

async fn list_configurations(
    State(state): State<AppState>,
    links: Links,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let limit = paging
        .limit
        .unwrap_or(state.config.page_size)
        .min(state.config.page_size);
    let mut conn = state.pool.acquire().await?;
    let mut rows = db::list(&mut conn, &links.tenant, marker(&paging)?, limit + 1).await?;
    let more = super::cut_page(&mut rows, limit);
    let mut body = json!({"configurations": rows.iter().map(summary).collect::<Vec<_>>()});
    if more && let Some(last) = rows.last() {
        body["links"] = links.next_page("configurations", limit, last.id, &[]);
    }
    Ok(Json(body))
}

/// The `values` object of a body, checked against `manager`'s rule set (400 naming the first
/// parameter that fails), with lowercase names.
fn checked_values(v: Option<&Value>, manager: &str) -> ApiResult<Overrides> {
    let values = match v {
        Some(Value::Object(m)) => m,
        None => return Err(bad("Validation error: 'values' is a required property")),
        Some(_) => {
            return Err(bad(
                "Validation error: configuration['values'] must be an object",
            ));
        }
    };
    let rules = overrides::for_manager(manager).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "Configuration groups are not supported for this datastore: {manager}."
        ))
    })?;
    let given: Overrides = values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let checked = rules.check_all(&given).map_err(|e| bad(e.0))?;
    // What is stored is what the client sent, under the parameter's canonical name.
    Ok(checked
        .keys()
        .map(|k| {
            let sent = values
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
                .expect("every checked name came from the body");
            (k.clone(), sent)
        })
        .collect())
}

fn description(obj: &Map<String, Value>) -> ApiResult<Option<String>> {
    validate::optional_string(
        obj.get("description"),
        "configuration['description']",
        limits::NAME_CHARS,
    )
}

async fn create_configuration(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let cfg = validate::root(&body, "configuration")?;
    let name = validate::non_empty_name(cfg.get("name"), "configuration 'name'")?;
    let description = description(cfg)?;
    let (ds_type, ds_version) = validate::datastore(cfg.get("datastore"))?;
    let mut tx = state.pool.begin().await?;
    let ds_key = ds_type.unwrap_or_else(|| state.config.default_datastore.clone());
    let ds = catalog::datastore(&mut tx, &ds_key)
        .await?
        .ok_or_else(|| bad(format!("Datastore '{ds_key}' cannot be found.")))?;
    let version = match ds_version.as_deref() {
        Some(v) => catalog::version_of(&mut tx, ds.id, v, None).await?,
        None => match ds.default_version_id {
            Some(id) => catalog::version_by_id(&mut tx, id).await?,
            None => None,
        },
    }
    .ok_or_else(|| {
        bad(format!(
            "Datastore version '{}' cannot be found.",
            ds_version.as_deref().unwrap_or("default")
        ))
    })?;
    let values = checked_values(cfg.get("values"), &version.manager)?;
    let id = Uuid::new_v4();
    db::insert(
        &mut tx,
        &db::NewConfig {
            id,
            name: &name,
            description: description.as_deref(),
            tenant_id: &tenant,
            datastore_version_id: version.id,
        },
    )
    .await?;
    db::write_values(&mut tx, id, &values, true).await?;
    let row = db::find(&mut tx, id, None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("configuration {id} vanished in its own transaction"))?;
    tx.commit().await?;
    tracing::info!(configuration.id = %id, "configuration group created");
    Ok(Json(json!({"configuration": detail(&row, &values, 0)})))
}

async fn find_group(state: &AppState, tenant: &str, id: &str) -> ApiResult<ConfigRow> {
    let id = path_uuid(id)?;
    let mut conn = state.pool.acquire().await?;
    db::find(&mut conn, id, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))
}

async fn show_configuration(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let row = find_group(&state, &tenant, &id).await?;
    let mut conn = state.pool.acquire().await?;
    let values = db::values(&mut conn, row.id).await?;
    let count = db::instance_count(&mut conn, row.id).await?;
    Ok(Json(json!({"configuration": detail(&row, &values, count)})))
}

/// `PUT` (`openstack database configuration set`): the group holds exactly the new `values`
/// (and may get a new name or description).
async fn replace_configuration(
    state: State<AppState>,
    dispatch: Dispatch,
    path: Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<StatusCode> {
    change_values(state, dispatch, path, body, true).await
}

/// `PATCH` (`openstack database configuration parameter set`): the new `values` are merged in.
async fn edit_configuration(
    state: State<AppState>,
    dispatch: Dispatch,
    path: Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<StatusCode> {
    change_values(state, dispatch, path, body, false).await
}

async fn change_values(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
    replace: bool,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id)?;
    let cfg = validate::root(&body, "configuration")?;
    let name = cfg
        .get("name")
        .map(|n| validate::non_empty_name(Some(n), "configuration 'name'"))
        .transpose()?;
    let description = description(cfg)?;
    let mut tx = state.pool.begin().await?;
    let row = db::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let values = checked_values(cfg.get("values"), &row.ds_manager)?;
    db::rename(&mut tx, id, name.as_deref(), description.as_deref()).await?;
    db::write_values(&mut tx, id, &values, replace).await?;
    // Persisted with the change: each attached instance's new revision and its message.
    let methods: Vec<TaskManagerMethod> = db::bump_attached(&mut tx, id)
        .await?
        .into_iter()
        .map(
            |(instance_id, revision)| TaskManagerMethod::UpdateConfiguration {
                instance_id,
                revision,
            },
        )
        .collect();
    let attached = methods.len();
    dispatch.send_all(tx, &methods).await?;
    tracing::info!(configuration.id = %id, replace, attached, "configuration group changed");
    Ok(StatusCode::ACCEPTED)
}

/// Refused while an instance uses the group, as Trove does.
async fn delete_configuration(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id)?;
    let mut tx = state.pool.begin().await?;
    db::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    if db::instance_count(&mut tx, id).await? > 0 {
        return Err(bad(
            "A configuration group cannot be deleted if it is associated with one or more non-terminated instances. Detach the configuration group from all non-terminated instances and please try again.",
        ));
    }
    db::mark_deleted(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(configuration.id = %id, "configuration group deleted");
    Ok(StatusCode::ACCEPTED)
}

async fn list_configuration_instances(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    links: Links,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let row = find_group(&state, &tenant, &id).await?;
    let limit = paging
        .limit
        .unwrap_or(state.config.page_size)
        .min(state.config.page_size);
    let mut conn = state.pool.acquire().await?;
    let mut rows = db::instances(
        &mut conn,
        row.id,
        Some(&tenant),
        marker(&paging)?,
        limit + 1,
    )
    .await?;
    let more = super::cut_page(&mut rows, limit);
    let items: Vec<Value> = rows
        .iter()
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect();
    let mut body = json!({ "instances": items });
    if more && let Some((last, _)) = rows.last() {
        body["links"] = links.next_page(
            &format!("configurations/{}/instances", row.id),
            limit,
            last,
            &[],
        );
    }
    Ok(Json(body))
}
