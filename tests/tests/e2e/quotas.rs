//! Quotas and limits: `openstack database quota show|update` and `limit list`, and creates
//! refused over quota with 413 `overLimit`, nothing written, also under concurrent creates.

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{
    API_ONLY, Stack, TENANT_A, TENANT_B, TOKEN_A, TOKEN_ADMIN,
    envelope::assert_fault,
    fixtures::{backup_row, idle_instance, pg_version},
};

fn quota_path(project: &str) -> String {
    format!("/v1.0/{TENANT_A}/mgmt/quotas/{project}")
}

async fn set_quotas(stack: &Stack, quotas: Value) -> Result<Value> {
    let (status, v) = stack
        .call(
            Method::PUT,
            &quota_path(TENANT_A),
            Some(TOKEN_ADMIN),
            Some(json!({ "quotas": quotas })),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    Ok(v)
}

/// `resource` → (in_use, limit), as tenant A reads its own quotas.
async fn usage(stack: &Stack, resource: &str) -> Result<(i64, i64)> {
    let (status, v) = stack
        .call(Method::GET, &quota_path(TENANT_A), Some(TOKEN_A), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    let row = v["quotas"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["resource"] == resource))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["reserved"], 0, "{v}");
    Ok((
        row["in_use"].as_i64().unwrap_or(-99),
        row["limit"].as_i64().unwrap_or(-99),
    ))
}

fn create_body(name: &str, size: i64) -> Value {
    json!({"instance": {"name": name, "flavorRef": "1", "volume": {"size": size}}})
}

