//! `POST /instances/{id}/recoveries/{rid}/move`: move a recovery's waiting preview on to a later
//! target on the same timeline, without starting over: the guest replays on from where the
//! preview paused. The target is parsed and planned as the recover route does it, and must lie
//! past the preview's stop point (an earlier one needs a new preview); every refusal happens
//! before anything is written. The move is recorded on the recovery, with the message that
//! carries it out, in one transaction.

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use trove_common::{
    recovery::{StopPoint, format_lsn, parse_lsn},
    rpc::taskmanager::TaskManagerMethod,
    status::{InstanceTask, RecoveryState},
};

use super::{dispatch::Dispatch, path_uuid, recoveries::view, table::Routes};
use crate::{
    auth::Caller,
    db::{
        instances,
        recoveries::{self, PreviewStop},
        recovery_history,
    },
    error::{ApiError, ApiResult},
    extract::JsonBody,
    recovery_request::{self, PointInTime, Target},
    recovery_window::rfc3339,
    state::AppState,
    validate::{self, bad},
};

pub fn routes() -> Routes {
    Routes::new().add(
        Method::POST,
        "/v1.0/{tenant}/instances/{id}/recoveries/{rid}/move",
        move_preview,
    )
}

/// What the body names: the new target, and the timeline if it names one.
#[derive(Debug)]
struct MoveRequest {
    target: Target,
    timeline: Option<u32>,
}

/// `{"recovery": {...}}` with exactly one of `point_in_time` (a time with a zone offset) or
/// `target` (an lsn, an xid or a restore point), as the recover route reads them, and optionally
/// `timeline`, which must be the preview's own.
fn parse(body: &Value) -> ApiResult<MoveRequest> {
    let r = validate::root(body, "recovery")?;
    if let Some(k) = r
        .keys()
        .find(|k| !matches!(k.as_str(), "point_in_time" | "target" | "timeline"))
    {
        return Err(bad(format!(
            "Validation error: recovery has an unknown key '{k}' (allowed: point_in_time, target, timeline)."
        )));
    }
    let point = PointInTime::parse(r, "recovery")?;
    let named = r.get("target").filter(|t| !t.is_null());
    let target = match (point.stop, named) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "recovery names two targets (point_in_time and target); name one.",
            ));
        }
        (Some(StopPoint::Latest), None) => {
            return Err(bad(
                "A preview needs a target replay can pause at; \"latest\" ends wherever the WAL ends. Name a time, an lsn, an xid or a restore point.",
            ));
        }
        (Some(stop), None) => Target::Stop(stop),
        (None, Some(t)) => recovery_request::parse_target(t, "recovery")?,
        (None, None) => {
            return Err(bad(
                "Validation error: a move needs 'point_in_time' (a time with a zone offset) or 'target' (an lsn, an xid or a restore_point)",
            ));
        }
    };
    Ok(MoveRequest {
        target,
        timeline: point.timeline,
    })
}

