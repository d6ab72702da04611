//! Hostile and careless input: every refusal is a 4xx in Trove's envelope that names the field
//! and writes nothing (no row, no outbox message). These run the API alone against fixture rows:
//! every check happens before any other daemon is involved.

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{
    API_ONLY, Stack, TENANT_A,
    envelope::{assert_fault, fault_name},
    fixtures::idle_instance,
};

/// What a refusal must leave untouched: the rows a request could add or change, and the outbox.
async fn control_plane(stack: &Stack) -> Result<Value> {
    let row: (i64, i64, i64, i64, Option<String>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM instances), (SELECT count(*) FROM backups), \
         (SELECT count(*) FROM recoveries), (SELECT count(*) FROM outbox), \
         (SELECT string_agg(name || '@' || updated::text, ',' ORDER BY id) FROM instances)",
    )
    .fetch_one(&stack.pool)
    .await?;
    Ok(json!([row.0, row.1, row.2, row.3, row.4]))
}

/// Sends `body` to tenant A's `path` and asserts `want` in the envelope, a message that names
/// `field`, and an untouched control plane.
async fn assert_refused(
    stack: &Stack,
    method: Method,
    path: &str,
    body: Value,
    want: StatusCode,
    field: &str,
) -> Result<()> {
    let before = control_plane(stack).await?;
    let (status, resp) = stack.call_a(method.clone(), path, Some(body)).await?;
    assert_fault(status, &resp, want, format!("{method} {path} ({field})"));
    let message = resp[fault_name(want)]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(field),
        "message does not name {field}: {resp}"
    );
    assert_eq!(
        control_plane(stack).await?,
        before,
        "a refusal changed state"
    );
    Ok(())
}

/// A create body with `extra` merged into `instance`.
fn create_with(extra: Value) -> Value {
    let mut inst = json!({"name": "pg1", "flavorRef": "1"});
    if let (Some(o), Some(e)) = (inst.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    json!({ "instance": inst })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_name_or_description_is_a_400_not_a_500() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = idle_instance(&stack, TENANT_A, None).await?;
    let bad = StatusCode::BAD_REQUEST;
    assert_refused(
        &stack,
        Method::POST,
        "/instances",
        create_with(json!({"name": "a\u{0}b"})),
        bad,
        "name",
    )
    .await?;
    assert_refused(
        &stack,
        Method::POST,
        "/backups",
        json!({"backup": {"name": "b", "instance": a, "description": "x\u{0}y"}}),
        bad,
        "description",
    )
    .await?;
    for method in [Method::PUT, Method::PATCH] {
        assert_refused(
            &stack,
            method,
            &format!("/instances/{a}"),
            json!({"instance": {"name": "a\u{0}b"}}),
            bad,
            "name",
        )
        .await?;
    }
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_lists_and_strings_are_refused() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = idle_instance(&stack, TENANT_A, None).await?;
    let bad = StatusCode::BAD_REQUEST;
    let many_dbs: Vec<Value> = (0..30_000)
        .map(|i| json!({"name": format!("d{i}")}))
        .collect();
    // 30 000 databases fit in 64 KiB only as a 413; a list just past the cap is a 400.
    let (status, resp) = stack
        .post_a("/instances", create_with(json!({"databases": many_dbs})))
        .await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert_eq!(resp["overLimit"]["code"], 413, "{resp}");
    let dbs: Vec<Value> = (0..101).map(|i| json!({"name": format!("d{i}")})).collect();
    assert_refused(
        &stack,
        Method::POST,
        "/instances",
        create_with(json!({ "databases": dbs })),
        bad,
        "databases",
    )
    .await?;
    let description = "x".repeat(1_500_000);
    let (status, resp) = stack
        .post_a(
            "/backups",
            json!({"backup": {"name": "b", "instance": a, "description": description}}),
        )
        .await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert_refused(
        &stack,
        Method::POST,
        "/backups",
        json!({"backup": {"name": "b", "instance": a, "description": "x".repeat(513)}}),
        bad,
        "description",
    )
    .await?;
    assert_eq!(control_plane(&stack).await?[1], 0, "no backup was written");
    stack.shutdown().await;
    Ok(())
}
