//! Guest agents on two hosts that share nothing but the object store, the bus and the control
//! plane: a backup taken on one restores on the other, a point in time of an instance on one
//! restores into a new instance on the other from the first one's WAL (also once that instance
//! is deleted, within its retention), and deleting a backup removes its objects from the store.

use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::TimeDelta as Span;
use reqwest::{Method, StatusCode};
use serde_json::json;
use trove_e2e::{
    ALL, Stack, TOKEN_A, ids, rfc3339, target_between, tick_ids, tick_ids_upto, wait_until,
};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_and_a_point_in_time_from_host_a_restore_on_host_b() -> Result<()> {
    let mut stack = Stack::start(ALL).await?;
    let host_a = stack.host.clone();
    let (src, _) = stack.active_instance("pg-on-a").await?;
    let writer = stack.start_writer(src).await?;
    let backup = stack.backup(src, "base").await?;
    let (since, rows) = stack.keep_writing(src, writer, Span::seconds(2)).await?;
    let (t, kept) = target_between(&rows, since).context("a gap between two commits")?;
    stack.wait_window_past(src, t).await?;

    // Host B comes up; host A takes no more instances, so every new one lands on B.
    let host_b = format!("b-{}", stack.id);
    stack.add_guest_host(&host_b).await?;
    stack.set_host_capacity(&host_a, 1).await?;
    assert_eq!(stack.host_of(src).await?, host_a);

    // The backup taken on A, restored on B.
    let backup_id = Uuid::parse_str(backup["id"].as_str().context("backup id")?)?;
    let from_backup = stack
        .create_instance("pg-b-backup", Some(backup_id))
        .await?;
    stack.wait_active(from_backup).await?;
    assert_eq!(stack.host_of(from_backup).await?, host_b);
    let mut conn = stack.connect_instance(from_backup).await?;
    let restored = ids(&mut conn, "ticks").await?;
    assert!(
        !restored.is_empty() && restored.len() <= rows.len(),
        "the backup holds the rows written before it: {restored:?}"
    );
    assert_eq!(restored, tick_ids(&rows)[..restored.len()].to_vec());

    // A point in time of A's instance, from A's WAL in the store, into a new instance on B.
    let (status, body) = stack
        .post_a(
            "/instances",
            json!({"instance": {
                "name": "pg-b-at-t", "flavorRef": "1",
                "restorePoint": {"instanceRef": src.to_string(), "point_in_time": rfc3339(t)},
            }}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at_t = Uuid::parse_str(body["instance"]["id"].as_str().context("id")?)?;
    stack.wait_active(at_t).await?;
    assert_eq!(stack.host_of(at_t).await?, host_b);
    let mut conn = stack.connect_instance(at_t).await?;
    assert_eq!(ids(&mut conn, "ticks").await?, tick_ids_upto(&rows, kept));
    // B's copies live in B's own tree, A's instance in A's.
    assert!(
        stack
            .root()
            .join("instances-b")
            .join(at_t.to_string())
            .join("data")
            .exists()
    );
    assert!(stack.instance_dir(src).join("data").exists());
    // The source kept running with everything it wrote.
    let mut conn = stack.connect_instance(src).await?;
    assert_eq!(ids(&mut conn, "ticks").await?, tick_ids(&rows));
    drop(conn);

    // Host A's instance is deleted; its WAL and backups stay for its retention window, and a
    // point in time of it still restores (on B).
    let (status, body) = stack
        .call_a(Method::DELETE, &format!("/instances/{src}"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_until(
        "the source instance to be deleted",
        Duration::from_secs(60),
        || async {
            let deleted: bool = sqlx::query_scalar("SELECT deleted FROM instances WHERE id = $1")
                .bind(src)
                .fetch_one(&stack.pool)
                .await?;
            Ok(deleted.then_some(()))
        },
    )
    .await?;
    let (status, body) = stack
        .post_a(
            "/instances",
            json!({"instance": {
                "name": "pg-b-from-deleted", "flavorRef": "1",
                "restorePoint": {"instanceRef": src.to_string(), "point_in_time": rfc3339(t)},
            }}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let from_deleted = Uuid::parse_str(body["instance"]["id"].as_str().context("id")?)?;
    stack.wait_active(from_deleted).await?;
    let mut conn = stack.connect_instance(from_deleted).await?;
    assert_eq!(ids(&mut conn, "ticks").await?, tick_ids_upto(&rows, kept));

    // Deleting the backup removes its objects from the store.
    let store = stack.store()?;
    let dir = format!("backups/{backup_id}");
    assert_eq!(store.list(&dir).await?.len(), 2, "archive and manifest");
    let (status, body) = stack
        .call(
            Method::DELETE,
            &format!("/v1.0/tenant-a/backups/{backup_id}"),
            Some(TOKEN_A),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_until(
        "the backup's objects to leave the store",
        Duration::from_secs(30),
        || async { Ok(store.list(&dir).await?.is_empty().then_some(())) },
    )
    .await?;
    stack.finish().await
}
