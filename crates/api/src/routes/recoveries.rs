//! `GET /instances/{id}/recoveries[/{rid}]`: an instance's recoveries, newest first, each with
//! its target, outcome and the phases it went through with their durations.

use axum::{
    Json,
    extract::{Path, State},
    http::Method,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use trove_common::{status::RecoveryState, timefmt::trove_time};
use uuid::Uuid;

use super::{path_uuid, table::Routes};
use crate::{
    auth::Caller,
    db::{
        instances,
        recovery_history::{self, HistoryRow},
    },
    error::{ApiError, ApiResult},
    extract::Paging,
    recovery_eta,
    recovery_window::rfc3339,
    state::AppState,
    validate::bad,
    views::{Audience, Links},
};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/recoveries",
            list_recoveries,
        )
        .add(
            Method::GET,
            "/v1.0/{tenant}/instances/{id}/recoveries/{rid}",
            show_recovery,
        )
}

/// The instance, visible to the caller and not deleted, or 404 as for the instance itself.
async fn visible_instance(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    links: &Links,
    id: &str,
) -> ApiResult<Uuid> {
    let id = path_uuid(id)?;
    instances::find(conn, id, caller.scope(&links.tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    Ok(id)
}

async fn list_recoveries(
    State(state): State<AppState>,
    caller: Caller,
    links: Links,
    Path((_tenant, id)): Path<(String, String)>,
    paging: Paging,
) -> ApiResult<Json<Value>> {
    let limit = paging
        .limit
        .unwrap_or(state.config.page_size)
        .min(state.config.page_size);
    let mut conn = state.pool.acquire().await?;
    let id = visible_instance(&mut conn, &caller, &links, &id).await?;
    // A marker that is not one of this instance's recoveries cannot say where a page starts.
    let marker = match paging.marker.as_deref() {
        None => None,
        Some(m) => {
            let bad_marker = || bad(format!("Invalid marker '{m}'."));
            let m = Uuid::parse_str(m).map_err(|_| bad_marker())?;
            if !recovery_history::exists(&mut conn, id, m).await? {
                return Err(bad_marker());
            }
            Some(m)
        }
    };
    let mut rows = recovery_history::list(&mut conn, id, marker, limit + 1).await?;
    let more = super::cut_page(&mut rows, limit);
    let now = Utc::now();
    let audience = caller.audience();
    let mut body =
        json!({"recoveries": rows.iter().map(|r| view(r, id, audience, now)).collect::<Vec<_>>()});
    if more && let Some(last) = rows.last() {
        body["links"] = links.next_page(&format!("instances/{id}/recoveries"), limit, last.id, &[]);
    }
    Ok(Json(body))
}

async fn show_recovery(
    State(state): State<AppState>,
    caller: Caller,
    links: Links,
    Path((_tenant, id, rid)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let mut conn = state.pool.acquire().await?;
    let id = visible_instance(&mut conn, &caller, &links, &id).await?;
    let rid = path_uuid(&rid)?;
    let row = recovery_history::find(&mut conn, id, rid)
        .await?
        .ok_or_else(|| ApiError::not_found(rid))?;
    Ok(Json(
        json!({"recovery": view(&row, id, caller.audience(), Utc::now())}),
    ))
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds().max(0)
}

/// One recovery. `error` is the guest's own text, which names host paths and carries tool
/// output: admins read it, members the stable `error_code` (as for an instance's fault). A
/// waiting preview shows where it listens and until when.
pub(super) fn view(
    r: &HistoryRow,
    instance: Uuid,
    audience: Audience,
    now: DateTime<Utc>,
) -> Value {
    let running = RecoveryState::parse(&r.state).is_some_and(|s| !s.is_finished());
    // A moved preview passes through a phase again: the current one is the newest pass.
    let current = r.phases.0.iter().rfind(|p| p.phase == r.phase);
    let phases: Vec<Value> = r
        .phases
        .0
        .iter()
        .map(|p| {
            json!({
                "phase": p.phase,
                "move": p.round,
                "started": rfc3339(p.started_at),
                "ended": p.ended_at.map(rfc3339),
                "duration_ms": p.ended_at.map(|e| millis(p.started_at, e)),
            })
        })
        .collect();
    let mut progress = r.progress.as_ref().map(|p| p.0.clone());
    if running && let Some(Value::Object(p)) = progress.as_mut() {
        let left = recovery_eta::from_stored(
            &r.phase,
            r.progress.as_ref().map(|p| &p.0),
            r.updated,
            current.and_then(|c| c.first_progress.as_ref()),
            current.and_then(|c| c.first_progress_at),
            now,
        );
        p.insert("time_left_secs".into(), json!(left));
    }
    json!({
        "id": r.id,
        "instance_id": instance,
        "backup_id": r.backup_id,
        "target": {
            "kind": r.target_kind,
            "time": r.target_time.map(rfc3339),
            "timeline": r.target_timeline,
            "lsn": r.target_lsn,
            "xid": r.target_xid,
            "inclusive": r.target_inclusive,
            "restore_point": r.target_name,
        },
        "state": r.state,
        "phase": r.phase,
        "progress": progress,
        "outcome": r.outcome.as_ref().map(|o| o.0.clone()),
        "error": match audience {
            Audience::Admin => r.error.clone(),
            Audience::Member => None,
        },
        "error_code": r.error_code,
        "created": trove_time(r.created),
        "finished": r.finished.map(trove_time),
        "duration_ms": r.finished.map(|f| millis(r.created, f)),
        "phases": phases,
        "preview_requested": r.preview,
        "preview": preview_view(r),
        "moves": r.preview_moves,
        "moved_from": r.moved_from.as_ref().map(|m| moved_from_view(&m.0)),
        "cancel_reason": r.cancel_reason,
    })
}

/// The target before a running move, as the database kept it, with its time written as
/// `target.time` is (RFC 3339, microseconds, `Z`).
fn moved_from_view(stored: &Value) -> Value {
    let mut v = stored.clone();
    if let Some(t) = v
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        v["time"] = json!(rfc3339(t.to_utc()));
    }
    v
}

/// `{"address", "port", "expires_at"}` while the preview waits (state `PREVIEW`), else null.
fn preview_view(r: &HistoryRow) -> Value {
    match (r.state == RecoveryState::Preview.as_str(), r.preview_port) {
        (true, Some(port)) => json!({
            "address": r.instance_address,
            "port": port,
            "expires_at": r.preview_expires_at.map(rfc3339),
        }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_before_a_move_shows_its_time_as_targets_do() {
        let stored = json!({"kind": "time", "time": "2026-11-30T01:54:35.833134+00:00",
                            "timeline": 1, "lsn": null});
        let shown = moved_from_view(&stored);
        assert_eq!(shown["time"], "2026-11-30T01:54:35.833134Z");
        assert_eq!(shown["kind"], "time");
        let lsn = json!({"kind": "lsn", "time": null, "lsn": "0/5000100"});
        assert_eq!(moved_from_view(&lsn), lsn);
    }
}
