//! Admin listings across projects: `instance list --all-projects [--project-id P]`
//! (`GET /mgmt/instances`) and `backup list --all-projects [--project-id P]`
//! (`GET /backups?all_projects=True`), with next links that keep the filters.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use trove_e2e::{
    API_ONLY, Stack, TENANT_A, TENANT_B, TOKEN_A, TOKEN_ADMIN,
    envelope::assert_fault,
    fixtures::{backup_row, idle_instance, pg_version},
};
use uuid::Uuid;

/// Follows `next` links from `path` as the admin, collecting `key`'s items; also returns every
/// next href seen.
async fn all_pages(stack: &Stack, path: &str, key: &str) -> Result<(Vec<Value>, Vec<String>)> {
    let (mut items, mut hrefs) = (Vec::new(), Vec::new());
    let mut next = Some(path.to_string());
    while let Some(p) = next.take() {
        let (status, v) = stack.call(Method::GET, &p, Some(TOKEN_ADMIN), None).await?;
        assert_eq!(status, StatusCode::OK, "{p}: {v}");
        items.extend(v[key].as_array().context("no list")?.iter().cloned());
        if let Some(href) = v["links"][0]["href"].as_str() {
            let rest = href
                .strip_prefix(&stack.api_url)
                .context("next href on another base")?;
            hrefs.push(rest.to_string());
            next = Some(rest.to_string());
        }
        assert!(hrefs.len() < 20, "next links do not end");
    }
    Ok((items, hrefs))
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_every_projects_instances_in_the_mgmt_view() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let mut a = BTreeSet::new();
    for _ in 0..3 {
        a.insert(idle_instance(&stack, TENANT_A, Some(1)).await?.to_string());
    }
    let b1 = idle_instance(&stack, TENANT_B, Some(1)).await?;
    let gone = idle_instance(&stack, TENANT_B, Some(1)).await?;
    sqlx::query("UPDATE instances SET deleted = true, deleted_at = now() WHERE id = $1")
        .bind(gone)
        .execute(&stack.pool)
        .await?;

    // What the CLI sends for --all-projects.
    let base = "/v1.0/admin/mgmt/instances?include_clustered=False&deleted=False";
    let (items, _) = all_pages(&stack, base, "instances").await?;
    assert_eq!(items.len(), 4, "{items:?}");
    let first = items
        .iter()
        .find(|i| i["id"] == b1.to_string())
        .context("tenant B's instance missing")?;
    assert_eq!(first["tenant_id"], TENANT_B);
    assert_eq!(first["deleted"], false);
    assert_eq!(first["service_status"], "HEALTHY");
    assert_eq!(first["flavor"]["id"], "1");
    assert!(first.get("server_id").is_some() && first.get("task_description").is_some());

    // --project-id, two to a page: the next link keeps the project and the deleted filter.
    let path = format!("{base}&project_id={TENANT_A}&limit=2");
    let (items, hrefs) = all_pages(&stack, &path, "instances").await?;
    assert_eq!(ids(&items), a);
    assert_eq!(hrefs.len(), 1, "{hrefs:?}");
    assert!(
        hrefs[0].contains(&format!("project_id={TENANT_A}")) && hrefs[0].contains("deleted=False"),
        "{hrefs:?}"
    );
    let (items, _) = all_pages(
        &stack,
        "/v1.0/admin/mgmt/instances?deleted=true",
        "instances",
    )
    .await?;
    assert_eq!(ids(&items), BTreeSet::from([gone.to_string()]));
    assert_eq!(items[0]["deleted"], true);
    assert!(items[0]["deleted_at"].is_string());

    // Members get Trove's 403; a bad filter is 400.
    let (status, v) = stack
        .call(
            Method::GET,
            &format!("/v1.0/{TENANT_A}/mgmt/instances"),
            Some(TOKEN_A),
            None,
        )
        .await?;
    assert_fault(status, &v, StatusCode::FORBIDDEN, "member mgmt list");
    let (status, v) = stack
        .call(
            Method::GET,
            "/v1.0/admin/mgmt/instances?deleted=maybe",
            Some(TOKEN_ADMIN),
            None,
        )
        .await?;
    assert_fault(status, &v, StatusCode::BAD_REQUEST, "deleted=maybe");
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_every_projects_backups() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let dsv = pg_version(&stack, Some("15")).await?;
    let now = chrono::Utc::now();
    let ia = idle_instance(&stack, TENANT_A, Some(1)).await?;
    let ib = idle_instance(&stack, TENANT_B, Some(1)).await?;
    let mut every = BTreeSet::new();
    for _ in 0..2 {
        every.insert(
            backup_row(&stack, TENANT_A, ia, "COMPLETED", dsv, now, None)
                .await?
                .to_string(),
        );
    }
    let b: Uuid = backup_row(&stack, TENANT_B, ib, "COMPLETED", dsv, now, None).await?;
    every.insert(b.to_string());

    // Without --limit the CLI follows next links; they keep all_projects.
    let (items, hrefs) = all_pages(
        &stack,
        "/v1.0/admin/backups?limit=1&all_projects=True",
        "backups",
    )
    .await?;
    assert_eq!(ids(&items), every);
    assert_eq!(hrefs.len(), 2, "{hrefs:?}");
    assert!(
        hrefs.iter().all(|h| h.contains("all_projects=True")),
        "{hrefs:?}"
    );
    let (items, _) = all_pages(
        &stack,
        &format!("/v1.0/admin/backups?project_id={TENANT_B}"),
        "backups",
    )
    .await?;
    assert_eq!(ids(&items), BTreeSet::from([b.to_string()]));
    assert_eq!(items[0]["project_id"], TENANT_B);
    // The admin's own project has none.
    let (items, _) = all_pages(&stack, "/v1.0/admin/backups", "backups").await?;
    assert!(items.is_empty());

    // A member may list only its own.
    for q in ["all_projects=True", "project_id=tenant-b"] {
        let (status, v) = stack
            .call(
                Method::GET,
                &format!("/v1.0/{TENANT_A}/backups?{q}"),
                Some(TOKEN_A),
                None,
            )
            .await?;
        assert_fault(status, &v, StatusCode::FORBIDDEN, q);
    }
    let (_, v) = stack.get_a("/backups").await?;
    assert_eq!(v["backups"].as_array().map(Vec::len), Some(2));
    stack.shutdown().await;
    Ok(())
}
