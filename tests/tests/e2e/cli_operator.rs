//! The unchanged `openstack database …` CLI as an operator runs it: listings across projects,
//! reset status and force delete, quotas and limits, checked against what the stack holds.

use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::Value;
use trove_e2e::{ALL, API_ONLY, Stack, TENANT_K, TOKEN_K, wait_until};

/// The row of `resource` in `quota show -f json`.
fn quota_row<'a>(rows: &'a Value, resource: &str) -> Option<&'a Value> {
    rows.as_array()?
        .iter()
        .find(|r| r["Resource"].as_str() == Some(resource))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_operator_lists_every_project_and_force_deletes() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("cli-operated").await?;
    let backup = stack.backup(id, "cli-operated-backup").await?;
    let backup_id = backup["id"].as_str().unwrap_or_default().to_string();
    let (admin, tenant) = (stack.cli_admin(), stack.cli_a());
    let inst = id.to_string();

    let all = admin
        .ok(&["instance", "list", "--all-projects", "-f", "json"])
        .await?;
    assert!(all.contains(&inst), "{all}");
    let all = admin
        .ok(&["backup", "list", "--all-projects", "-f", "json"])
        .await?;
    assert!(all.contains(&backup_id), "{all}");
    // Only an operator sees other projects.
    let err = tenant
        .fails(&["instance", "list", "--all-projects"])
        .await?;
    assert!(err.contains("HTTP 403"), "{err}");
    let err = tenant
        .fails(&["instance", "reset", "status", &inst])
        .await?;
    assert!(err.contains("HTTP 403"), "{err}");

    admin.ok(&["instance", "reset", "status", &inst]).await?;
    admin.ok(&["instance", "force", "delete", &inst]).await?;
    wait_until(
        "the instance to be gone",
        Duration::from_secs(90),
        || async {
            let (status, _) = stack.get_a(&format!("/instances/{id}")).await?;
            Ok((status == StatusCode::NOT_FOUND).then_some(()))
        },
    )
    .await?;
    // The server itself is gone, not only the row.
    wait_until(
        "the instance's directory to be removed",
        Duration::from_secs(60),
        || async { Ok((!stack.instance_dir(id).join("data").exists()).then_some(())) },
    )
    .await?;
    let left = tenant.json(&["instance", "list"]).await?;
    assert_eq!(left, serde_json::json!([]));
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_quotas_and_limits_bound_what_a_project_creates() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    // A project id as Keystone makes them: the CLI sends it as it is.
    let (admin, tenant) = (stack.cli_admin(), stack.cli(TENANT_K, TOKEN_K));

    let limits = tenant.ok(&["limit", "list", "-f", "json"]).await?;
    assert!(limits.contains("max_instances"), "{limits}");
    let shown = admin.json(&["quota", "show", TENANT_K]).await?;
    let row = quota_row(&shown, "instances").cloned().unwrap_or_default();
    assert_eq!(row["Limit"], 10, "{shown}");
    assert_eq!(row["In Use"], 0, "{shown}");

    admin
        .ok(&["quota", "update", TENANT_K, "instances", "1"])
        .await?;
    let err = tenant
        .fails(&["quota", "update", TENANT_K, "instances", "5"])
        .await?;
    assert!(err.contains("HTTP 403"), "{err}");
    let create = |name: &'static str| {
        let tenant = &tenant;
        async move {
            tenant
                .run(&[
                    "instance",
                    "create",
                    name,
                    "--flavor",
                    "1",
                    "--size",
                    "1",
                    "--datastore",
                    "postgresql",
                    "--datastore-version",
                    "15",
                ])
                .await
        }
    };
    let first = create("q1").await?;
    assert!(first.ok, "{}{}", first.stdout, first.stderr);
    let second = create("q2").await?;
    assert!(!second.ok, "{}", second.stdout);
    assert!(
        second.stderr.contains("Quota exceeded") && second.stderr.contains("HTTP 413"),
        "{}",
        second.stderr
    );
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM instances WHERE tenant_id = $1 AND NOT deleted")
            .bind(TENANT_K)
            .fetch_all(&stack.pool)
            .await?;
    assert_eq!(names, ["q1"]);
    let shown = admin.json(&["quota", "show", TENANT_K]).await?;
    let row = quota_row(&shown, "instances").cloned().unwrap_or_default();
    assert_eq!(
        (row["Limit"].clone(), row["In Use"].clone()),
        (1.into(), 1.into()),
        "{shown}"
    );
    stack.shutdown().await;
    Ok(())
}
