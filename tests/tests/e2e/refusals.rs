//! Every refusal of `recover` answers in Trove's envelope and changes nothing. These run the API
//! alone against fixture rows: the checks happen before any other daemon is involved.

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{API_ONLY, Stack, TENANT_A, TENANT_B, TOKEN_A, TOKEN_B};
use uuid::Uuid;

/// Inserts a healthy, idle instance of `tenant`, as a finished build leaves it.
async fn fixture_instance(stack: &Stack, tenant: &str) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let dsv: Uuid = sqlx::query_scalar(
        "SELECT v.id FROM datastore_versions v JOIN datastores d ON d.id = v.datastore_id WHERE d.name = 'postgresql'",
    )
    .fetch_one(&stack.pool)
    .await?;
    sqlx::query(
        "INSERT INTO instances (id, name, tenant_id, flavor_id, datastore_version_id, task_id, task_description, address, port) \
         VALUES ($1, 'fixture', $2, '1', $3, 1, 'No tasks for the instance.', '127.0.0.1', 1)",
    )
    .bind(id)
    .bind(tenant)
    .bind(dsv)
    .execute(&stack.pool)
    .await?;
    sqlx::query(
        "INSERT INTO service_statuses (id, instance_id, status_id, status_description) VALUES ($1, $2, 33, 'healthy')",
    )
    .bind(Uuid::new_v4())
    .bind(id)
    .execute(&stack.pool)
    .await?;
    Ok(id)
}

/// Inserts a backup of `instance` in `state`, of the given datastore.
async fn fixture_backup(
    stack: &Stack,
    tenant: &str,
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
    if datastore != "postgresql" {
        // Registering another datastore must not change postgresql's default.
    }
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO backups (id, name, tenant_id, state, instance_id, datastore_version_id, location, checksum, stop_time) \
         VALUES ($1, 'fixture', $2, $3, $4, $5, 'x/base.tar.zst', 'abc', now())",
    )
    .bind(id)
    .bind(tenant)
    .bind(state)
    .bind(instance)
    .bind(dsv)
    .execute(&stack.pool)
    .await?;
    Ok(id)
}

async fn completed_pg_backup(stack: &Stack, tenant: &str, instance: Uuid) -> Result<Uuid> {
    let dsv: Uuid = sqlx::query_scalar(
        "SELECT v.id FROM datastore_versions v JOIN datastores d ON d.id = v.datastore_id WHERE d.name = 'postgresql' AND v.name = '15'",
    )
    .fetch_one(&stack.pool)
    .await?;
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO backups (id, name, tenant_id, state, instance_id, datastore_version_id, location, checksum, stop_time) \
         VALUES ($1, 'fixture', $2, 'COMPLETED', $3, $4, 'x/base.tar.zst', 'abc', now())",
    )
    .bind(id)
    .bind(tenant)
    .bind(instance)
    .bind(dsv)
    .execute(&stack.pool)
    .await?;
    Ok(id)
}

