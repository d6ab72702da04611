//! Recovery previews: the recovered copy waits, paused at the target and read-only, on a port of
//! its own while the instance keeps serving; it may be moved on to a later target (replay goes on
//! from the pause, same port); then it is confirmed (cut over, downtime reported), cancelled
//! (removed, nothing changed) or expires (cancelled by the sweeper). Refusals change nothing.
//! Checked by the rows inside the managed databases.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection, postgres::PgConnectOptions};
use trove_e2e::{ALL, Stack, TENANT_A, TOKEN_B, ids, wait_until};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(120);

/// A stack with an ACTIVE instance, a table `marks` with ids 1 to 3, a backup of that, then ids
/// 4 to 10 committed after it. Returns the backup's id too.
async fn marked_instance(name: &str) -> Result<(Stack, Uuid, String, PgConnection)> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance(name).await?;
    let mut conn = stack.connect_instance(id).await?;
    sqlx::query("CREATE TABLE marks (id int PRIMARY KEY)")
        .execute(&mut conn)
        .await?;
    sqlx::query("INSERT INTO marks SELECT generate_series(1, 3)")
        .execute(&mut conn)
        .await?;
    let backup = stack.backup(id, "base").await?["id"]
        .as_str()
        .context("backup id")?
        .to_string();
    sqlx::query("INSERT INTO marks SELECT generate_series(4, 10)")
        .execute(&mut conn)
        .await?;
    Ok((stack, id, backup, conn))
}

/// Waits until recovery `rid` of `id` is in `state`; returns its view.
async fn wait_recovery(stack: &Stack, id: Uuid, rid: &str, state: &str) -> Result<Value> {
    wait_until(&format!("recovery {rid} to be {state}"), WAIT, || async {
        let (_, v) = stack
            .get_a(&format!("/instances/{id}/recoveries/{rid}"))
            .await?;
        let r = v["recovery"].clone();
        if r["state"] == "FAILED" && state != "FAILED" {
            anyhow::bail!("recovery failed: {r}");
        }
        Ok((r["state"] == state).then_some(r))
    })
    .await
}

/// Asks for a preview and waits until it is ready; returns the recovery id and its view.
async fn preview_ready(stack: &Stack, id: Uuid, recovery: Value) -> Result<(String, Value)> {
    let body = stack.recover_accepted(id, recovery).await?;
    assert_eq!(body["recovery"]["preview"], true, "{body}");
    let rid = body["recovery"]["recovery_id"]
        .as_str()
        .context("recovery id")?
        .to_string();
    let view = wait_recovery(stack, id, &rid, "PREVIEW").await?;
    Ok((rid, view))
}

/// A connection to the preview at `view["preview"]` as the instance's user `app`.
async fn connect_preview(view: &Value) -> Result<PgConnection> {
    let p = &view["preview"];
    let opts = PgConnectOptions::new()
        .host(p["address"].as_str().context("preview address")?)
        .port(p["port"].as_u64().context("preview port")? as u16)
        .username("app")
        .password("app-secret-1")
        .database("appdb");
    Ok(PgConnection::connect_with(&opts).await?)
}

/// The ids in `marks` as the preview `view` shows them, read over its own connection.
async fn preview_marks(view: &Value) -> Result<Vec<i32>> {
    let mut preview = connect_preview(view).await?;
    let rows = ids(&mut preview, "marks").await?;
    preview.close().await?;
    Ok(rows)
}

async fn settle(stack: &Stack, id: Uuid, rid: &str, action: &str) -> Result<(StatusCode, Value)> {
    stack
        .call_a(
            Method::POST,
            &format!("/instances/{id}/recoveries/{rid}/{action}"),
            None,
        )
        .await
}

/// The slots `host` uses as the taskmanager's placement counts them (`host-list`'s `used`).
async fn slots_used(stack: &Stack, host: &str) -> Result<i64> {
    let hosts = trove_taskmanager::manage::hosts::list_hosts(&stack.pool).await?;
    let h = hosts
        .iter()
        .find(|h| h.id == host)
        .context("the host is listed")?;
    Ok(h.used)
}

