//! `GET|PUT|DELETE /instances/{id}/rewind`: the instance's rewind window. With one set, its host
//! keeps a delayed copy that far behind the primary, and a recovery to a time inside the window
//! replays only the gap from the copy instead of restoring a base backup (docs/api.md, "Rewind").

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use chrono::Utc;
use serde_json::{Value, json};
use trove_common::{
    rewind::{MAX_WINDOW_MINUTES, RewindState},
    rpc::taskmanager::TaskManagerMethod,
};

use super::{dispatch::Dispatch, path_uuid, table::Routes};
use crate::{
    auth::Caller,
    db::{instances, rewind as rewind_db},
    error::{ApiError, ApiResult},
    extract::JsonBody,
    recovery_window::rfc3339,
    state::AppState,
    validate::{self, bad},
    views::Audience,
};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/rewind",
            show_rewind,
        )
        .add(
            Method::PUT,
            "/v1.0/{tenant}/instances/{id}/rewind",
            set_rewind,
        )
        .add(
            Method::DELETE,
            "/v1.0/{tenant}/instances/{id}/rewind",
            unset_rewind,
        )
}

/// The window and the copy as the guest last reported it. `status` is `OFF` without a window,
/// `BUILDING` until the guest reports a copy for the window asked (so a change shows at once).
/// A failure's details name host paths and tool output: only an admin reads them.
fn view(row: &rewind_db::RewindRow, audience: Audience) -> Value {
    let window = row.rewind_window_secs;
    if window == 0 {
        return json!({"window_minutes": 0, "status": "OFF", "rewindable_from": null,
                      "rewindable_until": null, "timeline": null, "disk_bytes": null,
                      "error": null, "reported": null});
    }
    let status = row
        .status()
        .filter(|s| i64::from(s.window_secs) == i64::from(window));
    let state = status.as_ref().map_or(RewindState::Building, |s| s.state);
    let ready = state == RewindState::Ready;
    json!({
        "window_minutes": window / 60,
        "status": state.as_str(),
        // A recovery to a time in this range replays only the gap from the copy.
        "rewindable_from": status.as_ref().and_then(|s| s.applied_until).filter(|_| ready).map(rfc3339),
        "rewindable_until": ready.then(|| rfc3339(Utc::now())),
        "timeline": status.as_ref().and_then(|s| s.timeline),
        "disk_bytes": status.as_ref().and_then(|s| s.disk_bytes),
        "error": status.as_ref().and_then(|s| s.error.clone()).map(|e| match audience {
            Audience::Admin => e,
            Audience::Member => "the delayed copy could not be built; the guest tries again every 30 s (an operator sees why)".to_owned(),
        }),
        "reported": row.rewind_reported_at.map(rfc3339),
    })
}

async fn show_rewind(
    State(state): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id)?;
    let mut conn = state.pool.acquire().await?;
    instances::find(&mut conn, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let row = rewind_db::find(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(Json(json!({"rewind": view(&row, caller.audience())})))
}

/// The window in minutes from `{"rewind": {"window_minutes": N}}`: 400 unless 1..=1440.
fn parse_window(body: &Value) -> ApiResult<i32> {
    let r = validate::root(body, "rewind")?;
    if let Some(k) = r.keys().find(|k| k.as_str() != "window_minutes") {
        return Err(bad(format!(
            "Validation error: rewind has an unknown key '{k}' (allowed: window_minutes)."
        )));
    }
    let minutes = r
        .get("window_minutes")
        .ok_or_else(|| bad("Validation error: rewind['window_minutes'] is a required property"))?
        .as_u64()
        .filter(|m| (1..=u64::from(MAX_WINDOW_MINUTES)).contains(m))
        .ok_or_else(|| {
            bad(format!(
                "Validation error: rewind['window_minutes'] must be an integer from 1 to {MAX_WINDOW_MINUTES}."
            ))
        })?;
    i32::try_from(minutes * 60).map_err(|_| bad("Validation error: window too large"))
}

async fn set_rewind(
    State(state): State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_uuid(&id)?;
    let secs = parse_window(&body)?;
    store_window(&state, dispatch, &tenant, id, secs, caller.audience()).await
}

async fn unset_rewind(
    State(state): State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_uuid(&id)?;
    store_window(&state, dispatch, &tenant, id, 0, caller.audience()).await
}

/// Stores the window and sends it to the taskmanager in one transaction (the outbox); the guest
/// gets the window as it is when the message is handled, so the last of two quick changes wins.
async fn store_window(
    state: &AppState,
    dispatch: Dispatch,
    tenant: &str,
    id: uuid::Uuid,
    secs: i32,
    audience: Audience,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut tx = state.pool.begin().await?;
    instances::lock(&mut tx, id, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    rewind_db::set_window(&mut tx, id, secs).await?;
    let row = rewind_db::find(&mut tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    dispatch
        .send(tx, &TaskManagerMethod::ConfigureRewind { instance_id: id })
        .await?;
    tracing::info!(instance.id = %id, window_secs = secs, "rewind window set");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"rewind": view(&row, audience)})),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_whole_minutes_within_a_day() {
        assert_eq!(
            parse_window(&json!({"rewind": {"window_minutes": 10}})).ok(),
            Some(600)
        );
        for bad_body in [
            json!({"rewind": {"window_minutes": 0}}),
            json!({"rewind": {"window_minutes": 1441}}),
            json!({"rewind": {"window_minutes": "10"}}),
            json!({"rewind": {"window_minutes": 1.5}}),
            json!({"rewind": {"window_minutes": -1}}),
            json!({"rewind": {}}),
            json!({"rewind": {"window_minutes": 5, "x": 1}}),
            json!({"rewind": 5}),
            json!([]),
        ] {
            assert!(parse_window(&bad_body).is_err(), "{bad_body}");
        }
    }

    fn row(window: i32, status: Value) -> rewind_db::RewindRow {
        rewind_db::RewindRow {
            rewind_window_secs: window,
            rewind_status: Some(sqlx::types::Json(status)),
            rewind_reported_at: None,
        }
    }

    #[test]
    fn a_failures_details_are_for_admins_and_a_stale_window_shows_building() {
        let failed = row(
            600,
            json!({"window_secs": 600, "state": "FAILED", "error": "pg_basebackup: /srv/x: disk full"}),
        );
        assert_eq!(
            view(&failed, Audience::Admin)["error"],
            "pg_basebackup: /srv/x: disk full"
        );
        let member = view(&failed, Audience::Member);
        assert_eq!(member["status"], "FAILED");
        assert!(
            !member["error"]
                .as_str()
                .unwrap_or_default()
                .contains("/srv"),
            "{member}"
        );
        // Reported for the old window: the new one is still being applied.
        let stale = row(1200, json!({"window_secs": 600, "state": "READY"}));
        assert_eq!(view(&stale, Audience::Member)["status"], "BUILDING");
        assert_eq!(
            view(&row(0, Value::Null), Audience::Member)["status"],
            "OFF"
        );
    }
}