/// Posts a recover and checks the status, the envelope's fault name, and that nothing changed.
async fn assert_refused(
    stack: &Stack,
    instance: Uuid,
    path_tenant: &str,
    token: &str,
    body: Value,
    want: StatusCode,
    fault: &str,
) -> Result<Value> {
    let before = stack.snapshot(instance).await?;
    let (status, resp) = stack
        .call(
            Method::POST,
            &format!("/v1.0/{path_tenant}/instances/{instance}/recover"),
            Some(token),
            Some(body),
        )
        .await?;
    assert_eq!(status, want, "{resp}");
    assert_eq!(resp[fault]["code"], want.as_u16(), "{resp}");
    assert!(
        resp[fault]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{resp}"
    );
    assert_eq!(
        stack.snapshot(instance).await?,
        before,
        "a refusal changed state"
    );
    Ok(resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_404_for_unknown_or_foreign_instances_and_backups() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = fixture_instance(&stack, TENANT_A).await?;
    let b = fixture_instance(&stack, TENANT_B).await?;
    let a_backup = completed_pg_backup(&stack, TENANT_A, a).await?;
    let b_backup = completed_pg_backup(&stack, TENANT_B, b).await?;
    // Unknown instance.
    let unknown = Uuid::new_v4();
    let (status, resp) = stack
        .call(
            Method::POST,
            &format!("/v1.0/{TENANT_A}/instances/{unknown}/recover"),
            Some(TOKEN_A),
            Some(json!({"recovery": {"backup": a_backup}})),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{resp}");
    assert_eq!(resp["itemNotFound"]["code"], 404);
    // Another tenant's instance, through one's own tenant path.
    assert_refused(
        &stack,
        b,
        TENANT_A,
        TOKEN_A,
        json!({"recovery": {"backup": a_backup}}),
        StatusCode::NOT_FOUND,
        "itemNotFound",
    )
    .await?;
    // Unknown backup.
    assert_refused(
        &stack,
        a,
        TENANT_A,
        TOKEN_A,
        json!({"recovery": {"backup": Uuid::new_v4()}}),
        StatusCode::NOT_FOUND,
        "itemNotFound",
    )
    .await?;
    // Another tenant's backup.
    assert_refused(
        &stack,
        a,
        TENANT_A,
        TOKEN_A,
        json!({"recovery": {"backup": b_backup}}),
        StatusCode::NOT_FOUND,
        "itemNotFound",
    )
    .await?;
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_409_when_the_backup_is_not_completed() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = fixture_instance(&stack, TENANT_A).await?;
    for state in ["NEW", "BUILDING", "FAILED"] {
        let bk = fixture_backup(&stack, TENANT_A, a, state, "postgresql").await?;
        let resp = assert_refused(
            &stack,
            a,
            TENANT_A,
            TOKEN_A,
            json!({"recovery": {"backup": bk}}),
            StatusCode::CONFLICT,
            "conflict",
        )
        .await;
        // A running backup also makes the instance busy; the backup's own state is checked first.
        resp?;
        sqlx::query("DELETE FROM backups WHERE id = $1")
            .bind(bk)
            .execute(&stack.pool)
            .await?;
    }
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_400_for_a_backup_of_another_datastore() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = fixture_instance(&stack, TENANT_A).await?;
    let bk = fixture_backup(&stack, TENANT_A, a, "COMPLETED", "mysql").await?;
    let resp = assert_refused(
        &stack,
        a,
        TENANT_A,
        TOKEN_A,
        json!({"recovery": {"backup": bk}}),
        StatusCode::BAD_REQUEST,
        "badRequest",
    )
    .await?;
    assert!(
        resp["badRequest"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("mysql")),
        "{resp}"
    );
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_422_when_the_instance_is_busy() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = fixture_instance(&stack, TENANT_A).await?;
    let bk = completed_pg_backup(&stack, TENANT_A, a).await?;
    let body = json!({"recovery": {"backup": bk}});

    // Another task runs.
    sqlx::query("UPDATE instances SET task_id = 3, task_description = 'Rebooting the instance.' WHERE id = $1")
        .bind(a).execute(&stack.pool).await?;
    assert_refused(
        &stack,
        a,
        TENANT_A,
        TOKEN_A,
        body.clone(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessableEntity",
    )
    .await?;
    sqlx::query("UPDATE instances SET task_id = 1 WHERE id = $1")
        .bind(a)
        .execute(&stack.pool)
        .await?;

    // A backup runs.
    let running = fixture_backup(&stack, TENANT_A, a, "BUILDING", "postgresql").await?;
    assert_refused(
        &stack,
        a,
        TENANT_A,
        TOKEN_A,
        body.clone(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessableEntity",
    )
    .await?;
    sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(running)
        .execute(&stack.pool)
        .await?;

    // A recovery runs: the first is accepted (nothing consumes it here), the second refused.
    let (status, resp) = stack
        .post_a(&format!("/instances/{a}/recover"), body.clone())
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{resp}");
    // The accepted request's message leaves the outbox in the background; let it, so the
    // snapshot below compares settled states.
    trove_e2e::wait_until(
        "the outbox to drain",
        std::time::Duration::from_secs(30),
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&stack.pool)
                .await?;
            Ok((n == 0).then_some(()))
        },
    )
    .await?;
    let resp = assert_refused(
        &stack,
        a,
        TENANT_A,
        TOKEN_A,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessableEntity",
    )
    .await?;
    assert!(
        resp["unprocessableEntity"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not currently available")),
        "{resp}"
    );
    let active: i64 = sqlx::query_scalar("SELECT count(*) FROM recoveries WHERE instance_id = $1")
        .bind(a)
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(active, 1);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_returns_400_for_malformed_input() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = fixture_instance(&stack, TENANT_A).await?;
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
        assert_refused(
            &stack,
            a,
            TENANT_A,
            TOKEN_A,
            body,
            StatusCode::BAD_REQUEST,
            "badRequest",
        )
        .await?;
    }
    let path = format!("/v1.0/{TENANT_A}/instances/{a}/recover");
    let before = stack.snapshot(a).await?;
    for raw in ["{", "[1,2]", "", "{\"recovery\": {\"backup\": }"] {
        let (status, resp) = stack
            .post_raw(&path, TOKEN_A, "application/json", raw)
            .await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}: {resp}");
        assert_eq!(resp["badRequest"]["code"], 400);
    }
    let (status, resp) = stack.post_raw(&path, TOKEN_A, "text/plain", "{}").await?;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{resp}");
    assert_eq!(resp["badMediaType"]["code"], 415);
    assert_eq!(stack.snapshot(a).await?, before);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_requires_a_valid_token_for_the_path_tenant() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = fixture_instance(&stack, TENANT_A).await?;
    let bk = completed_pg_backup(&stack, TENANT_A, a).await?;
    let body = json!({"recovery": {"backup": bk}});
    let before = stack.snapshot(a).await?;
    let path = format!("/v1.0/{TENANT_A}/instances/{a}/recover");
    let (status, resp) = stack
        .call(Method::POST, &path, None, Some(body.clone()))
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{resp}");
    assert_eq!(resp["unauthorized"]["code"], 401);
    let (status, _) = stack
        .call(Method::POST, &path, Some("wrong"), Some(body.clone()))
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, resp) = stack
        .call(Method::POST, &path, Some(TOKEN_B), Some(body))
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{resp}");
    assert_eq!(resp["forbidden"]["code"], 403);
    assert_eq!(stack.snapshot(a).await?, before);
    stack.shutdown().await;
    Ok(())
}
