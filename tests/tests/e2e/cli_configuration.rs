//! The unchanged `openstack database …` CLI for configuration groups and resizes, with each
//! effect checked with `SHOW` inside the managed server.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use trove_e2e::{ALL, Stack, cli::Cli, wait_until};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(120);

/// Waits until the instance shows `status` through the CLI.
async fn wait_cli_status(cli: &Cli, id: &str, status: &str) -> Result<Value> {
    wait_until(&format!("{id} to be {status}"), WAIT, || async {
        let v = cli.json(&["instance", "show", id]).await?;
        Ok((v["status"] == status).then_some(v))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_configuration_groups_apply_inside_the_server() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let cli = stack.cli_a();
    let ds = ["--datastore", "postgresql"];

    let params = cli
        .ok(&[
            "configuration",
            "parameter",
            "list",
            "15",
            ds[0],
            ds[1],
            "-f",
            "json",
        ])
        .await?;
    assert!(
        params.contains("work_mem") && params.contains("max_connections"),
        "{params}"
    );
    let mc = cli
        .json(&[
            "configuration",
            "parameter",
            "show",
            "15",
            "max_connections",
            ds[0],
            ds[1],
        ])
        .await?;
    assert_eq!(mc["restart_required"], true, "{mc}");

    let err = cli
        .fails(&[
            "configuration",
            "create",
            "bad",
            r#"{"work_mem": "lots"}"#,
            ds[0],
            ds[1],
            "--datastore-version",
            "15",
        ])
        .await?;
    assert!(
        err.contains("work_mem") && err.contains("HTTP 400"),
        "{err}"
    );
    let group = cli
        .json(&[
            "configuration",
            "create",
            "cfg1",
            r#"{"work_mem": "8MB"}"#,
            ds[0],
            ds[1],
            "--datastore-version",
            "15",
        ])
        .await?;
    let gid = group["id"].as_str().context("no group id")?.to_string();
    let listed = cli.ok(&["configuration", "list", "-f", "json"]).await?;
    assert!(listed.contains(&gid), "{listed}");
    let shown = cli.json(&["configuration", "show", &gid]).await?;
    assert_eq!(shown["name"], "cfg1", "{shown}");

    let created = cli
        .json(&[
            "instance",
            "create",
            "cli-cfg",
            "--flavor",
            "1",
            "--size",
            "1",
            ds[0],
            ds[1],
            "--datastore-version",
            "15",
            "--configuration",
            &gid,
        ])
        .await?;
    let inst = created["id"]
        .as_str()
        .context("no instance id")?
        .to_string();
    let id = Uuid::parse_str(&inst)?;
    stack.wait_active(id).await?;
    assert_eq!(stack.setting(id, "work_mem").await?, "8MB");
    let members = cli
        .ok(&["configuration", "instances", &gid, "-f", "json"])
        .await?;
    assert!(members.contains(&inst), "{members}");
    let err = cli.fails(&["configuration", "delete", &gid]).await?;
    assert!(err.contains("HTTP 400"), "{err}");

    // `parameter set` merges; max_connections waits for a restart.
    cli.ok(&[
        "configuration",
        "parameter",
        "set",
        &gid,
        r#"{"max_connections": 150}"#,
    ])
    .await?;
    wait_cli_status(&cli, &inst, "RESTART_REQUIRED").await?;
    cli.ok(&["instance", "restart", &inst]).await?;
    wait_cli_status(&cli, &inst, "ACTIVE").await?;
    assert_eq!(stack.setting(id, "max_connections").await?, "150");

    // `set` replaces the values.
    cli.ok(&[
        "configuration",
        "set",
        &gid,
        r#"{"work_mem": "16MB", "max_connections": 150}"#,
    ])
    .await?;
    stack.wait_setting(id, "work_mem", "16MB").await?;
    let effective = cli
        .ok(&["configuration", "default", &inst, "-f", "json"])
        .await?;
    assert!(effective.contains("16MB"), "{effective}");

    cli.ok(&["configuration", "detach", &inst]).await?;
    wait_until("work_mem back to its default", WAIT, || async {
        Ok((stack.setting(id, "work_mem").await? != "16MB").then_some(()))
    })
    .await?;
    cli.ok(&["configuration", "attach", &inst, &gid]).await?;
    stack.wait_setting(id, "work_mem", "16MB").await?;
    cli.ok(&["configuration", "detach", &inst]).await?;
    wait_until("work_mem back to its default again", WAIT, || async {
        Ok((stack.setting(id, "work_mem").await? != "16MB").then_some(()))
    })
    .await?;
    cli.ok(&["configuration", "delete", &gid]).await?;
    let listed = cli.ok(&["configuration", "list", "-f", "json"]).await?;
    assert!(!listed.contains(&gid), "{listed}");
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_resizes_change_memory_and_the_volume() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("cli-resize").await?;
    let cli = stack.cli_a();
    let inst = id.to_string();
    // m1.tiny's memory settings, then m1.small's.
    assert_eq!(stack.setting(id, "shared_buffers").await?, "128MB");
    cli.ok(&["instance", "resize", "flavor", &inst, "2"])
        .await?;
    let v = wait_until("the new flavor", WAIT, || async {
        let v = cli.json(&["instance", "show", &inst]).await?;
        Ok((v["status"] == "ACTIVE" && v["flavor"] == "2").then_some(v))
    })
    .await?;
    assert_eq!(stack.setting(id, "shared_buffers").await?, "512MB", "{v}");

    cli.ok(&["instance", "resize", "volume", &inst, "3"])
        .await?;
    wait_until("the new volume size", WAIT, || async {
        let v = stack.instance(id).await?;
        Ok((v["status"] == "ACTIVE" && v["volume"]["size"] == 3).then_some(()))
    })
    .await?;
    let err = cli
        .fails(&["instance", "resize", "volume", &inst, "2"])
        .await?;
    assert!(err.contains("HTTP 400"), "{err}");
    // The data still answers after both.
    let mut conn = stack.connect_instance(id).await?;
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
    assert_eq!(one, 1);
    stack.finish().await
}