fn assert_over(status: StatusCode, v: &Value, resources: &str) {
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["overLimit"]["code"], 413, "{v}");
    assert_eq!(
        v["overLimit"]["message"],
        format!("Quota exceeded for resources: {resources}."),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_show_update_and_limits_in_troves_shapes() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    // The configured defaults, Trove's.
    assert_eq!(usage(&stack, "instances").await?, (0, 10));
    assert_eq!(usage(&stack, "backups").await?, (0, 50));
    assert_eq!(usage(&stack, "volumes").await?, (0, 40));
    let (_, limits) = stack.get_a("/limits").await?;
    assert_eq!(
        limits,
        json!({"limits": [{"verb": "ABSOLUTE", "max_instances": 10, "max_backups": 50, "max_volumes": 40, "max_ram": -1}]})
    );

    let set = set_quotas(&stack, json!({"instances": 3, "volumes": null})).await?;
    assert_eq!(set, json!({"quotas": {"instances": 3}}));
    assert_eq!(usage(&stack, "instances").await?, (0, 3));
    let (_, limits) = stack.get_a("/limits").await?;
    assert_eq!(limits["limits"][0]["max_instances"], 3);

    // Refusals, in Trove's envelope, changing nothing.
    let path = quota_path(TENANT_A);
    let cases = [
        (
            Some(TOKEN_A),
            json!({"quotas": {"instances": 100}}),
            StatusCode::FORBIDDEN,
        ),
        (
            Some(TOKEN_ADMIN),
            json!({"quotas": {"cores": 1}}),
            StatusCode::NOT_FOUND,
        ),
        (
            Some(TOKEN_ADMIN),
            json!({"quotas": {"instances": -2}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Some(TOKEN_ADMIN),
            json!({"quotas": {"instances": "5"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Some(TOKEN_ADMIN),
            json!({"quotas": {"instances": 1e12}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            Some(TOKEN_ADMIN),
            json!({"quota": {}}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (token, body, want) in cases {
        let (status, v) = stack
            .call(Method::PUT, &path, token, Some(body.clone()))
            .await?;
        assert_fault(status, &v, want, &body);
    }
    assert_eq!(usage(&stack, "instances").await?, (0, 3));
    // A member reads only its own project's quotas.
    let (status, v) = stack
        .call(
            Method::GET,
            &format!("/v1.0/{TENANT_A}/mgmt/quotas/{TENANT_B}"),
            Some(TOKEN_A),
            None,
        )
        .await?;
    assert_fault(
        status,
        &v,
        StatusCode::FORBIDDEN,
        "another project's quotas",
    );
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_over_quota_are_413_and_usage_follows_deletes() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    set_quotas(&stack, json!({"instances": 2, "volumes": 3, "backups": 1})).await?;
    let mut ids = Vec::new();
    for name in ["q1", "q2"] {
        let (status, v) = stack.post_a("/instances", create_body(name, 1)).await?;
        assert_eq!(status, StatusCode::OK, "{v}");
        ids.push(v["instance"]["id"].as_str().unwrap_or_default().to_string());
    }
    let (status, v) = stack.post_a("/instances", create_body("q3", 1)).await?;
    assert_over(status, &v, "['instances']");
    let (status, v) = stack.post_a("/instances", create_body("q3", 5)).await?;
    assert_over(status, &v, "['instances', 'volumes']");
    assert_eq!(stack.count("instances").await?, 2);

    // A delete frees the quota at once, as Trove releases it when the delete is accepted.
    let (status, _) = stack
        .call_a(Method::DELETE, &format!("/instances/{}", ids[0]), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(usage(&stack, "instances").await?, (1, 2));
    assert_eq!(usage(&stack, "volumes").await?, (1, 3));
    let (status, v) = stack.post_a("/instances", create_body("q4", 3)).await?;
    assert_over(status, &v, "['volumes']");
    let (status, v) = stack.post_a("/instances", create_body("q4", 2)).await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(usage(&stack, "volumes").await?, (3, 3));

    // Backups: the second is over the quota of one.
    set_quotas(&stack, json!({"instances": -1})).await?;
    let first = idle_instance(&stack, TENANT_A, Some(1)).await?;
    let second = idle_instance(&stack, TENANT_A, Some(1)).await?;

    // A restore from a backup is an instance create like any other.
    let dsv = pg_version(&stack, Some("15")).await?;
    let done = backup_row(
        &stack,
        TENANT_A,
        first,
        "COMPLETED",
        dsv,
        chrono::Utc::now(),
        None,
    )
    .await?;
    let (in_use, _) = usage(&stack, "instances").await?;
    set_quotas(&stack, json!({"instances": in_use, "volumes": -1})).await?;
    let mut restore = create_body("restored", 1);
    restore["instance"]["restorePoint"] = json!({"backupRef": done});
    let instances = stack.count("instances").await?;
    let (status, v) = stack.post_a("/instances", restore).await?;
    assert_over(status, &v, "['instances']");
    assert_eq!(stack.count("instances").await?, instances);
    sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(done)
        .execute(&stack.pool)
        .await?;
    set_quotas(&stack, json!({"instances": -1})).await?;
    let backup = |instance| json!({"backup": {"name": "b", "instance": instance}});
    let (status, v) = stack.post_a("/backups", backup(first)).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let backups = stack.count("backups").await?;
    let (status, v) = stack.post_a("/backups", backup(second)).await?;
    assert_over(status, &v, "['backups']");
    assert_eq!(stack.count("backups").await?, backups);
    assert_eq!(usage(&stack, "backups").await?, (1, 1));
    // A deleted backup no longer counts (its completion stands in for the guest's report).
    sqlx::query("UPDATE backups SET state = 'COMPLETED' WHERE instance_id = $1")
        .bind(first)
        .execute(&stack.pool)
        .await?;
    let (_, list) = stack.get_a("/backups").await?;
    let id = list["backups"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, v) = stack
        .call_a(Method::DELETE, &format!("/backups/{id}"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    assert_eq!(usage(&stack, "backups").await?, (0, 1));
    let (status, v) = stack.post_a("/backups", backup(second)).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    stack.shutdown().await;
    Ok(())
}

/// Concurrent creates cannot both take the last slot: the check and the insert share a
/// per-project lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_exceed_the_quota() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    set_quotas(&stack, json!({"instances": 3})).await?;
    let creates = (0..12).map(|i| stack.post_a("/instances", create_body(&format!("c{i}"), 1)));
    let answers = futures_util::future::join_all(creates).await;
    let mut accepted = 0;
    for a in answers {
        let (status, v) = a?;
        match status {
            StatusCode::OK => accepted += 1,
            _ => assert_over(status, &v, "['instances']"),
        }
    }
    assert_eq!(accepted, 3);
    assert_eq!(stack.count("instances").await?, 3);
    assert_eq!(usage(&stack, "instances").await?, (3, 3));
    stack.shutdown().await;
    Ok(())
}

/// A resize that would take the project over its volume or RAM quota is refused, and the
/// instance keeps its size, flavor and task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizes_over_quota_are_413_and_change_nothing() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let id = idle_instance(&stack, TENANT_A, None).await?;
    sqlx::query("UPDATE instances SET volume_size = 2 WHERE id = $1")
        .bind(id)
        .execute(&stack.pool)
        .await?;
    // m1.tiny has 512 MB (flavor 1), m1.small 2048 MB (flavor 2).
    set_quotas(&stack, json!({"volumes": 3, "ram": 1024})).await?;
    let action = format!("/instances/{id}/action");
    let before = stack.snapshot(id).await?;
    let (status, v) = stack
        .post_a(&action, json!({"resize": {"volume": {"size": 4}}}))
        .await?;
    assert_over(status, &v, "['volumes']");
    let (status, v) = stack
        .post_a(&action, json!({"resize": {"flavorRef": "2"}}))
        .await?;
    assert_over(status, &v, "['ram']");
    assert_eq!(
        stack.snapshot(id).await?,
        before,
        "a refused resize changed the instance"
    );
    let (size, flavor): (Option<i32>, String) =
        sqlx::query_as("SELECT volume_size, flavor_id FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&stack.pool)
            .await?;
    assert_eq!((size, flavor.as_str()), (Some(2), "1"));
    // Within the quota it is accepted.
    let (status, v) = stack
        .post_a(&action, json!({"resize": {"volume": {"size": 3}}}))
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    stack.shutdown().await;
    Ok(())
}
