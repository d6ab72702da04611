//! Every refusal of `recover` answers in Trove's envelope and changes nothing. These run the API
//! alone against fixture rows: the checks happen before any other daemon is involved.

use anyhow::Result;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::json;
use trove_e2e::{
    API_ONLY, Stack, TENANT_A, TENANT_B, TOKEN_A, TOKEN_B,
    envelope::assert_fault,
    fixtures::{backup_row, idle_instance, pg_version},
    wait_until,
};
use uuid::Uuid;

/// Inserts a backup of `instance` in `state`, of a version "1" of `datastore` registered for it.
async fn fixture_backup(
    stack: &Stack,
    instance: Uuid,
    state: &str,
    datastore: &str,
) -> Result<Uuid> {
    let dsv = trove_taskmanager::manage::register_datastore_version(
        &stack.pool,
        datastore,
        "1",
        "1",
        datastore,
    )
    .await?;
    backup_row(stack, TENANT_A, instance, state, dsv, Utc::now(), None).await
}

async fn completed_pg_backup(stack: &Stack, tenant: &str, instance: Uuid) -> Result<Uuid> {
    let dsv = pg_version(stack, Some("15")).await?;
    backup_row(stack, tenant, instance, "COMPLETED", dsv, Utc::now(), None).await
}

async fn delete_backup(stack: &Stack, id: Uuid) -> Result<()> {
    sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(id)
        .execute(&stack.pool)
        .await?;
    Ok(())
}

