//! `POST /instances/{id}/recoveries/{rid}/confirm` and `…/cancel`: settle a recovery's waiting
//! preview. The decision is recorded on the recovery, with the message that carries it out, in
//! one transaction; a recovery that is not a waiting preview is 409 and nothing changes.

use axum::{
    Json,
    extract::{Path, State},
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use trove_common::{
    rpc::taskmanager::TaskManagerMethod,
    status::{InstanceTask, RecoveryState},
};

use super::{dispatch::Dispatch, path_uuid, recoveries::view, table::Routes};
use crate::{
    auth::Caller,
    db::{
        instances,
        recoveries::{self, Settle},
        recovery_history,
    },
    error::{ApiError, ApiResult},
    state::AppState,
};

pub fn routes() -> Routes {
    Routes::new()
        .add(
            Method::POST,
            "/v1.0/{tenant}/instances/{id}/recoveries/{rid}/confirm",
            confirm_preview,
        )
        .add(
            Method::POST,
            "/v1.0/{tenant}/instances/{id}/recoveries/{rid}/cancel",
            cancel_preview,
        )
}

async fn confirm_preview(
    state: State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    path: Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    settle(state, caller, dispatch, path, Settle::Confirm).await
}

async fn cancel_preview(
    state: State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    path: Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    settle(state, caller, dispatch, path, Settle::Cancel).await
}

async fn settle(
    State(state): State<AppState>,
    caller: Caller,
    dispatch: Dispatch,
    Path((tenant, id, rid)): Path<(String, String, String)>,
    settle: Settle,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = path_uuid(&id)?;
    let rid = path_uuid(&rid)?;
    let mut tx = state.pool.begin().await?;
    instances::lock(&mut tx, id, Some(&tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    let current = recoveries::lock_of(&mut tx, id, rid)
        .await?
        .ok_or_else(|| ApiError::not_found(rid))?;
    if let Some(why) = refusal(&current, settle) {
        return Err(ApiError::Conflict(format!("Recovery {rid} {why}")));
    }
    let deadline = super::deadline_in(state.config.recovery_timeout_secs);
    recoveries::settle_preview(&mut tx, rid, settle, deadline).await?;
    // The instance stays busy until the guest reports the end; the task's deadline is the
    // recovery's new one.
    instances::set_task(&mut tx, id, InstanceTask::Recovering, Some(deadline)).await?;
    let row = recovery_history::find(&mut tx, id, rid)
        .await?
        .ok_or_else(|| ApiError::not_found(rid))?;
    let body = json!({"recovery": view(&row, id, caller.audience(), chrono::Utc::now())});
    dispatch
        .send(
            tx,
            &TaskManagerMethod::SettlePreview {
                instance_id: id,
                recovery_id: rid,
            },
        )
        .await?;
    tracing::info!(instance.id = %id, recovery.id = %rid, action = settle.action(), "preview settled");
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// Why a recovery in state `current` cannot be settled so; None when it waits as a preview.
fn refusal(current: &str, settle: Settle) -> Option<String> {
    if current == RecoveryState::Preview.as_str() {
        return None;
    }
    let verb = match settle {
        Settle::Confirm => "confirmed",
        Settle::Cancel => "cancelled",
    };
    Some(format!(
        "is {current}, not a waiting preview (PREVIEW); only a waiting preview can be {verb}."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_waiting_preview_is_settled() {
        assert_eq!(refusal("PREVIEW", Settle::Confirm), None);
        assert_eq!(refusal("PREVIEW", Settle::Cancel), None);
        for state in ["NEW", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"] {
            let why = refusal(state, Settle::Confirm).expect("refused");
            assert!(why.starts_with(&format!("is {state},")), "{why}");
            assert!(refusal(state, Settle::Cancel).is_some_and(|w| w.ends_with("cancelled.")));
        }
    }
}
