//! Point-in-time recovery through the whole stack: continuous WAL, the window, recover in place
//! to a time across timelines, restore a time into a new instance, and the RPO of a crash.

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Duration as Span;
use reqwest::StatusCode;
use serde_json::json;
use trove_e2e::{
    ALL, Stack, Writer, ids, rfc3339, target_between, tick_ids, tick_ids_upto, time_of,
};
use uuid::Uuid;

/// Recovers in place to `t` and waits, with a replay's longer deadline, for the instance to be
/// ACTIVE again without a fault.
async fn recover_to(
    stack: &Stack,
    id: Uuid,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<serde_json::Value> {
    let body = stack
        .recover_accepted(id, json!({"point_in_time": rfc3339(t)}))
        .await?;
    assert_eq!(body["recovery"]["point_in_time"], rfc3339(t));
    let during = stack.instance(id).await?;
    assert_eq!(during["status"], "RECOVER", "{during}");
    let after = wait_replayed(stack, id).await?;
    assert!(after.get("fault").is_none(), "{after}");
    Ok(body)
}

async fn wait_replayed(stack: &Stack, id: Uuid) -> Result<serde_json::Value> {
    stack
        .wait_status(id, "ACTIVE", "HEALTHY", Duration::from_secs(120))
        .await
}

/// Waits until the instance runs on a timeline newer than `previous` and the store reports WAL on
/// it (the window needs both); returns the new timeline.
async fn new_timeline(stack: &Stack, id: Uuid, previous: i64) -> Result<i64> {
    trove_e2e::wait_until(
        "the window on the new timeline",
        Duration::from_secs(60),
        || async {
            let w = stack.instance(id).await?["recovery_window"].clone();
            let tl = w["timeline"].as_i64().unwrap_or(0);
            Ok((tl > previous && w["latest"].is_string()).then_some(tl))
        },
    )
    .await
}

/// A stack with an ACTIVE instance that has a base backup, and a writer started after it.
async fn writing_after_a_backup(name: &str) -> Result<(Stack, Uuid, Writer)> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance(name).await?;
    stack.backup(id, "base").await?;
    let writer = stack.start_writer(id).await?;
    Ok((stack, id, writer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_to_a_time_twice_across_timelines_keeps_exactly_the_rows_up_to_it() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("pg-pitr").await?;
    let writer = stack.start_writer(id).await?;
    let backup = stack.backup(id, "base").await?;
    // The window opens once the guest reports WAL archived after the backup.
    let window = stack
        .wait_window_past(id, chrono::Utc::now() - Span::seconds(60))
        .await?;
    let backup_stop = time_of(&window["earliest"]).context("earliest")?;
    // Let the writer run well past the backup, then pick T1 between two commits.
    stack
        .wait_window_past(id, backup_stop + Span::seconds(2))
        .await?;
    let rows = writer.stop().await?;
    let (t1, kept1) = target_between(&rows, backup_stop + Span::milliseconds(500))
        .context("a gap after the backup")?;
    let window = stack.wait_window_past(id, t1).await?;
    let tl1 = window["timeline"].as_i64().context("timeline")?;
    assert!(backup["id"].is_string());

    // First recovery, to T1.
    recover_to(&stack, id, t1).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "ticks").await?, tick_ids_upto(&rows, kept1));
    let tl2 = new_timeline(&stack, id, tl1).await?;

    // New writes on the new timeline, then a recovery to a time among them (after the first
    // recovery): the rows up to T1, plus the new ones up to T2.
    let writer = Writer::start(conn, Duration::from_millis(50)).await?;
    let (since, new_rows) = stack.keep_writing(id, writer, Span::seconds(2)).await?;
    let (t2, kept2) =
        target_between(&new_rows, since + Span::milliseconds(300)).context("a gap")?;
    stack.wait_window_past(id, t2).await?;
    recover_to(&stack, id, t2).await?;
    let mut conn = stack.connect_instance(id).await?;
    let mut want = tick_ids_upto(&rows, kept1);
    want.extend(tick_ids_upto(&new_rows, kept2));
    assert_eq!(ids(&mut conn, "ticks").await?, want);
    let tl3 = new_timeline(&stack, id, tl2).await?;

    // And back to a time before the first recovery's target: only the old rows up to T0.
    let (t0, kept0) =
        target_between(&rows, backup_stop + Span::milliseconds(200)).context("a gap")?;
    assert!(t0 < t1);
    recover_to(&stack, id, t0).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "ticks").await?, tick_ids_upto(&rows, kept0));
    // Timeline ids are never reused: the fourth timeline is newer than the third even though it
    // branched from the first.
    let tl4 = new_timeline(&stack, id, tl3).await?;
    let (status, w) = stack
        .get_a(&format!("/instances/{id}/recovery-window"))
        .await?;
    assert_eq!(status, StatusCode::OK);
    let lineage = w["recovery_window"]["lineage"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (lineage.first(), lineage.last()),
        (Some(&json!(tl4)), Some(&json!(tl1))),
        "{w}"
    );
    // Every timeline's history is in the store.
    let keys: Vec<String> = stack
        .store()?
        .list(&format!("wal/{id}"))
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    for tl in [tl2, tl3, tl4] {
        let history = format!("wal/{id}/tl{tl}/{tl:08X}.history");
        assert!(keys.contains(&history), "{history} is missing");
    }
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_a_time_into_a_new_instance_leaves_the_source_running() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (src, _) = stack.active_instance("pg-src").await?;
    let writer = stack.start_writer(src).await?;
    stack.backup(src, "base").await?;
    let (since, rows) = stack.keep_writing(src, writer, Span::seconds(2)).await?;
    let (t, kept) = target_between(&rows, since).context("a gap")?;
    stack.wait_window_past(src, t).await?;

    let (status, body) = stack
        .post_a("/instances", json!({"instance": {
            "name": "pg-at-t", "flavorRef": "1",
            "restorePoint": {"instanceRef": format!("http://x/v1.0/tenant-a/instances/{src}"), "point_in_time": rfc3339(t)},
        }}))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let copy = Uuid::parse_str(body["instance"]["id"].as_str().context("id")?)?;
    stack.wait_active(copy).await?;
    let mut conn = stack.connect_instance(copy).await?;
    assert_eq!(ids(&mut conn, "ticks").await?, tick_ids_upto(&rows, kept));
    let mut conn = stack.connect_instance(src).await?;
    assert_eq!(ids(&mut conn, "ticks").await?, tick_ids(&rows));
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_right_after_a_commit_loses_at_most_a_second() -> Result<()> {
    let (stack, id, writer) = writing_after_a_backup("pg-rpo").await?;
    // Read before the writer stops, so that the kill follows its last commit at once, as a host
    // loss would.
    let pid_file = stack.instance_dir(id).join("data/postmaster.pid");
    let pid = std::fs::read_to_string(&pid_file)?
        .lines()
        .next()
        .context("pid")?
        .trim()
        .to_string();
    let (_, rows_before_kill) = stack.keep_writing(id, writer, Span::seconds(1)).await?;
    std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()?;
    let last_commit = rows_before_kill.last().context("rows")?.ts;
    // What the store holds is final now (the receiver lost its server); the guest reports it
    // within a second. Wait for the report to show the last commit, or give up after 10 s and
    // measure what is missing.
    let mut store = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        let w = stack.instance(id).await?["recovery_window"].clone();
        store = time_of(&w["latest"]).max(store);
        if store.is_some_and(|l| l >= last_commit) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = store.context("no window reported")?;
    let lost_ms = (last_commit - store).num_milliseconds().max(0);
    eprintln!(
        "RPO after kill -9: last commit {last_commit}, last in store {store}, lost {lost_ms} ms"
    );
    assert!(lost_ms <= 1000, "lost {lost_ms} ms of commits");
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_to_latest_replays_everything_in_the_store() -> Result<()> {
    let (stack, id, writer) = writing_after_a_backup("pg-latest").await?;
    let (_, rows) = stack.keep_writing(id, writer, Span::seconds(1)).await?;
    let last = rows.last().context("rows")?;
    let window = stack.wait_window_past(id, last.ts).await?;
    let tl = window["timeline"].as_i64().context("timeline")?;

    let body = stack
        .recover_accepted(id, json!({"point_in_time": "latest"}))
        .await?;
    // "latest" answers with the last archived commit, which may only have moved forward since.
    assert!(
        time_of(&body["recovery"]["point_in_time"]) >= time_of(&window["latest"]),
        "{body} vs {window}"
    );
    wait_replayed(&stack, id).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "ticks").await?, tick_ids(&rows));
    assert!(new_timeline(&stack, id, tl).await? > tl);
    stack.finish().await
}
