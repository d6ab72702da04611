//! Backups: list (all, or of one instance), create, show, delete.

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use trove_common::rpc::taskmanager::{NewBackupInfo, TaskManagerMethod};
use uuid::Uuid;

use super::{availability::ensure_available, dispatch::Dispatch, path_uuid, table::Routes};
use crate::{
    auth::Caller,
    db::{backups, instances},
    error::{ApiError, ApiResult},
    extract::{JsonBody, Paging},
    limits, quota,
    state::AppState,
    validate::{self, bad},
    views::{self, Links},
};

pub fn routes() -> Routes {
    Routes::new()
        .add(Method::GET, "/v1.0/{tenant}/backups", list_backups)
        .add(Method::POST, "/v1.0/{tenant}/backups", create_backup)
        .add(Method::GET, "/v1.0/{tenant}/backups/{id}", show_backup)
        .add(Method::DELETE, "/v1.0/{tenant}/backups/{id}", delete_backup)
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/backups",
            list_instance_backups,
        )
}

/// Newest first; the marker is an offset, as in Trove.
async fn list_page(
    state: &AppState,
    caller: &Caller,
    links: &Links,
    paging: &Paging,
    instance_id: Option<Uuid>,
    path: &str,
) -> ApiResult<Json<Value>> {
    let limit = paging.limit.unwrap_or(state.config.page_size).min(1000);
    let offset = match paging.marker.as_deref() {
        Some(m) => validate::digits(m)
            .ok_or_else(|| bad(format!("Invalid marker '{m}'; backup markers are offsets.")))?,
        None => 0,
    };
    let instance_filter = match (instance_id, paging.param("instance_id")) {
        (Some(i), _) => Some(i),
        (None, Some(s)) => Some(
            Uuid::parse_str(s)
                .map_err(|_| bad(format!("instance_id '{s}' is not a valid UUID.")))?,
        ),
        (None, None) => None,
    };
    // Trove's `all_projects` and `project_id` (policy `backup:index:all_projects`, admin); the
    // per-instance route reads neither.
    let scope = match instance_id {
        Some(_) => ProjectScope::default(),
        None => ProjectScope::parse(paging)?,
    };
    if scope.widened() {
        caller.require_admin("backup:index:all_projects")?;
    }
    let filter = backups::ListFilter {
        tenant: scope.tenant(&links.tenant),
        instance_id: instance_filter,
        datastore: paging.param("datastore"),
    };
    let mut conn = state.pool.acquire().await?;
    let mut rows = backups::list(&mut conn, &filter, offset, limit + 1).await?;
    let more = super::cut_page(&mut rows, limit);
    let mut body = json!({"backups": rows.iter().map(views::backup).collect::<Vec<_>>()});
    if more {
        // The filters the page was cut from; `instance_id` only where the query gave it (the
        // per-instance route has it in its path).
        let instance_param = match instance_id {
            Some(_) => None,
            None => filter.instance_id.map(|i| i.to_string()),
        };
        let mut filters = Vec::new();
        if let Some(i) = &instance_param {
            filters.push(("instance_id", i.as_str()));
        }
        if let Some(d) = filter.datastore {
            filters.push(("datastore", d));
        }
        if scope.all_projects {
            filters.push(("all_projects", "True"));
        }
        if let Some(p) = scope.project_id {
            filters.push(("project_id", p));
        }
        let next = offset.saturating_add(limit);
        body["links"] = links.next_page(path, limit, next, &filters);
    }
    Ok(Json(body))
}

/// Whose backups a list shows: the path's project, another one, or all.
#[derive(Debug, Default, PartialEq, Eq)]
struct ProjectScope<'a> {
    all_projects: bool,
    project_id: Option<&'a str>,
}

impl<'a> ProjectScope<'a> {
    fn parse(paging: &'a Paging) -> ApiResult<Self> {
        let all_projects = match paging.param("all_projects") {
            None => false,
            Some(v) => bool_from_string(v).ok_or_else(|| {
                bad(format!(
                    "all_projects must be true or false, got '{}'.",
                    validate::printable(v)
                ))
            })?,
        };
        let project_id = paging.param("project_id").filter(|p| !p.is_empty());
        Ok(Self {
            all_projects,
            project_id,
        })
    }

    fn widened(&self) -> bool {
        self.all_projects || self.project_id.is_some()
    }

    /// The tenant filter: `project_id` wins over `all_projects`, as in Trove.
    fn tenant<'t>(&self, own: &'t str) -> Option<&'t str>
    where
        'a: 't,
    {
        match (self.project_id, self.all_projects) {
            (Some(p), _) => Some(p),
            (None, true) => None,
            (None, false) => Some(own),
        }
    }
}

/// oslo's `bool_from_string`, strict: Python's `True`/`False` as the client sends them, and
/// the usual spellings.
fn bool_from_string(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "t" | "on" => Some(true),
        "false" | "0" | "no" | "n" | "f" | "off" => Some(false),
        _ => None,
    }
}

