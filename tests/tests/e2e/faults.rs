//! Daemons die and come back: no task is lost, running databases keep serving.

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::json;
use trove_e2e::{ALL, Stack, ids, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_accepted_while_the_taskmanager_is_down_runs_when_it_returns() -> Result<()> {
    let mut stack = Stack::start(ALL).await?;
    let (id, backup) = stack
        .backed_up_instance(
            "pg-tm-down",
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);",
            "b",
            "INSERT INTO t VALUES (3)",
        )
        .await?;

    stack.stop("taskmanager").await?;
    stack
        .recover_accepted(id, json!({"backup": backup["id"]}))
        .await?;
    assert_eq!(stack.instance(id).await?["status"], "RECOVER");
    // Nothing consumes the task while the taskmanager is away; it must still be there after.
    stack.start_taskmanager();
    stack.wait_active(id).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "t").await?, vec![1, 2]);
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_guest_agent_adopts_its_running_instance() -> Result<()> {
    let mut stack = Stack::start(ALL).await?;
    let (id, before, mut conn) = stack
        .seeded_instance(
            "pg-adopt",
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1);",
        )
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
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_an_instance_stops_its_server_and_hides_it() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("pg-delete").await?;
    let path = format!("/instances/{id}");
    let (status, _) = stack.call_a(Method::DELETE, &path, None).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_until(
        "the instance to disappear",
        Duration::from_secs(60),
        || async {
            let (status, _) = stack.get_a(&path).await?;
            Ok((status == StatusCode::NOT_FOUND).then_some(()))
        },
    )
    .await?;
    assert!(
        !stack.instance_dir(id).exists(),
        "the instance directory is removed"
    );
    stack.finish().await
}
