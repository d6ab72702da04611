//! `GET /mgmt/instances` (admin): every project's instances in Trove's management view, as
//! `openstack database instance list --all-projects [--project-id P]` asks for them.

use axum::{Json, extract::State, http::Method};
use serde_json::{Value, json};
use trove_common::{status::ServiceStatus, timefmt::trove_time};
use uuid::Uuid;

use super::table::Routes;
use crate::{
    auth::Caller,
    db::instances::{self, InstanceRow},
    error::ApiResult,
    extract::Paging,
    state::AppState,
    validate::bad,
    views::{self, Audience, Links},
};

pub fn routes() -> Routes {
    Routes::new().add(
        Method::GET,
        "/v1.0/{tenant}/mgmt/instances",
        list_mgmt_instances,
    )
}

/// Trove's `deleted` filter: `true` only deleted instances, `false` only live ones, absent both.
fn deleted_filter(v: Option<&str>) -> ApiResult<Option<bool>> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(bad("deleted must be true or false.")),
    }
}

async fn list_mgmt_instances(
    State(state): State<AppState>,
    caller: Caller,
    links: Links,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    caller.require_admin("instance:index:all_projects")?;
    let limit = paging
        .limit
        .unwrap_or(state.config.page_size)
        .min(state.config.page_size);
    let marker = match paging.marker.as_deref() {
        Some(m) => Some(Uuid::parse_str(m).map_err(|_| bad(format!("Invalid marker '{m}'.")))?),
        None => None,
    };
    let deleted_param = paging.param("deleted");
    let deleted = deleted_filter(deleted_param)?;
    let project = paging.param("project_id");
    let mut conn = state.pool.acquire().await?;
    let mut rows = instances::list_all(&mut conn, project, deleted, marker, limit + 1).await?;
    let more = super::cut_page(&mut rows, limit);
    let expiry = state.config.agent_heartbeat_expiry_secs;
    let items: Vec<Value> = rows.iter().map(|r| mgmt_view(r, &links, expiry)).collect();
    let mut body = json!({ "instances": items });
    if more && let Some(last) = rows.last() {
        let mut filters = Vec::new();
        if let Some(p) = project {
            filters.push(("project_id", p));
        }
        if let Some(d) = deleted_param {
            filters.push(("deleted", d));
        }
        body["links"] = links.next_page("mgmt/instances", limit, last.id, &filters);
    }
    Ok(Json(body))
}

/// Trove's `MgmtInstanceView`: the detail view plus the owner and the bookkeeping. The guest
/// host stands where Trove names the Nova server.
fn mgmt_view(row: &InstanceRow, links: &Links, expiry: i64) -> Value {
    let mut v = views::instance_detail(row, links, expiry, Audience::Admin);
    let service = ServiceStatus::from_code(row.status_id).unwrap_or(ServiceStatus::Unknown);
    v["tenant_id"] = json!(row.tenant_id);
    v["server_id"] = json!(row.host);
    v["server"] = match &row.host {
        Some(h) => json!({"id": h, "host": h, "tenant_id": row.tenant_id}),
        None => Value::Null,
    };
    v["service_status"] = json!(service.api_status());
    v["deleted"] = json!(row.deleted);
    v["deleted_at"] = json!(row.deleted_at.map(trove_time));
    v["task_description"] = json!(row.task_description);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_is_troves_tri_state() {
        assert_eq!(deleted_filter(None).ok(), Some(None));
        assert_eq!(deleted_filter(Some("False")).ok(), Some(Some(false)));
        assert_eq!(deleted_filter(Some("TRUE")).ok(), Some(Some(true)));
        assert!(deleted_filter(Some("maybe")).is_err());
    }
}