async fn move_preview(
    State(state): State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    Path((tenant, id, rid)): Path<(String, String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_uuid(&id)?;
    let rid = path_uuid(&rid)?;
    let req = parse(&body)?;
    let mut tx = state.pool.begin().await?;
    instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let current = recoveries::lock_preview_stop(&mut tx, id, rid)
        .await?
        .ok_or_else(|| ApiError::not_found(rid))?;
    if current.state != RecoveryState::Preview.as_str() {
        return Err(ApiError::Conflict(format!(
            "Recovery {rid} is {}, not a waiting preview (PREVIEW); only a waiting preview can be moved.",
            current.state
        )));
    }
    let stop = match req.target {
        Target::Stop(stop) => stop,
        Target::RestorePoint(name) => {
            recovery_request::resolve_restore_point(&mut tx, id, name).await?
        }
    };
    let timeline = same_timeline(&current, req.timeline, rid)?;
    if let Some(why) = not_later(&current, stop) {
        return Err(ApiError::Conflict(format!(
            "Recovery {rid}'s preview cannot move to {why}; a preview only moves forward: an earlier target needs a new preview (cancel this one, then recover again with \"preview\": true)."
        )));
    }
    // Planned as a recovery from the preview's own backup, so the window, the WAL's continuity
    // and the target's kind are checked as the recover route checks them.
    let plan = recovery_request::plan(&mut tx, id, stop, timeline, Some(current.backup_id)).await?;
    if let Some(tl) = timeline
        && plan.target.timeline != tl
    {
        return Err(ApiError::Conflict(format!(
            "Recovery {rid}'s preview replays timeline {tl}, not {}; a preview moves along its own timeline.",
            plan.target.timeline
        )));
    }
    let deadline = super::deadline_in(state.config.recovery_timeout_secs);
    let moves =
        recoveries::move_preview(&mut tx, rid, stop, plan.target.timeline, deadline).await?;
    // The instance stays busy until the guest reports the preview waiting again.
    instances::set_task(&mut tx, id, InstanceTask::Recovering, Some(deadline)).await?;
    let row = recovery_history::find(&mut tx, id, rid)
        .await?
        .ok_or_else(|| ApiError::not_found(rid))?;
    let body = json!({"recovery": view(&row, id, caller.audience(), Utc::now())});
    dispatch
        .send(
            tx,
            &TaskManagerMethod::SettlePreview {
                instance_id: id,
                recovery_id: rid,
            },
        )
        .await?;
    tracing::info!(instance.id = %id, recovery.id = %rid, moves, target = %stop.kind(), "preview move accepted");
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// The timeline the move follows: the preview's own. One the body names must be it; a preview
/// of a backup's end (no timeline yet) follows the one the plan chooses.
fn same_timeline(
    current: &PreviewStop,
    asked: Option<u32>,
    rid: uuid::Uuid,
) -> ApiResult<Option<u32>> {
    let own = current.target_timeline.and_then(|t| u32::try_from(t).ok());
    match (own, asked) {
        (Some(own), Some(asked)) if own != asked => Err(ApiError::Conflict(format!(
            "Recovery {rid}'s preview replays timeline {own}, not {asked}; a preview moves along its own timeline. For another timeline, cancel this preview and ask for a new one."
        ))),
        (Some(own), _) => Ok(Some(own)),
        (None, asked) => Ok(asked),
    }
}

/// Why `stop` does not lie past where the preview paused, named for the refusal; None when it
/// does. The preview's pause (its LSN and last replayed commit, as the guest reported them)
/// decides, and for a time target also the preview's own target time. A transaction cannot be
/// placed from here: the guest checks it has not committed before the pause.
fn not_later(current: &PreviewStop, stop: StopPoint) -> Option<String> {
    let paused_lsn = current
        .preview_lsn
        .as_deref()
        .and_then(parse_lsn)
        .or(current.target_lsn.as_deref().and_then(parse_lsn));
    let pause = || describe_pause(current);
    match stop {
        StopPoint::Time(t) => {
            let own = current
                .target_time
                .filter(|_| current.target_kind == "time");
            let last = current.preview_commit_at;
            match (own, last) {
                (Some(own), _) if t <= own => Some(format!(
                    "{}, which is not after its current target {}",
                    rfc3339(t),
                    rfc3339(own)
                )),
                (_, Some(last)) if t <= last => {
                    Some(format!("{}, which is not after {}", rfc3339(t), pause()))
                }
                _ => None,
            }
        }
        StopPoint::Lsn(l) | StopPoint::RestorePoint { lsn: l, .. } => match paused_lsn {
            Some(paused) if l <= paused => Some(format!(
                "LSN {}, which is not after {}",
                format_lsn(l),
                pause()
            )),
            _ => None,
        },
        StopPoint::Xid { .. } | StopPoint::Latest => None,
    }
}

fn describe_pause(current: &PreviewStop) -> String {
    let at: Option<DateTime<Utc>> = current.preview_commit_at;
    match (current.preview_lsn.as_deref(), at) {
        (Some(lsn), Some(at)) => {
            format!("where it paused (LSN {lsn}, last commit {})", rfc3339(at))
        }
        (Some(lsn), None) => format!("where it paused (LSN {lsn})"),
        _ => "where it paused".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused_at(kind: &str, time: Option<&str>, lsn: &str, commit: Option<&str>) -> PreviewStop {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).expect("a time").to_utc();
        PreviewStop {
            state: "PREVIEW".into(),
            backup_id: uuid::Uuid::nil(),
            target_kind: kind.into(),
            target_time: time.map(t),
            target_timeline: Some(1),
            target_lsn: None,
            preview_lsn: Some(lsn.into()),
            preview_commit_at: commit.map(t),
        }
    }

    fn time(s: &str) -> StopPoint {
        StopPoint::Time(DateTime::parse_from_rfc3339(s).expect("a time").to_utc())
    }

    #[test]
    fn a_preview_only_moves_past_where_it_paused() {
        let p = paused_at(
            "time",
            Some("2026-11-25T17:00:00Z"),
            "0/5000100",
            Some("2026-11-25T16:59:58Z"),
        );
        assert_eq!(not_later(&p, time("2026-11-25T17:00:01Z")), None);
        let why = not_later(&p, time("2026-11-25T17:00:00Z")).expect("not later");
        assert!(why.contains("not after its current target"), "{why}");
        assert!(not_later(&p, time("2026-11-25T16:00:00Z")).is_some());
        assert!(not_later(&p, StopPoint::Lsn(0x500_0100)).is_some());
        assert!(not_later(&p, StopPoint::Lsn(0x400_0000)).is_some());
        assert_eq!(not_later(&p, StopPoint::Lsn(0x500_0101)), None);
        // Paused at an LSN: a time must lie after the last commit replayed.
        let q = paused_at("lsn", None, "0/5000100", Some("2026-11-25T16:59:58Z"));
        assert!(not_later(&q, time("2026-11-25T16:59:58Z")).is_some());
        assert_eq!(not_later(&q, time("2026-11-25T16:59:59Z")), None);
        // Transactions are the guest's to check.
        assert_eq!(
            not_later(
                &q,
                StopPoint::Xid {
                    xid: 3,
                    inclusive: true
                }
            ),
            None
        );
    }

    #[test]
    fn a_move_names_one_target_that_can_pause() {
        assert!(parse(&json!({"recovery": {"point_in_time": "2026-11-25T17:00:00Z"}})).is_ok());
        assert!(
            parse(&json!({"recovery": {"target": {"lsn": "0/5000100"}, "timeline": 2}})).is_ok()
        );
        for refused in [
            json!({"recovery": {}}),
            json!({"recovery": {"point_in_time": "latest"}}),
            json!({"recovery": {"point_in_time": "2026-11-25T17:00:00"}}),
            json!({"recovery": {"point_in_time": "2026-11-25T17:00:00Z", "target": {"xid": 5}}}),
            json!({"recovery": {"timeline": 2}}),
            json!({"recovery": {"backup": "x", "point_in_time": "2026-11-25T17:00:00Z"}}),
            json!({"move": {"point_in_time": "2026-11-25T17:00:00Z"}}),
        ] {
            assert!(
                matches!(parse(&refused), Err(ApiError::BadRequest(_))),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_preview_keeps_its_timeline() {
        let p = paused_at("lsn", None, "0/5000100", None);
        let rid = uuid::Uuid::nil();
        assert_eq!(same_timeline(&p, None, rid).ok(), Some(Some(1)));
        assert_eq!(same_timeline(&p, Some(1), rid).ok(), Some(Some(1)));
        assert!(matches!(
            same_timeline(&p, Some(2), rid),
            Err(ApiError::Conflict(_))
        ));
    }
}
