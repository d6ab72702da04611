//! `openstack database instance resize flavor|volume`: the flavor's RAM sets the server's memory
//! settings at create and on resize (checked with SHOW inside the server), a configuration
//! group's value for the same parameter wins over them, and volumes only grow.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::json;
use trove_e2e::{ALL, Stack, envelope::assert_fault, wait_until};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(120);

async fn resize(
    stack: &Stack,
    id: Uuid,
    resize: serde_json::Value,
) -> Result<(StatusCode, serde_json::Value)> {
    stack
        .post_a(
            &format!("/instances/{id}/action"),
            json!({ "resize": resize }),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizes_change_memory_settings_and_grow_the_volume() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, shown) = stack.active_instance("sized").await?;
    // m1.tiny: 512 MB of RAM.
    assert_eq!(shown["flavor"]["id"], "1");
    assert_eq!(stack.setting(id, "shared_buffers").await?, "128MB");
    assert_eq!(stack.setting(id, "effective_cache_size").await?, "384MB");
    assert_eq!(stack.setting(id, "max_connections").await?, "100");
    // The data directory's size is reported, in GB.
    let used = shown["volume"]["used"].as_f64().context("no volume.used")?;
    assert!(used > 0.0 && used < 1.0, "{shown}");
    let percent = shown["volume"]["used_percent"]
        .as_f64()
        .context("no used_percent")?;
    assert!((percent - used * 100.0).abs() < 1e-6, "{shown}");

    // A group's work_mem must survive the resize's new memory file.
    let (_, group) = stack
        .post_a(
            "/configurations",
            json!({"configuration": {"name": "wm", "values": {"work_mem": "3MB"}}}),
        )
        .await?;
    let group = group["configuration"]["id"]
        .as_str()
        .context("no id")?
        .to_string();
    let (status, body) = stack.attach_configuration(id, &group).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    stack.wait_setting(id, "work_mem", "3MB").await?;

    // `instance resize flavor sized 2`: m1.small, 2 GB.
    let (status, body) = resize(&stack, id, json!({"flavorRef": 2})).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let after = wait_until("the new flavor", WAIT, || async {
        let v = stack.instance(id).await?;
        Ok((v["status"] == "ACTIVE" && v["flavor"]["id"] == "2").then_some(v))
    })
    .await?;
    assert_eq!(after["operating_status"], "HEALTHY");
    assert_eq!(stack.setting(id, "shared_buffers").await?, "512MB");
    assert_eq!(stack.setting(id, "effective_cache_size").await?, "1536MB");
    assert_eq!(stack.setting(id, "max_connections").await?, "128");
    assert_eq!(
        stack.setting(id, "work_mem").await?,
        "3MB",
        "the group wins"
    );

    // Refusals change nothing.
    let (status, body) = resize(&stack, id, json!({"flavorRef": "2"})).await?;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "same flavor");
    let (status, body) = resize(&stack, id, json!({"flavorRef": "no-such-flavor"})).await?;
    assert_fault(status, &body, StatusCode::BAD_REQUEST, "unknown flavor");
    let (status, body) = resize(&stack, id, json!({"volume": {"size": 1}})).await?;
    assert_fault(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "a volume that does not grow",
    );
    let (status, body) = resize(&stack, id, json!({"volume": {"size": 2}, "flavorRef": 3})).await?;
    assert_fault(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "two resizes at once",
    );
    assert_eq!(stack.instance(id).await?["volume"]["size"], 1);

    // `instance resize volume sized 3`.
    let (status, body) = resize(&stack, id, json!({"volume": {"size": 3}})).await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_until("the new volume size", WAIT, || async {
        let v = stack.instance(id).await?;
        Ok((v["status"] == "ACTIVE" && v["volume"]["size"] == 3).then_some(()))
    })
    .await?;
    stack.finish().await
}
