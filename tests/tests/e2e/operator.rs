//! Operator actions: `instance reset status` and `instance force delete` (reset_status, then
//! DELETE), admin only, clear a stuck instance so it can be deleted, and nothing in flight
//! brings its old task back.

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{
    ALL, API_ONLY, Stack, TENANT_A, TENANT_B, TOKEN_ADMIN, TOKEN_B,
    envelope::assert_fault,
    fixtures::{backup_row, pg_version},
    wait_until,
};
use uuid::Uuid;

/// The admin token's project.
const ADMIN: &str = "admin";

/// Posts `body` to an instance's action as the admin, under the admin's own project, as the
/// CLI does with an admin's endpoint: admins reach any project's instance by id.
async fn admin_action(stack: &Stack, id: Uuid, body: Value) -> Result<(StatusCode, Value)> {
    let path = format!("/v1.0/{ADMIN}/instances/{id}/action");
    stack
        .call(Method::POST, &path, Some(TOKEN_ADMIN), Some(body))
        .await
}

async fn task_of(stack: &Stack, id: Uuid) -> Result<(i32, bool)> {
    Ok(
        sqlx::query_as("SELECT task_id, task_deadline IS NOT NULL FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&stack.pool)
            .await?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_status_is_admin_only_and_clears_task_backups_and_recovery() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    // No taskmanager: the build never starts, as with a dead control plane.
    let id = stack.create_instance("stuck", None).await?;
    let dsv = pg_version(&stack, Some("15")).await?;
    let now = chrono::Utc::now();
    let done = backup_row(&stack, TENANT_A, id, "COMPLETED", dsv, now, None).await?;
    let running = backup_row(&stack, TENANT_A, id, "BUILDING", dsv, now, None).await?;
    let recovery = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO recoveries (id, instance_id, backup_id, state, phase, deadline) \
         VALUES ($1, $2, $3, 'RUNNING', 'replaying', now() + interval '1 hour')",
    )
    .bind(recovery)
    .bind(id)
    .bind(done)
    .execute(&stack.pool)
    .await?;
    sqlx::query(
        "INSERT INTO recovery_phases (recovery_id, phase, rank) VALUES ($1, 'replaying', 5)",
    )
    .bind(recovery)
    .execute(&stack.pool)
    .await?;

    // The create's message leaves the outbox in the background; the snapshot counts the outbox.
    wait_until("the outbox to drain", Duration::from_secs(30), || async {
        Ok((stack.count("outbox").await? == 0).then_some(()))
    })
    .await?;
    // A member may not reset, and the refusal changes nothing.
    let before = stack.snapshot(id).await?;
    let (status, resp) = stack
        .post_a(
            &format!("/instances/{id}/action"),
            json!({"reset_status": {}}),
        )
        .await?;
    assert_fault(status, &resp, StatusCode::FORBIDDEN, "member reset_status");
    assert_eq!(stack.snapshot(id).await?, before);
    for (body, want) in [
        (json!({"reset_status": 3}), StatusCode::BAD_REQUEST),
        (
            json!({"reset_status": {}, "restart": {}}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, resp) = admin_action(&stack, id, body.clone()).await?;
        assert_fault(status, &resp, want, &body);
    }
    let (status, resp) = admin_action(&stack, Uuid::new_v4(), json!({"reset_status": {}})).await?;
    assert_fault(status, &resp, StatusCode::NOT_FOUND, "unknown instance");
    assert_eq!(stack.snapshot(id).await?, before);

    let (status, resp) = admin_action(&stack, id, json!({"reset_status": {}})).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    assert_eq!(
        task_of(&stack, id).await?,
        (1, false),
        "task NONE, no deadline"
    );
    let shown = stack.instance(id).await?;
    assert_eq!(shown["status"], "ERROR", "{shown}");
    assert!(shown.get("recovery").is_none(), "{shown}");
    let (_, b) = stack.get_a(&format!("/backups/{running}")).await?;
    assert_eq!(b["backup"]["status"], "FAILED", "{b}");
    let (_, b) = stack.get_a(&format!("/backups/{done}")).await?;
    assert_eq!(b["backup"]["status"], "COMPLETED", "{b}");
    assert_eq!(stack.recovery_state(&recovery.to_string()).await?, "FAILED");
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recovery_phases WHERE recovery_id = $1 AND ended_at IS NULL",
    )
    .bind(recovery)
    .fetch_one(&stack.pool)
    .await?;
    assert_eq!(open, 0, "the reset recovery's phase is closed");

    // Only admins reach another project's instance by id.
    let foreign = format!("/v1.0/{TENANT_B}/instances/{id}");
    let (status, resp) = stack
        .call(Method::GET, &foreign, Some(TOKEN_B), None)
        .await?;
    assert_fault(
        status,
        &resp,
        StatusCode::NOT_FOUND,
        "another project's instance",
    );
    let (status, resp) = stack
        .call(Method::DELETE, &foreign, Some(TOKEN_B), None)
        .await?;
    assert_fault(
        status,
        &resp,
        StatusCode::NOT_FOUND,
        "another project's delete",
    );

    // Now it can be deleted, which a BUILD instance could not.
    let (status, resp) = stack
        .call_a(Method::DELETE, &format!("/instances/{id}"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    assert_eq!(task_of(&stack, id).await?, (2, true), "task DELETING");
    stack.shutdown().await;
    Ok(())
}

/// `openstack database instance force delete` of an instance whose build went to a guest host
/// that died: the reset clears it, the delete completes without the host, and the project's
/// quota is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn force_delete_removes_an_instance_stuck_on_a_dead_host() -> Result<()> {
    let mut stack = Stack::start(ALL).await?;
    stack.stop("guest").await?;
    let id = stack.create_instance("orphan", None).await?;
    let pool = stack.pool.clone();
    wait_until(
        "the build placed on the host",
        Duration::from_secs(30),
        || async {
            let host: Option<String> =
                sqlx::query_scalar("SELECT host FROM instances WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await?;
            Ok(host.map(|_| ()))
        },
    )
    .await?;
    // Trove's refusal of a plain delete while it builds still holds.
    let (status, resp) = stack
        .call_a(Method::DELETE, &format!("/instances/{id}"), None)
        .await?;
    assert_fault(
        status,
        &resp,
        StatusCode::UNPROCESSABLE_ENTITY,
        "delete in BUILD",
    );

    // What the CLI's force delete sends, from the admin's own project: a lookup, the reset,
    // the delete.
    let admin_path = format!("/v1.0/{ADMIN}/instances/{id}");
    let (status, shown) = stack
        .call(Method::GET, &admin_path, Some(TOKEN_ADMIN), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["instance"]["status"], "BUILD", "{shown}");
    let (status, resp) = admin_action(&stack, id, json!({"reset_status": {}})).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    let (status, resp) = stack
        .call(Method::DELETE, &admin_path, Some(TOKEN_ADMIN), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");

    // Once the host's heartbeat has expired, the delete completes without it.
    wait_until(
        "the instance to be gone",
        Duration::from_secs(90),
        || async {
            let (status, _) = stack.get_a(&format!("/instances/{id}")).await?;
            Ok((status == StatusCode::NOT_FOUND).then_some(()))
        },
    )
    .await?;
    let (status, q) = stack
        .call(
            Method::GET,
            &format!("/v1.0/{TENANT_A}/mgmt/quotas/{TENANT_A}"),
            Some(TOKEN_ADMIN),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{q}");
    let instances = q["quotas"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["resource"] == "instances"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(instances["in_use"], 0, "{q}");
    let deleted: bool = sqlx::query_scalar("SELECT deleted FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&stack.pool)
        .await?;
    assert!(deleted);
    stack.finish().await
}