/// A stack running the API alone, with an idle instance of tenant A.
async fn api_and_instance() -> Result<(Stack, Uuid)> {
    let stack = Stack::start(API_ONLY).await?;
    let a = idle_instance(&stack, TENANT_A, None).await?;
    Ok((stack, a))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_404_for_unknown_or_foreign_instances_and_backups() -> Result<()> {
    let (stack, a) = api_and_instance().await?;
    let b = idle_instance(&stack, TENANT_B, None).await?;
    let a_backup = completed_pg_backup(&stack, TENANT_A, a).await?;
    let b_backup = completed_pg_backup(&stack, TENANT_B, b).await?;
    // An unknown instance has no rows to compare before and after.
    let unknown = Uuid::new_v4();
    let (status, resp) = stack.recover(unknown, json!({"backup": a_backup})).await?;
    assert_fault(status, &resp, StatusCode::NOT_FOUND, "unknown instance");
    for (instance, backup) in [
        // Another tenant's instance, through one's own tenant path.
        (b, a_backup),
        // Unknown backup.
        (a, Uuid::new_v4()),
        // Another tenant's backup.
        (a, b_backup),
    ] {
        let body = json!({"recovery": {"backup": backup}});
        stack
            .assert_recover_refused(instance, body, StatusCode::NOT_FOUND)
            .await?;
    }
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_409_when_the_backup_is_not_completed() -> Result<()> {
    let (stack, a) = api_and_instance().await?;
    for state in ["NEW", "BUILDING", "FAILED"] {
        let bk = fixture_backup(&stack, a, state, "postgresql").await?;
        // A running backup also makes the instance busy; the backup's own state is checked first.
        let body = json!({"recovery": {"backup": bk}});
        stack
            .assert_recover_refused(a, body, StatusCode::CONFLICT)
            .await?;
        delete_backup(&stack, bk).await?;
    }
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_400_for_a_backup_of_another_datastore() -> Result<()> {
    let (stack, a) = api_and_instance().await?;
    let bk = fixture_backup(&stack, a, "COMPLETED", "mysql").await?;
    let m = stack
        .assert_recover_refused(
            a,
            json!({"recovery": {"backup": bk}}),
            StatusCode::BAD_REQUEST,
        )
        .await?;
    assert!(m.contains("mysql"), "{m}");
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_422_when_the_instance_is_busy() -> Result<()> {
    let (stack, a) = api_and_instance().await?;
    let bk = completed_pg_backup(&stack, TENANT_A, a).await?;
    let body = json!({"recovery": {"backup": bk}});
    let busy = StatusCode::UNPROCESSABLE_ENTITY;

    // Another task runs.
    sqlx::query("UPDATE instances SET task_id = 3, task_description = 'Rebooting the instance.' WHERE id = $1")
        .bind(a).execute(&stack.pool).await?;
    stack.assert_recover_refused(a, body.clone(), busy).await?;
    sqlx::query("UPDATE instances SET task_id = 1 WHERE id = $1")
        .bind(a)
        .execute(&stack.pool)
        .await?;

    // A backup runs.
    let running = fixture_backup(&stack, a, "BUILDING", "postgresql").await?;
    stack.assert_recover_refused(a, body.clone(), busy).await?;
    delete_backup(&stack, running).await?;

    // A recovery runs: the first is accepted (nothing consumes it here), the second refused.
    stack.recover_accepted(a, body["recovery"].clone()).await?;
    // The accepted request's message leaves the outbox in the background; let it, so the
    // snapshot below compares settled states.
    wait_until(
        "the outbox to drain",
        std::time::Duration::from_secs(30),
        || async { Ok((stack.count("outbox").await? == 0).then_some(())) },
    )
    .await?;
    let m = stack.assert_recover_refused(a, body, busy).await?;
    assert!(m.contains("not currently available"), "{m}");
    let active = stack
        .count(&format!("recoveries WHERE instance_id = '{a}'"))
        .await?;
    assert_eq!(active, 1);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_400_for_malformed_input() -> Result<()> {
    let (stack, a) = api_and_instance().await?;
    let bk = completed_pg_backup(&stack, TENANT_A, a).await?;
    let other = Uuid::new_v4();
    let cases = [
        json!({}),
        json!({"recovery": {}}),
        json!({"recovery": "x"}),
        json!({"recovery": {"instance": a}}),
        json!({"recovery": {"backup": "not-a-uuid"}}),
        json!({"recovery": {"backup": 7}}),
        json!({"recovery": {"instance": "nope", "backup": bk}}),
        json!({"recovery": {"instance": other, "backup": bk}}),
        json!({"recovery": {"backup": bk, "surprise": 1}}),
    ];
    for body in cases {
        stack
            .assert_recover_refused(a, body, StatusCode::BAD_REQUEST)
            .await?;
    }
    let path = format!("/v1.0/{TENANT_A}/instances/{a}/recover");
    let before = stack.snapshot(a).await?;
    for raw in ["{", "[1,2]", "", "{\"recovery\": {\"backup\": }"] {
        let (status, resp) = stack
            .post_raw(&path, TOKEN_A, "application/json", raw)
            .await?;
        assert_fault(status, &resp, StatusCode::BAD_REQUEST, raw);
    }
    let (status, resp) = stack.post_raw(&path, TOKEN_A, "text/plain", "{}").await?;
    assert_fault(
        status,
        &resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "text/plain",
    );
    assert_eq!(stack.snapshot(a).await?, before);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_requires_a_valid_token_for_the_path_tenant() -> Result<()> {
    let (stack, a) = api_and_instance().await?;
    let bk = completed_pg_backup(&stack, TENANT_A, a).await?;
    let body = json!({"recovery": {"backup": bk}});
    let before = stack.snapshot(a).await?;
    let path = format!("/v1.0/{TENANT_A}/instances/{a}/recover");
    let (status, resp) = stack
        .call(Method::POST, &path, None, Some(body.clone()))
        .await?;
    assert_fault(status, &resp, StatusCode::UNAUTHORIZED, "no token");
    let (status, _) = stack
        .call(Method::POST, &path, Some("wrong"), Some(body.clone()))
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, resp) = stack
        .call(Method::POST, &path, Some(TOKEN_B), Some(body))
        .await?;
    assert_fault(status, &resp, StatusCode::FORBIDDEN, "tenant B's token");
    assert_eq!(stack.snapshot(a).await?, before);
    stack.shutdown().await;
    Ok(())
}