async fn recovery_count(stack: &Stack, id: Uuid) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM recoveries WHERE instance_id = $1")
            .bind(id)
            .fetch_one(&stack.pool)
            .await?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_preview_to_a_transaction_is_read_while_the_instance_serves_then_confirmed() -> Result<()>
{
    let (stack, id, _, mut conn) = marked_instance("pg-preview").await?;
    // The transaction to stop just before: it deletes 6..10.
    let mut tx = sqlx::Connection::begin(&mut conn).await?;
    sqlx::query("DELETE FROM marks WHERE id > 5")
        .execute(&mut *tx)
        .await?;
    let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut conn)
        .await?;
    sqlx::query("INSERT INTO marks VALUES (1000)")
        .execute(&mut conn)
        .await?;
    stack.wait_window_past(id, before).await?;

    // "latest" has no point to pause at.
    let (status, body) = stack
        .recover(id, json!({"point_in_time": "latest", "preview": true}))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = stack
        .recover(id, json!({"target": {"xid": xid}, "preview": "yes"}))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(recovery_count(&stack, id).await?, 0);

    let (rid, view) = preview_ready(
        &stack,
        id,
        json!({"target": {"xid": xid, "inclusive": false}, "preview": true}),
    )
    .await?;
    let port = view["preview"]["port"].as_u64().context("port")?;
    assert!(view["preview"]["expires_at"].is_string(), "{view}");
    let inst = stack.instance(id).await?;
    assert_eq!(inst["recovery"]["state"], "PREVIEW", "{inst}");
    assert_eq!(inst["recovery"]["preview"]["port"], port, "{inst}");
    assert_ne!(Some(port), inst["addresses"][0]["port"].as_u64());

    // The preview shows the state before the transaction, and refuses writes.
    let mut preview = connect_preview(&view).await?;
    assert_eq!(
        ids(&mut preview, "marks").await?,
        (1..=10).collect::<Vec<_>>()
    );
    let write = sqlx::query("INSERT INTO marks VALUES (5000)")
        .execute(&mut preview)
        .await
        .expect_err("a preview is read-only");
    assert!(write.to_string().contains("read-only"), "{write}");
    drop(preview);

    // The instance still serves its current data, takes writes, and ships their WAL.
    let mut live = stack.connect_instance(id).await?;
    assert_eq!(
        ids(&mut live, "marks").await?,
        vec![1, 2, 3, 4, 5, 1000],
        "the live data is untouched"
    );
    let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut live)
        .await?;
    sqlx::query("INSERT INTO marks VALUES (2000)")
        .execute(&mut live)
        .await?;
    stack.wait_window_past(id, now).await?;

    // Busy meanwhile: no other recovery, backup or delete; another tenant sees nothing.
    let (status, body) = stack.recover(id, json!({"target": {"xid": xid}})).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = stack
        .post_a(
            "/backups",
            json!({"backup": {"name": "during", "instance": id}}),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = stack
        .call_a(Method::DELETE, &format!("/instances/{id}"), None)
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = stack
        .call(
            Method::POST,
            &format!("/v1.0/{TENANT_A}/instances/{id}/recoveries/{rid}/confirm"),
            Some(TOKEN_B),
            None,
        )
        .await?;
    assert!(
        matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
        "{status}"
    );
    let (status, _) = settle(&stack, id, &Uuid::new_v4().to_string(), "confirm").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = settle(&stack, id, "not-a-uuid", "cancel").await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        wait_recovery(&stack, id, &rid, "PREVIEW").await?["preview"]["port"],
        port
    );

    // Confirm: once; a second confirm and a cancel are refused.
    let (status, body) = settle(&stack, id, &rid, "confirm").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["recovery"]["phase"], "promoting", "{body}");
    for action in ["confirm", "cancel"] {
        let (status, body) = settle(&stack, id, &rid, action).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {body}");
    }
    let done = wait_recovery(&stack, id, &rid, "COMPLETED").await?;
    let downtime = done["outcome"]["downtime_ms"]
        .as_u64()
        .context("downtime reported")?;
    eprintln!("preview confirmed: cut-over downtime {downtime} ms ({done})");
    let after = stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    assert!(after.get("fault").is_none(), "{after}");
    assert!(after.get("recovery").is_none(), "{after}");
    let mut live = stack.connect_instance(id).await?;
    assert_eq!(
        ids(&mut live, "marks").await?,
        (1..=10).collect::<Vec<_>>(),
        "the instance now has exactly the previewed state"
    );
    sqlx::query("INSERT INTO marks VALUES (3000)")
        .execute(&mut live)
        .await?;
    // The confirmed recovery cannot be settled again.
    let (status, _) = settle(&stack, id, &rid, "cancel").await?;
    assert_eq!(status, StatusCode::CONFLICT);
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancelled_preview_of_a_backup_leaves_the_instance_as_it_was() -> Result<()> {
    let (stack, id, backup, mut conn) = marked_instance("pg-preview-cancel").await?;
    let host = stack.host_of(id).await?;

    // A full host has no room for the preview's second server: refused, nothing recorded.
    stack.set_host_capacity(&host, 1).await?;
    let (status, body) = stack
        .recover(id, json!({"backup": backup, "preview": true}))
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(recovery_count(&stack, id).await?, 0);
    assert_eq!(stack.instance(id).await?["status"], "ACTIVE");
    stack.set_host_capacity(&host, 2).await?;

    let (rid, view) = preview_ready(&stack, id, json!({"backup": backup, "preview": true})).await?;
    assert_eq!(preview_marks(&view).await?, vec![1, 2, 3]);
    // The waiting preview takes the host's second slot, as placement counts them.
    assert_eq!(slots_used(&stack, &host).await?, 2);
    // A waiting preview keeps the instance busy.
    let (status, body) = stack
        .recover(id, json!({"backup": backup, "preview": true}))
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let (status, body) = settle(&stack, id, &rid, "cancel").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["recovery"]["phase"], "cancelling", "{body}");
    let cancelled = wait_recovery(&stack, id, &rid, "CANCELLED").await?;
    assert_eq!(
        cancelled["cancel_reason"], "cancelled by request",
        "{cancelled}"
    );
    assert!(cancelled["preview"].is_null(), "{cancelled}");
    for action in ["confirm", "cancel"] {
        let (status, body) = settle(&stack, id, &rid, action).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {body}");
    }
    let after = stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    assert!(after.get("fault").is_none(), "{after}");
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());
    assert!(
        connect_preview(&view).await.is_err(),
        "the preview's port no longer answers"
    );
    assert_eq!(
        slots_used(&stack, &host).await?,
        1,
        "the slot is free again"
    );
    let staging = stack.instance_dir(id).join("data.staging");
    assert!(!staging.exists(), "{} is gone", staging.display());
    // Confirming a recovery that never was a preview is refused too.
    let body = stack
        .recover_accepted(id, json!({"backup": backup}))
        .await?;
    let plain = body["recovery"]["recovery_id"].as_str().context("id")?;
    wait_recovery(&stack, id, plain, "COMPLETED").await?;
    let (status, _) = settle(&stack, id, plain, "confirm").await?;
    assert_eq!(status, StatusCode::CONFLICT);
    stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_preview_is_cancelled_by_the_sweeper() -> Result<()> {
    let (mut stack, id, backup, mut conn) = marked_instance("pg-preview-expiry").await?;
    stack.stop("taskmanager").await?;
    stack.preview_ttl_secs = 2;
    stack.start_taskmanager();
    let (rid, view) = preview_ready(&stack, id, json!({"backup": backup, "preview": true})).await?;
    let cancelled = wait_recovery(&stack, id, &rid, "CANCELLED").await?;
    assert!(
        cancelled["cancel_reason"]
            .as_str()
            .is_some_and(|r| r.contains("expired")),
        "{cancelled}"
    );
    let after = stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    assert!(after.get("fault").is_none(), "{after}");
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());
    assert!(connect_preview(&view).await.is_err());
    assert!(!stack.instance_dir(id).join("data.staging").exists());
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_previews_a_backup_then_confirms_it() -> Result<()> {
    let (stack, id, backup, _) = marked_instance("cli-preview").await?;
    let cli = stack.cli_a();
    let inst = id.to_string();
    // `--preview --wait` ends once the preview is ready and prints where it listens.
    let shown = cli
        .json(&[
            "instance",
            "recover",
            &inst,
            "--backup",
            &backup,
            "--preview",
            "--wait",
        ])
        .await?;
    let rid = shown["recovery_id"].as_str().context("recovery id")?;
    assert!(shown["preview"]["port"].is_u64(), "{shown}");
    assert_eq!(preview_marks(&shown).await?, vec![1, 2, 3]);
    let listed = cli.json(&["recovery", "show", &inst, rid]).await?;
    assert_eq!(listed["state"], "PREVIEW", "{listed}");

    let done = cli
        .json(&["recovery", "confirm", &inst, rid, "--wait"])
        .await?;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert!(done["outcome"]["downtime_ms"].is_u64(), "{done}");
    let mut live = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut live, "marks").await?, vec![1, 2, 3]);
    let refused = cli.fails(&["recovery", "cancel", &inst, rid]).await?;
    assert!(refused.contains("HTTP 409"), "{refused}");
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_agent_restarted_while_a_preview_waits_adopts_it() -> Result<()> {
    let (mut stack, id, _, mut conn) = marked_instance("pg-preview-adopt").await?;
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut conn)
        .await?;
    sqlx::query("DELETE FROM marks WHERE id > 7")
        .execute(&mut conn)
        .await?;
    stack.wait_window_past(id, before).await?;
    let (rid, view) = preview_ready(
        &stack,
        id,
        json!({"point_in_time": trove_e2e::rfc3339(before), "preview": true}),
    )
    .await?;
    // The preview's server outlives the agent; the restarted agent finds the preview on disk.
    stack.stop("guest").await?;
    stack.start_guest();
    assert_eq!(preview_marks(&view).await?, (1..=10).collect::<Vec<_>>());
    let (status, body) = settle(&stack, id, &rid, "confirm").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = wait_recovery(&stack, id, &rid, "COMPLETED").await?;
    assert!(done["outcome"]["downtime_ms"].is_u64(), "{done}");
    stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    let mut live = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut live, "marks").await?, (1..=10).collect::<Vec<_>>());
    stack.finish().await
}

