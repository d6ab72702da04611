//! Rewind: with a window set, the host keeps a delayed copy of the instance, and a recovery to a
//! time the copy has not applied yet replays only the gap from it; a target the copy has passed
//! restores a backup instead; a preview inside the window is the copy itself, and moves on and is
//! confirmed like any preview. The copy is rebuilt after every recovery and removed when the
//! window is unset or the instance deleted. Checked by the rows inside the managed databases.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection, postgres::PgConnectOptions};
use trove_e2e::{
    Stack, TENANT_A, TOKEN_B, commit_mark_and_wait_for_the_store, marked_after_a_backup, rfc3339,
    time_of, wait_until,
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(180);

async fn rewind(stack: &Stack, id: Uuid) -> Result<Value> {
    let (status, v) = stack.get_a(&format!("/instances/{id}/rewind")).await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    Ok(v["rewind"].clone())
}

/// Waits until the copy is READY on `timeline` (any when None); returns the view.
async fn wait_ready(stack: &Stack, id: Uuid, timeline: Option<i64>) -> Result<Value> {
    wait_until("the delayed copy to be ready", WAIT, || async {
        let v = rewind(stack, id).await?;
        let on_timeline = timeline.is_none_or(|t| v["timeline"].as_i64() == Some(t));
        Ok((v["status"] == "READY" && on_timeline).then_some(v))
    })
    .await
}

/// Waits until recovery `rid` of `id` is in `state`; returns its view.
async fn wait_recovery(stack: &Stack, id: Uuid, rid: &str, state: &str) -> Result<Value> {
    wait_until(&format!("recovery {rid} to be {state}"), WAIT, || async {
        let (_, v) = stack
            .get_a(&format!("/instances/{id}/recoveries/{rid}"))
            .await?;
        let r = v["recovery"].clone();
        anyhow::ensure!(r["state"] != "FAILED", "recovery failed: {r}");
        Ok((r["state"] == state).then_some(r))
    })
    .await
}

/// Recovers in place to `t`, waits until the recovery completed and the instance is ACTIVE;
/// returns the recovery's outcome.
async fn recover_to(stack: &Stack, id: Uuid, t: chrono::DateTime<chrono::Utc>) -> Result<Value> {
    let body = stack
        .recover_accepted(id, json!({"point_in_time": rfc3339(t)}))
        .await?;
    let rid = body["recovery"]["recovery_id"]
        .as_str()
        .context("recovery id")?
        .to_string();
    let done = wait_until("the recovery to complete", WAIT, || async {
        let (_, v) = stack
            .get_a(&format!("/instances/{id}/recoveries/{rid}"))
            .await?;
        let r = v["recovery"].clone();
        anyhow::ensure!(r["state"] != "FAILED", "recovery failed: {r}");
        Ok((r["state"] == "COMPLETED").then_some(r))
    })
    .await?;
    stack
        .wait_status(id, "ACTIVE", "HEALTHY", Duration::from_secs(120))
        .await?;
    Ok(done["outcome"].clone())
}

/// The rows of `marks` in the preview the recovery `view` shows, as the instance's user.
async fn preview_marks(view: &Value) -> Result<Vec<i32>> {
    let p = &view["preview"];
    let opts = PgConnectOptions::new()
        .host(p["address"].as_str().context("preview address")?)
        .port(u16::try_from(p["port"].as_u64().context("preview port")?)?)
        .username("app")
        .password("app-secret-1")
        .database("appdb");
    let mut preview = PgConnection::connect_with(&opts).await?;
    let rows = marks(&mut preview).await?;
    preview.close().await?;
    Ok(rows)
}

async fn marks(conn: &mut PgConnection) -> Result<Vec<i32>> {
    Ok(sqlx::query_scalar("SELECT id FROM marks ORDER BY id")
        .fetch_all(conn)
        .await?)
}

async fn now(conn: &mut PgConnection) -> Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(conn)
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_inside_the_window_replays_only_the_gap_from_the_delayed_copy() -> Result<()> {
    let (mut stack, id, _, mut conn) = marked_after_a_backup("pg-rewind").await?;
    let path = format!("/instances/{id}/rewind");
    assert_eq!(rewind(&stack, id).await?["status"], "OFF");

    // Refusals change nothing.
    for bad in [
        json!({"rewind": {"window_minutes": 0}}),
        json!({"rewind": {"window_minutes": 1441}}),
        json!({"rewind": {"window_minutes": "5"}}),
        json!({"rewind": {"window": 5}}),
    ] {
        let (status, v) = stack.call_a(Method::PUT, &path, Some(bad.clone())).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["badRequest"]["message"].is_string(), "{v}");
    }
    let (status, _) = stack
        .call(
            Method::PUT,
            &format!("/v1.0/{TENANT_A}{path}"),
            Some(TOKEN_B),
            Some(json!({"rewind": {"window_minutes": 5}})),
        )
        .await?;
    assert!(
        status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
        "{status}"
    );
    assert_eq!(rewind(&stack, id).await?["status"], "OFF");

    // A point before the copy exists: marks 1 to 10.
    let before_copy = now(&mut conn).await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 11).await?;

    let (status, v) = stack
        .call_a(
            Method::PUT,
            &path,
            Some(json!({"rewind": {"window_minutes": 10}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["rewind"]["window_minutes"], 10, "{v}");
    assert_eq!(v["rewind"]["status"], "BUILDING", "{v}");
    let ready = wait_ready(&stack, id, None).await?;
    let from = time_of(&ready["rewindable_from"]).context("rewindable_from")?;
    assert!(from > before_copy, "{ready}");
    assert!(ready["disk_bytes"].as_u64().unwrap_or(0) > 0, "{ready}");

    // The copy has passed that point: a backup is restored, and says why.
    let outcome = recover_to(&stack, id, before_copy).await?;
    assert_eq!(outcome["source"], "backup", "{outcome}");
    let why = outcome["rewind_skipped"].as_str().unwrap_or_default();
    assert!(why.contains("past the target"), "{outcome}");
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(marks(&mut conn).await?, (1..=10).collect::<Vec<_>>());

    // After the recovery the copy is built again, on the instance's new timeline.
    let timeline = stack.instance(id).await?["recovery_window"]["timeline"]
        .as_i64()
        .context("timeline")?;
    wait_ready(&stack, id, Some(timeline)).await?;

    // The copy outlives an agent restart: the restarted agent adopts it, it is not rebuilt.
    let pid_file = stack
        .instance_dir(id)
        .join("data.rewind")
        .join("postmaster.pid");
    let copy_pid = || -> Result<String> {
        let text = std::fs::read_to_string(&pid_file)?;
        Ok(text.lines().next().unwrap_or_default().trim().to_owned())
    };
    let pid_before = copy_pid()?;
    stack.stop("guest").await?;
    stack.start_guest();
    let ready = wait_ready(&stack, id, Some(timeline)).await?;
    assert_eq!(copy_pid()?, pid_before);

    // A copy whose server died is started again where it stood, not rebuilt.
    let copy_dir = stack.instance_dir(id).join("data.rewind");
    let stopped = std::process::Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "/usr/lib/postgresql/15/bin/pg_ctl",
            "-D",
        ])
        .arg(&copy_dir)
        .args(["-m", "immediate", "-w", "stop"])
        .output()?;
    assert!(stopped.status.success(), "{stopped:?}");
    let restarted = wait_until("the copy started again", WAIT, || async {
        let v = rewind(&stack, id).await?;
        let pid = copy_pid().unwrap_or_default();
        Ok((v["status"] == "READY" && !pid.is_empty() && pid != pid_before).then_some(v))
    })
    .await?;
    assert_eq!(restarted["rewindable_from"], ready["rewindable_from"]);

    // Inside the window: only the gap is replayed, from the copy.
    sqlx::query("INSERT INTO marks VALUES (20)")
        .execute(&mut conn)
        .await?;
    let target = now(&mut conn).await?;
    sqlx::raw_sql("DELETE FROM marks WHERE id <= 5; INSERT INTO marks VALUES (21)")
        .execute(&mut conn)
        .await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 22).await?;
    drop(conn);
    let outcome = recover_to(&stack, id, target).await?;
    assert_eq!(outcome["source"], "rewind", "{outcome}");
    assert!(outcome["downtime_ms"].is_u64(), "{outcome}");
    let mut conn = stack.connect_instance(id).await?;
    let mut want: Vec<i32> = (1..=10).collect();
    want.push(20);
    assert_eq!(marks(&mut conn).await?, want);
    drop(conn);

    // Rebuilt once more; then unset: the copy goes.
    let timeline = stack.instance(id).await?["recovery_window"]["timeline"]
        .as_i64()
        .context("timeline")?;
    wait_ready(&stack, id, Some(timeline)).await?;
    let (status, v) = stack.call_a(Method::DELETE, &path, None).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["rewind"]["status"], "OFF", "{v}");
    let copy_dir = stack.instance_dir(id).join("data.rewind");
    wait_until("the delayed copy to be removed", WAIT, || async {
        Ok((!copy_dir.exists()).then_some(()))
    })
    .await?;

    // Deleting the instance stops its copy's server too.
    let (status, v) = stack
        .call_a(
            Method::PUT,
            &path,
            Some(json!({"rewind": {"window_minutes": 1}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    wait_ready(&stack, id, None).await?;
    let pid_file = std::fs::read_to_string(copy_dir.join("postmaster.pid"))?;
    let pid = pid_file
        .lines()
        .next()
        .context("postmaster pid")?
        .trim()
        .to_owned();
    let (status, v) = stack
        .call_a(Method::DELETE, &format!("/instances/{id}"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let proc_dir = std::path::PathBuf::from("/proc").join(&pid);
    wait_until(
        "the copy's server to stop with the instance",
        WAIT,
        || async { Ok((!proc_dir.exists() && !copy_dir.exists()).then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_preview_inside_the_window_starts_from_the_delayed_copy_and_moves_on() -> Result<()> {
    let (stack, id, _, mut conn) = marked_after_a_backup("pg-rewind-preview").await?;
    let (status, v) = stack
        .call_a(
            Method::PUT,
            &format!("/instances/{id}/rewind"),
            Some(json!({"rewind": {"window_minutes": 10}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    wait_ready(&stack, id, None).await?;

    sqlx::query("INSERT INTO marks VALUES (20)")
        .execute(&mut conn)
        .await?;
    let target = now(&mut conn).await?;
    sqlx::raw_sql("DELETE FROM marks WHERE id <= 5; INSERT INTO marks VALUES (21)")
        .execute(&mut conn)
        .await?;
    let later = now(&mut conn).await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 22).await?;

    let body = stack
        .recover_accepted(
            id,
            json!({"point_in_time": rfc3339(target), "preview": true}),
        )
        .await?;
    let rid = body["recovery"]["recovery_id"]
        .as_str()
        .context("recovery id")?
        .to_string();
    let view = wait_recovery(&stack, id, &rid, "PREVIEW").await?;
    let phases: Vec<&str> = view["phases"]
        .as_array()
        .context("phases")?
        .iter()
        .filter_map(|p| p["phase"].as_str())
        .collect();
    // From the copy: no archive was fetched.
    assert!(!phases.contains(&"fetching"), "{view}");
    let mut want: Vec<i32> = (1..=10).collect();
    want.push(20);
    assert_eq!(preview_marks(&view).await?, want);
    // The live instance kept its data meanwhile.
    assert_eq!(marks(&mut conn).await?, [6, 7, 8, 9, 10, 20, 21, 22]);
    drop(conn);

    // Moved on past the delete, from where the copy paused (the store serves the WAL now).
    let (status, v) = stack
        .post_a(
            &format!("/instances/{id}/recoveries/{rid}/move"),
            json!({"recovery": {"point_in_time": rfc3339(later)}}),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let view = wait_until("the moved preview", WAIT, || async {
        let v = wait_recovery(&stack, id, &rid, "PREVIEW").await?;
        Ok((v["moves"] == 1).then_some(v))
    })
    .await?;
    let want = vec![6, 7, 8, 9, 10, 20, 21];
    assert_eq!(preview_marks(&view).await?, want);

    let (status, v) = stack
        .call_a(
            Method::POST,
            &format!("/instances/{id}/recoveries/{rid}/confirm"),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let done = wait_recovery(&stack, id, &rid, "COMPLETED").await?;
    assert_eq!(done["outcome"]["source"], "rewind", "{done}");
    stack
        .wait_status(id, "ACTIVE", "HEALTHY", Duration::from_secs(120))
        .await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(marks(&mut conn).await?, want);
    Ok(())
}
