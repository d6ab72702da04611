//! `GET /instances/{id}/recovery-window`: the recoverable window with the backups and timelines
//! it is built from.

use axum::{
    Json,
    extract::{Path, State},
    http::Method,
};
use serde_json::{Value, json};

use super::{path_uuid, table::Routes};
use crate::{
    db::{instances, retention as retention_db, wal},
    error::{ApiError, ApiResult},
    extract::Paging,
    recovery_window::{rfc3339, timeline_number},
    retention,
    state::AppState,
    validate::{self, bad},
};

pub fn routes() -> Routes {
    Routes::new().add(
        Method::GET,
        "/v1.0/{tenant}/instances/{id}/recovery-window",
        show_recovery_window,
    )
}

async fn show_recovery_window(
    State(state): State<AppState>,
    Path((tenant, id)): Path<(String, String)>,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    let timeline = match paging.param("timeline") {
        Some(t) => Some(
            validate::digits(t)
                .and_then(timeline_number)
                .ok_or_else(|| bad(format!("timeline '{t}' is not a positive integer.")))?,
        ),
        None => None,
    };
    let mut conn = state.pool.acquire().await?;
    let row = instances::find(&mut conn, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let default = retention_db::default_policy(&mut conn).await?;
    // What decides how far back `earliest` may lie.
    let policy = retention::view(
        row.retention_window_secs,
        row.retention_min_backups,
        default,
    );
    let Some((w, timelines)) = wal::window_of(&mut conn, id, timeline).await? else {
        return Ok(Json(json!({"recovery_window": {
            "earliest": null, "latest": null, "timeline": null, "gaps": [], "backups": [], "timelines": [],
            "retention": policy,
        }})));
    };
    if let Some(t) = timeline
        && !timelines.iter().any(|k| k.timeline == t)
    {
        return Err(bad(format!("Instance {id} never had timeline {t}.")));
    }
    let mut body = w.summary();
    body["lineage"] = json!(w.lineage);
    body["gaps"] = json!(
        w.gaps
            .iter()
            .map(|(t, from, to)| json!({"timeline": t, "from": from, "to": to}))
            .collect::<Vec<_>>()
    );
    body["backups"] = json!(w
        .backups
        .iter()
        .map(|b| json!({"id": b.id, "stop_time": rfc3339(b.stop_time), "timeline": b.timeline, "start_lsn": b.start_lsn}))
        .collect::<Vec<_>>());
    body["timelines"] = json!(
        timelines
            .iter()
            .map(|t| json!({
                "timeline": t.timeline,
                "parent": t.parent,
                "switch_lsn": t.switch_lsn,
                "first_segment": t.first_segment,
                "last_segment": t.last_segment,
                "latest_commit": t.latest_commit.map(rfc3339),
                "latest_lsn": t.latest_lsn,
                "gaps": t.gaps,
            }))
            .collect::<Vec<_>>()
    );
    body["retention"] = policy;
    Ok(Json(json!({"recovery_window": body})))
}