/// Posts a move of recovery `rid`'s preview with `{"recovery": recovery}`.
async fn move_to(
    stack: &Stack,
    id: Uuid,
    rid: &str,
    recovery: Value,
) -> Result<(StatusCode, Value)> {
    stack
        .post_a(
            &format!("/instances/{id}/recoveries/{rid}/move"),
            json!({ "recovery": recovery }),
        )
        .await
}

/// The time just before `mark` is committed; returns once the store holds WAL past it.
async fn time_before_mark(
    stack: &Stack,
    id: Uuid,
    conn: &mut PgConnection,
    mark: i32,
) -> Result<chrono::DateTime<chrono::Utc>> {
    let t = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await?;
    trove_e2e::commit_mark_and_wait_for_the_store(stack, id, conn, mark).await?;
    Ok(t)
}

/// A stack whose instance has `marks` 1 to 10 after its backup, then 11 and 12 committed one
/// after the other and in the store: returns the times just before 11 (T1) and 12 (T2).
async fn two_points(
    name: &str,
) -> Result<(
    Stack,
    Uuid,
    PgConnection,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
)> {
    let (stack, id, _, mut conn) = trove_e2e::marked_after_a_backup(name).await?;
    let t1 = time_before_mark(&stack, id, &mut conn, 11).await?;
    let t2 = time_before_mark(&stack, id, &mut conn, 12).await?;
    Ok((stack, id, conn, t1, t2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_preview_moves_on_to_a_later_time_while_the_instance_serves_then_is_confirmed()
-> Result<()> {
    let (stack, id, mut live, t1, t2) = two_points("pg-preview-move").await?;
    let (rid, view) = preview_ready(
        &stack,
        id,
        json!({"point_in_time": trove_e2e::rfc3339(t1), "preview": true}),
    )
    .await?;
    let port = view["preview"]["port"].as_u64().context("port")?;
    assert_eq!(preview_marks(&view).await?, (1..=10).collect::<Vec<_>>());
    let expires = view["preview"]["expires_at"]
        .as_str()
        .context("expiry")?
        .to_string();

    let (status, body) = move_to(
        &stack,
        id,
        &rid,
        json!({"point_in_time": trove_e2e::rfc3339(t2)}),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["recovery"]["state"], "RUNNING", "{body}");
    assert_eq!(body["recovery"]["phase"], "replaying", "{body}");
    assert_eq!(body["recovery"]["moves"], 1, "{body}");
    assert_eq!(
        body["recovery"]["moved_from"]["time"],
        trove_e2e::rfc3339(t1),
        "{body}"
    );
    assert_eq!(
        body["recovery"]["target"]["time"],
        trove_e2e::rfc3339(t2),
        "{body}"
    );

    // The instance answers and takes writes all through the move.
    sqlx::query("INSERT INTO marks VALUES (13)")
        .execute(&mut live)
        .await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut served = 0;
    let moved = loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM marks")
            .fetch_one(&mut live)
            .await
            .context("the live instance stopped answering during the move")?;
        assert_eq!(n, 13);
        served += 1;
        let (_, v) = stack
            .get_a(&format!("/instances/{id}/recoveries/{rid}"))
            .await?;
        let r = v["recovery"].clone();
        anyhow::ensure!(r["state"] != "FAILED", "the move failed: {r}");
        if r["state"] == "PREVIEW" {
            break r;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the moved preview did not wait again within {WAIT:?}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("preview moved; the live instance answered {served} polls meanwhile");
    assert_eq!(moved["preview"]["port"], port, "the same port: {moved}");
    assert_ne!(
        moved["preview"]["expires_at"].as_str(),
        Some(expires.as_str()),
        "the expiry restarted: {moved}"
    );
    assert!(moved["error"].is_null(), "{moved}");
    assert_eq!(moved["target"]["time"], trove_e2e::rfc3339(t2), "{moved}");
    // The history shows both passes: the first staging, then the move's replay and wait.
    let phases = moved["phases"].as_array().context("phases")?;
    let pass = |round: u64| -> Vec<&str> {
        phases
            .iter()
            .filter(|p| p["move"] == round)
            .filter_map(|p| p["phase"].as_str())
            .collect()
    };
    assert!(
        pass(0).ends_with(&["replaying", "verifying_target", "preview"]),
        "{moved}"
    );
    assert_eq!(
        pass(1),
        vec!["replaying", "verifying_target", "preview"],
        "{moved}"
    );

    // Exactly the rows committed before T2; the instance kept its own data.
    assert_eq!(preview_marks(&moved).await?, (1..=11).collect::<Vec<_>>());
    assert_eq!(
        ids(&mut live, "marks").await?,
        (1..=13).collect::<Vec<_>>(),
        "the live data is untouched"
    );
    assert_eq!(stack.instance(id).await?["recovery"]["state"], "PREVIEW");

    let (status, body) = settle(&stack, id, &rid, "confirm").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = wait_recovery(&stack, id, &rid, "COMPLETED").await?;
    assert!(done["outcome"]["downtime_ms"].is_u64(), "{done}");
    // A finished recovery has no preview left to move.
    let (status, body) = move_to(
        &stack,
        id,
        &rid,
        json!({"point_in_time": trove_e2e::rfc3339(t2)}),
    )
    .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    let mut live = stack.connect_instance(id).await?;
    assert_eq!(
        ids(&mut live, "marks").await?,
        (1..=11).collect::<Vec<_>>(),
        "the instance now has the data of T2"
    );
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_preview_is_not_moved_back_or_off_its_timeline() -> Result<()> {
    let (stack, id, mut live, t1, t2) = two_points("pg-preview-move-back").await?;
    let (rid, view) = preview_ready(
        &stack,
        id,
        json!({"point_in_time": trove_e2e::rfc3339(t2), "preview": true}),
    )
    .await?;
    let refusals = [
        // Earlier, or not later: a new preview is needed.
        (
            json!({"point_in_time": trove_e2e::rfc3339(t1)}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"point_in_time": trove_e2e::rfc3339(t2)}),
            StatusCode::CONFLICT,
        ),
        (json!({"target": {"lsn": "0/1"}}), StatusCode::CONFLICT),
        (
            json!({"point_in_time": trove_e2e::rfc3339(t2), "timeline": 7}),
            StatusCode::CONFLICT,
        ),
        // Malformed, or no target to pause at.
        (json!({"point_in_time": "latest"}), StatusCode::BAD_REQUEST),
        (
            json!({"point_in_time": "2026-11-25T17:00:00"}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"backup": Uuid::new_v4()}), StatusCode::BAD_REQUEST),
        (json!({}), StatusCode::BAD_REQUEST),
    ];
    for (body, want) in refusals {
        let (status, answer) = move_to(&stack, id, &rid, body.clone()).await?;
        assert_eq!(status, want, "{body}: {answer}");
    }
    let (_, answer) = move_to(
        &stack,
        id,
        &rid,
        json!({"point_in_time": trove_e2e::rfc3339(t1)}),
    )
    .await?;
    assert!(answer.to_string().contains("new preview"), "{answer}");
    let (status, _) = move_to(
        &stack,
        id,
        &Uuid::new_v4().to_string(),
        json!({"point_in_time": trove_e2e::rfc3339(t2)}),
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nothing changed: the preview still waits at T2, never moved.
    let still = wait_recovery(&stack, id, &rid, "PREVIEW").await?;
    assert_eq!(still["moves"], 0, "{still}");
    assert_eq!(still["target"]["time"], trove_e2e::rfc3339(t2), "{still}");
    assert_eq!(still["preview"]["port"], view["preview"]["port"], "{still}");
    assert_eq!(preview_marks(&still).await?, (1..=11).collect::<Vec<_>>());
    assert_eq!(ids(&mut live, "marks").await?, (1..=12).collect::<Vec<_>>());

    let (status, body) = settle(&stack, id, &rid, "cancel").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_recovery(&stack, id, &rid, "CANCELLED").await?;
    let (status, body) = move_to(
        &stack,
        id,
        &rid,
        json!({"point_in_time": trove_e2e::rfc3339(t2)}),
    )
    .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_move_the_guest_refuses_keeps_the_preview_where_it_waited() -> Result<()> {
    let (stack, id, _, mut conn) = trove_e2e::marked_after_a_backup("pg-preview-move-kept").await?;
    // Transaction `ended` commits 11 before the preview's target: replay has passed it.
    let mut tx = sqlx::Connection::begin(&mut conn).await?;
    sqlx::query("INSERT INTO marks VALUES (11)")
        .execute(&mut *tx)
        .await?;
    let ended: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let t2 = time_before_mark(&stack, id, &mut conn, 12).await?;
    let t3 = time_before_mark(&stack, id, &mut conn, 13).await?;
    let (rid, view) = preview_ready(
        &stack,
        id,
        json!({"point_in_time": trove_e2e::rfc3339(t2), "preview": true}),
    )
    .await?;

    // The control plane cannot place a transaction; the guest finds it ended before the pause.
    let (status, body) = move_to(&stack, id, &rid, json!({"target": {"xid": ended}})).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["recovery"]["moved_from"]["kind"], "time", "{body}");
    let kept = wait_until("the refused move to end", WAIT, || async {
        let (_, v) = stack
            .get_a(&format!("/instances/{id}/recoveries/{rid}"))
            .await?;
        let r = v["recovery"].clone();
        anyhow::ensure!(r["state"] != "FAILED", "the preview was lost: {r}");
        Ok((r["state"] == "PREVIEW").then_some(r))
    })
    .await?;
    assert_eq!(kept["error_code"], "target_not_reached", "{kept}");
    assert_eq!(kept["moves"], 1, "{kept}");
    assert!(kept["moved_from"].is_null(), "{kept}");
    assert_eq!(
        kept["target"]["kind"], "time",
        "its old target again: {kept}"
    );
    assert_eq!(kept["target"]["time"], trove_e2e::rfc3339(t2), "{kept}");
    assert_eq!(kept["preview"]["port"], view["preview"]["port"], "{kept}");
    assert_eq!(preview_marks(&kept).await?, (1..=11).collect::<Vec<_>>());

    // The next move is number 2, and goes through.
    let (status, body) = move_to(
        &stack,
        id,
        &rid,
        json!({"point_in_time": trove_e2e::rfc3339(t3)}),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["recovery"]["moves"], 2, "{body}");
    let moved = wait_until("the second move to end", WAIT, || async {
        let (_, v) = stack
            .get_a(&format!("/instances/{id}/recoveries/{rid}"))
            .await?;
        let r = v["recovery"].clone();
        anyhow::ensure!(r["state"] != "FAILED", "the preview was lost: {r}");
        Ok((r["state"] == "PREVIEW").then_some(r))
    })
    .await?;
    assert!(moved["error_code"].is_null(), "{moved}");
    assert_eq!(moved["target"]["time"], trove_e2e::rfc3339(t3), "{moved}");
    assert_eq!(preview_marks(&moved).await?, (1..=12).collect::<Vec<_>>());
    assert_eq!(ids(&mut conn, "marks").await?, (1..=13).collect::<Vec<_>>());

    let (status, body) = settle(&stack, id, &rid, "cancel").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_recovery(&stack, id, &rid, "CANCELLED").await?;
    let after = stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    assert!(after.get("fault").is_none(), "{after}");
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_moves_a_preview_of_a_backup_on_to_a_time() -> Result<()> {
    let (stack, id, backup, mut conn) = marked_instance("cli-preview-move").await?;
    let t = time_before_mark(&stack, id, &mut conn, 11).await?;
    let cli = stack.cli_a();
    let inst = id.to_string();
    let shown = cli
        .json(&[
            "instance",
            "recover",
            &inst,
            "--backup",
            &backup,
            "--preview",
            "--wait",
        ])
        .await?;
    let rid = shown["recovery_id"].as_str().context("recovery id")?;
    assert_eq!(preview_marks(&shown).await?, vec![1, 2, 3]);

    // A preview of a backup's end moves on along the instance's timeline.
    let moved = cli
        .json(&[
            "recovery",
            "move",
            &inst,
            rid,
            "--time",
            &trove_e2e::rfc3339(t),
            "--wait",
        ])
        .await?;
    assert_eq!(moved["state"], "PREVIEW", "{moved}");
    assert_eq!(moved["moves"], 1, "{moved}");
    assert_eq!(
        moved["preview"]["port"], shown["preview"]["port"],
        "{moved}"
    );
    assert_eq!(preview_marks(&moved).await?, (1..=10).collect::<Vec<_>>());
    let refused = cli
        .fails(&["recovery", "move", &inst, rid, "--lsn", "0/1"])
        .await?;
    assert!(refused.contains("HTTP 409"), "{refused}");
    assert!(refused.contains("new preview"), "{refused}");

    let done = cli
        .json(&["recovery", "cancel", &inst, rid, "--wait"])
        .await?;
    assert_eq!(done["state"], "CANCELLED", "{done}");
    assert_eq!(ids(&mut conn, "marks").await?, (1..=11).collect::<Vec<_>>());
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_guest_agent_restarted_right_after_a_move_keeps_the_moved_preview() -> Result<()> {
    let (mut stack, id, mut live, t1, t2) = two_points("pg-preview-move-restart").await?;
    let (rid, view) = preview_ready(
        &stack,
        id,
        json!({"point_in_time": trove_e2e::rfc3339(t1), "preview": true}),
    )
    .await?;
    let (status, body) = move_to(
        &stack,
        id,
        &rid,
        json!({"point_in_time": trove_e2e::rfc3339(t2)}),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // The agent stops right after the move arrives (in this in-process stack it finishes the
    // work it has taken on first); the restarted one adopts the moved preview from its file.
    stack.stop("guest").await?;
    stack.start_guest();
    let moved = wait_recovery(&stack, id, &rid, "PREVIEW").await?;
    assert!(moved["error_code"].is_null(), "{moved}");
    assert_eq!(moved["moves"], 1, "{moved}");
    assert_eq!(moved["target"]["time"], trove_e2e::rfc3339(t2), "{moved}");
    assert_eq!(moved["preview"]["port"], view["preview"]["port"], "{moved}");
    assert_eq!(preview_marks(&moved).await?, (1..=11).collect::<Vec<_>>());
    assert_eq!(ids(&mut live, "marks").await?, (1..=12).collect::<Vec<_>>());
    let (status, body) = settle(&stack, id, &rid, "confirm").await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_recovery(&stack, id, &rid, "COMPLETED").await?;
    stack.wait_status(id, "ACTIVE", "HEALTHY", WAIT).await?;
    let mut live = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut live, "marks").await?, (1..=11).collect::<Vec<_>>());
    stack.finish().await
}
