//! Daemons die and come back: no task is lost, running databases keep serving.

use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::json;
use trove_e2e::{ALL, Stack, ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_accepted_while_the_taskmanager_is_down_runs_when_it_returns() -> Result<()> {
    let mut stack = Stack::start(ALL).await?;
    let id = stack.create_instance("pg-tm-down", None).await?;
    stack.wait_active(id).await?;
    let mut conn = stack.connect_instance(id).await?;
    sqlx::raw_sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);")
        .execute(&mut conn)
        .await?;
    let backup = stack.backup(id, "b").await?;
    sqlx::query("INSERT INTO t VALUES (3)")
        .execute(&mut conn)
        .await?;
    drop(conn);

    stack.stop("taskmanager").await?;
    let (status, body) = stack
        .post_a(
            &format!("/instances/{id}/recover"),
            json!({"recovery": {"backup": backup["id"]}}),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(stack.instance(id).await?["status"], "RECOVER");
    // Nothing consumes the task while the taskmanager is away; it must still be there after.
    stack.start_taskmanager();
    stack.wait_active(id).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "t").await?, vec![1, 2]);
    stack.assert_quiescent().await?;
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_guest_agent_adopts_its_running_instance() -> Result<()> {
    let mut stack = Stack::start(ALL).await?;
    let id = stack.create_instance("pg-adopt", None).await?;
    let before = stack.wait_active(id).await?;
    let mut conn = stack.connect_instance(id).await?;
    sqlx::raw_sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1);")
        .execute(&mut conn)
        .await?;

    stack.stop("guest").await?;
    // The database keeps serving tenants while its agent is away.
    sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&mut conn)
        .await?;
    drop(conn);
    stack.start_guest();

    // The adopted instance answers backups again, on the same port.
    let backup = stack.backup(id, "after-restart").await?;
    assert_eq!(backup["status"], "COMPLETED");
    let after = stack.wait_active(id).await?;
    assert_eq!(after["addresses"], before["addresses"]);
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "t").await?, vec![1, 2]);
    stack.assert_quiescent().await?;
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_an_instance_stops_its_server_and_hides_it() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let id = stack.create_instance("pg-delete", None).await?;
    stack.wait_active(id).await?;
    let (status, _) = stack
        .call(
            reqwest::Method::DELETE,
            &format!("/v1.0/tenant-a/instances/{id}"),
            Some(trove_e2e::TOKEN_A),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    trove_e2e::wait_until(
        "the instance to disappear",
        Duration::from_secs(60),
        || async {
            let (status, _) = stack.get_a(&format!("/instances/{id}")).await?;
            Ok((status == StatusCode::NOT_FOUND).then_some(()))
        },
    )
    .await?;
    assert!(
        !stack.instance_dir(id).exists(),
        "the instance directory is removed"
    );
    stack.assert_quiescent().await?;
    stack.shutdown().await;
    Ok(())
}