async fn list_backups(
    State(state): State<AppState>,
    caller: Caller,
    links: Links,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    list_page(&state, &caller, &links, &paging, None, "backups").await
}

async fn list_instance_backups(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    links: Links,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    {
        let mut conn = state.pool.acquire().await?;
        instances::find(&mut conn, id, Some(&tenant))
            .await?
            .ok_or_else(|| ApiError::not_found(id))?;
    }
    let path = format!("instances/{id}/backups");
    list_page(&state, &caller, &links, &paging, Some(id), &path).await
}

async fn show_backup(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    let mut conn = state.pool.acquire().await?;
    let b = backups::find(&mut conn, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(Json(json!({"backup": views::backup(&b)})))
}

async fn create_backup(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b = validate::root(&body, "backup")?;
    let name = validate::non_empty_name(b.get("name"), "backup 'name'")?;
    let description = validate::optional_string(
        b.get("description"),
        "backup['description']",
        limits::DESCRIPTION_CHARS,
    )?;
    match b.get("incremental") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64() == Some(0) => {}
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {
            return Err(ApiError::NotImplemented(
                "Incremental backups are not supported for postgresql; send incremental 0.".into(),
            ));
        }
        Some(other) => {
            return Err(bad(format!(
                "Validation error: backup['incremental'] {other} is not of type 'integer' 0 or 1"
            )));
        }
    }
    if b.get("parent_id").is_some_and(|p| !p.is_null()) {
        return Err(ApiError::NotImplemented(
            "Incremental backups (parent_id) are not supported for postgresql.".into(),
        ));
    }
    if b.get("restore_from").is_some() {
        return Err(ApiError::NotImplemented(
            "Registering a remote backup (restore_from) is not supported.".into(),
        ));
    }
    let instance_id = validate::uuid_strict(
        b.get("instance")
            .ok_or_else(|| bad("Validation error: backup 'instance' is a required property"))?,
        "backup['instance']",
    )?;

    let mut tx = state.pool.begin().await?;
    let inst = instances::lock(&mut tx, instance_id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(instance_id))?;
    ensure_available(&mut tx, &inst).await?;
    let delta = quota::Amounts {
        backups: 1,
        ..quota::Amounts::default()
    };
    quota::check(&mut tx, &tenant, &state.config.quotas, &delta).await?;
    let id = Uuid::new_v4();
    backups::insert(
        &mut tx,
        &backups::NewBackup {
            id,
            name: &name,
            description: description.as_deref(),
            tenant_id: &tenant,
            instance_id,
            datastore_version_id: inst.datastore_version_id,
            deadline: super::deadline_in(state.config.task_timeout_secs),
        },
    )
    .await?;
    let row = backups::find(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| anyhow::anyhow!("backup {id} vanished inside its own transaction"))?;
    let method = TaskManagerMethod::CreateBackup {
        backup_info: NewBackupInfo {
            id,
            name: name.clone(),
            instance_id,
            backup_type: backups::FULL.into(),
            datastore: row.ds_name.clone().unwrap_or_default(),
            datastore_version: row.ds_version_name.clone().unwrap_or_default(),
        },
        instance_id,
    };
    dispatch.send(tx, &method).await?;
    tracing::info!(backup.id = %id, instance.id = %instance_id, "backup accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"backup": views::backup(&row)})),
    ))
}

async fn delete_backup(
    State(state): State<AppState>,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id)?;
    let mut tx = state.pool.begin().await?;
    backups::find(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let st = backups::lock(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    if st.is_running() {
        return Err(ApiError::Unprocessable(format!(
            "Backup {id} is still running ({st}); delete it once it has finished."
        )));
    }
    if backups::in_use(&mut tx, id).await? {
        return Err(ApiError::Unprocessable(format!(
            "Backup {id} is being restored right now; delete it once that has finished."
        )));
    }
    backups::mark_deleted(&mut tx, id).await?;
    dispatch
        .send(tx, &TaskManagerMethod::DeleteBackup { backup_id: id })
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(params: &[(&str, &str)]) -> Paging {
        Paging {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Paging::default()
        }
    }

    #[test]
    fn project_id_wins_over_all_projects_and_either_widens_the_list() {
        let own = paging(&[]);
        let scope = ProjectScope::parse(&own).ok();
        assert_eq!(scope.as_ref().map(|s| s.tenant("a")), Some(Some("a")));
        assert!(!scope.is_some_and(|s| s.widened()));

        let all = paging(&[("all_projects", "True")]);
        let scope = ProjectScope::parse(&all).ok();
        assert_eq!(scope.as_ref().map(|s| s.tenant("a")), Some(None));
        assert!(scope.is_some_and(|s| s.widened()));

        let one = paging(&[("all_projects", "false"), ("project_id", "b")]);
        let scope = ProjectScope::parse(&one).ok();
        assert_eq!(scope.as_ref().map(|s| s.tenant("a")), Some(Some("b")));
        assert!(scope.is_some_and(|s| s.widened()));

        assert!(ProjectScope::parse(&paging(&[("all_projects", "maybe")])).is_err());
    }
}
