//! An instance's recovery history: every recovery with its target, outcome and the phases it
//! went through with their durations, paged newest first, seen only through its own instance.

use std::time::Duration;

use anyhow::{Context as _, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{ALL, Stack, TENANT_A, TENANT_B, TOKEN_ADMIN, TOKEN_B, wait_until};
use uuid::Uuid;

/// Every phase ended, with a duration that matches its ends; they follow one another.
fn assert_phases_timed(r: &Value) -> Vec<String> {
    let phases = r["phases"].as_array().cloned().unwrap_or_default();
    assert!(phases.len() >= 3, "{r}");
    let mut last_start = String::new();
    for p in &phases {
        assert!(p["ended"].is_string(), "{r}");
        assert!(p["duration_ms"].as_i64().is_some_and(|d| d >= 0), "{r}");
        let started = p["started"].as_str().unwrap_or_default().to_string();
        // RFC 3339 with fixed micros and Z: text order is time order.
        assert!(started >= last_start, "{r}");
        last_start = started;
    }
    let names: Vec<String> = phases
        .iter()
        .map(|p| p["phase"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names[..2], ["queued", "dispatched"], "{r}");
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recoveries_are_listed_newest_first_with_timed_phases_outcome_and_error_code() -> Result<()>
{
    let stack = Stack::start(ALL).await?;
    let (id, backup) = stack
        .backed_up_instance(
            "pg-history",
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
            "base",
            "INSERT INTO t VALUES (2)",
        )
        .await?;

    // Arrange: one recovery that completes, then one from the same archive corrupted.
    let body = stack
        .recover_accepted(id, json!({"backup": backup["id"]}))
        .await?;
    let done_id = body["recovery"]["recovery_id"]
        .as_str()
        .context("recovery id")?
        .to_string();
    // While it runs, its progress carries the time-left estimate (a number once measurable).
    let running = wait_until(
        "the running recovery's progress",
        Duration::from_secs(60),
        || async {
            let (_, one) = stack
                .get_a(&format!("/instances/{id}/recoveries/{done_id}"))
                .await?;
            let shown = stack.instance(id).await?;
            let progress = &shown["recovery"]["progress"];
            // Two reads: the guest's first progress may land between them, so both must show it.
            let both = one["recovery"]["progress"].is_object() && progress.is_object();
            Ok((one["recovery"]["state"] == "RUNNING" && both).then(|| (one, progress.clone())))
        },
    )
    .await?;
    for p in [&running.0["recovery"]["progress"], &running.1] {
        let left = p.get("time_left_secs").context("time_left_secs shown")?;
        assert!(left.is_null() || left.is_u64(), "{p}");
    }
    assert_eq!(running.0["recovery"]["finished"], Value::Null);
    stack.wait_active(id).await?;
    assert_eq!(stack.recovery_state(&done_id).await?, "COMPLETED");
    let store = stack.store()?;
    let key = backup["locationRef"].as_str().context("location")?;
    let mut bytes = store.get(key).await?.context("archive")?.to_vec();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    store.put(key, bytes.into()).await?;
    let body = stack
        .recover_accepted(id, json!({"backup": backup["id"]}))
        .await?;
    let failed_id = body["recovery"]["recovery_id"]
        .as_str()
        .context("recovery id")?
        .to_string();
    wait_until("the recovery to fail", Duration::from_secs(60), || async {
        let s = stack.recovery_state(&failed_id).await?;
        Ok((s == "FAILED").then_some(()))
    })
    .await?;
    stack.wait_active(id).await?;

    // Act
    let (status, list) = stack.get_a(&format!("/instances/{id}/recoveries")).await?;

    // Assert: newest first, both complete records.
    assert_eq!(status, StatusCode::OK, "{list}");
    let rs = list["recoveries"].as_array().context("a list")?;
    assert_eq!(rs.len(), 2, "{list}");
    assert!(list.get("links").is_none(), "one page only: {list}");
    let (failed, done) = (&rs[0], &rs[1]);
    assert_eq!(failed["id"], failed_id);
    assert_eq!(done["id"], done_id);

    assert_eq!(done["state"], "COMPLETED");
    assert_eq!(done["phase"], "done");
    assert_eq!(done["instance_id"], json!(id));
    assert_eq!(done["backup_id"], backup["id"]);
    assert_eq!(done["target"]["kind"], "backup");
    assert_eq!(done["error_code"], Value::Null);
    assert!(done["outcome"]["new_timeline"].as_i64() > Some(1), "{done}");
    assert!(done["finished"].is_string() && done["duration_ms"].is_i64());
    let names = assert_phases_timed(done);
    assert!(names.len() >= 4, "the guest's phases too: {done}");
    assert_eq!(names.last().map(String::as_str), Some("health_check"));

    assert_eq!(failed["state"], "FAILED");
    assert_eq!(failed["phase"], "fetching");
    assert_eq!(failed["error_code"], "checksum_mismatch");
    // The guest's own words (host paths, tool output) are for admins.
    assert_eq!(failed["error"], Value::Null);
    assert_eq!(failed["outcome"], Value::Null);
    let names = assert_phases_timed(failed);
    assert_eq!(names.last().map(String::as_str), Some("fetching"));

    // One recovery by id; an admin reads the error text too.
    let (status, one) = stack
        .get_a(&format!("/instances/{id}/recoveries/{failed_id}"))
        .await?;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["recovery"], *failed);
    let (_, as_admin) = stack
        .call(
            Method::GET,
            &format!("/v1.0/{TENANT_A}/instances/{id}/recoveries/{failed_id}"),
            Some(TOKEN_ADMIN),
            None,
        )
        .await?;
    let error = as_admin["recovery"]["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{as_admin}");

    // Pages: newest first, `next` only while another page exists.
    let (_, page1) = stack
        .get_a(&format!("/instances/{id}/recoveries?limit=1"))
        .await?;
    assert_eq!(page1["recoveries"][0]["id"], failed_id);
    let next = page1["links"][0]["href"].as_str().context("a next link")?;
    assert!(
        next.ends_with(&format!("limit=1&marker={failed_id}")),
        "{next}"
    );
    let (_, page2) = stack
        .get_a(&format!(
            "/instances/{id}/recoveries?limit=1&marker={failed_id}"
        ))
        .await?;
    assert_eq!(page2["recoveries"][0]["id"], done_id);
    assert!(page2.get("links").is_none(), "{page2}");
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recovery_history_is_seen_only_through_its_own_instance() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, backup) = stack
        .backed_up_instance(
            "pg-history-iso",
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);",
            "base",
            "INSERT INTO t VALUES (2)",
        )
        .await?;
    let (other, _) = stack.active_instance("pg-neighbour").await?;
    let body = stack
        .recover_accepted(id, json!({"backup": backup["id"]}))
        .await?;
    let rid = body["recovery"]["recovery_id"]
        .as_str()
        .context("recovery id")?
        .to_string();
    stack.wait_active(id).await?;

    let not_found = |(status, body): (StatusCode, Value)| {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["itemNotFound"]["code"], 404, "{body}");
    };
    // Another tenant: as if the instance did not exist.
    not_found(
        stack
            .call(
                Method::GET,
                &format!("/v1.0/{TENANT_B}/instances/{id}/recoveries"),
                Some(TOKEN_B),
                None,
            )
            .await?,
    );
    not_found(
        stack
            .call(
                Method::GET,
                &format!("/v1.0/{TENANT_B}/instances/{id}/recoveries/{rid}"),
                Some(TOKEN_B),
                None,
            )
            .await?,
    );
    // The recovery under another instance, an unknown one, unknown instances.
    not_found(
        stack
            .get_a(&format!("/instances/{other}/recoveries/{rid}"))
            .await?,
    );
    let (_, empty) = stack
        .get_a(&format!("/instances/{other}/recoveries"))
        .await?;
    assert_eq!(empty, json!({"recoveries": []}));
    not_found(
        stack
            .get_a(&format!("/instances/{id}/recoveries/{}", Uuid::new_v4()))
            .await?,
    );
    not_found(
        stack
            .get_a(&format!("/instances/{id}/recoveries/nope"))
            .await?,
    );
    not_found(
        stack
            .get_a(&format!("/instances/{}/recoveries", Uuid::new_v4()))
            .await?,
    );
    // Malformed paging: 400 in Trove's envelope.
    for query in [
        "limit=0",
        "limit=x",
        "marker=nope",
        &format!("marker={}", Uuid::new_v4()),
        // A marker from another instance's history says nothing about this one's.
        &format!("marker={rid}"),
    ] {
        let path = if query.ends_with(&rid) {
            format!("/instances/{other}/recoveries?{query}")
        } else {
            format!("/instances/{id}/recoveries?{query}")
        };
        let (status, body) = stack.get_a(&path).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["badRequest"]["code"], 400, "{body}");
    }
    // A deleted instance's history is gone with it.
    let (status, _) = stack
        .call_a(Method::DELETE, &format!("/instances/{id}"), None)
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    wait_until(
        "the deleted instance's history to be gone",
        Duration::from_secs(60),
        || async {
            let (status, _) = stack.get_a(&format!("/instances/{id}/recoveries")).await?;
            Ok((status == StatusCode::NOT_FOUND).then_some(()))
        },
    )
    .await?;
    not_found(
        stack
            .get_a(&format!("/instances/{id}/recoveries/{rid}"))
            .await?,
    );
    stack.finish().await
}
