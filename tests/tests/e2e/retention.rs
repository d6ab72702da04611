//! Retention through the API: a tenant sets, reads and clears an instance's own policy; the
//! default shown is the one the taskmanager enforces; a pass moves the recoverable window, after
//! which a recovery just after the new `earliest` is accepted and one before it refused; and a
//! point-in-time restore from a deleted instance works while its objects are kept. The API runs
//! alone; retention passes run in process on the same database and store.

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use trove_common::store::{
    layout,
    wal_keys::{ChunkId, chunk_key, seal_key},
};
use trove_e2e::{
    API_ONLY, Stack, TENANT_A, TENANT_B, TOKEN_B,
    envelope::assert_fault,
    fixtures::{backup_row, idle_instance, pg_version},
    rfc3339, time_of,
};
use trove_taskmanager::{config::RetentionConfig, retention::segment_name};
use uuid::Uuid;

async fn patch(stack: &Stack, id: Uuid, instance: Value) -> Result<(StatusCode, Value)> {
    let path = format!("/instances/{id}");
    stack
        .call_a(Method::PATCH, &path, Some(json!({ "instance": instance })))
        .await
}

async fn retention_shown(stack: &Stack, id: Uuid) -> Result<(Value, Value)> {
    let detail = stack.instance(id).await?["retention"].clone();
    let (status, w) = stack
        .get_a(&format!("/instances/{id}/recovery-window"))
        .await?;
    assert_eq!(status, StatusCode::OK, "{w}");
    Ok((detail, w["recovery_window"]["retention"].clone()))
}

/// Asserts that both the detail and the window route show `want`.
async fn assert_retention(stack: &Stack, id: Uuid, want: Value) -> Result<()> {
    let (detail, window) = retention_shown(stack, id).await?;
    assert_eq!(detail, want, "instance detail");
    assert_eq!(window, want, "recovery window");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sets_reads_and_clears_an_instances_retention() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let id = idle_instance(&stack, TENANT_A, Some(1)).await?;
    assert_retention(
        &stack,
        id,
        json!({"window_secs": 604800, "min_backups": 1, "source": "default"}),
    )
    .await?;

    // The default shown is the one the taskmanager enforces: it writes it when it starts.
    let tm = stack
        .taskmanager_handle(RetentionConfig {
            window_secs: 86400,
            min_backups: 2,
            interval_secs: 60,
        })
        .await?;
    tm.publish_retention_default().await?;
    assert_retention(
        &stack,
        id,
        json!({"window_secs": 86400, "min_backups": 2, "source": "default"}),
    )
    .await?;

    let (status, body) = patch(
        &stack,
        id,
        json!({"retention": {"window_secs": 3600, "min_backups": 3}}),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let own = json!({"window_secs": 3600, "min_backups": 3, "source": "instance"});
    assert_retention(&stack, id, own.clone()).await?;

    // Every refusal is a 400 in the envelope, names what is wrong, and changes nothing, not
    // even the name sent beside it.
    for (retention, names) in [
        (json!({"window_secs": 0}), "window_secs"),
        (json!({"window_secs": 315_360_001}), "window_secs"),
        (json!({"window_secs": "3600"}), "window_secs"),
        (json!({"window_secs": 1.5}), "window_secs"),
        (json!({"window_secs": null}), "window_secs"),
        (json!({"min_backups": 101}), "min_backups"),
        (json!({"min_backups": -1}), "min_backups"),
        (json!({"days": 7, "window_secs": 60}), "'days'"),
        (json!({}), "needs 'window_secs' or 'min_backups'"),
        (json!("7d"), "must be an object or null"),
        (json!([3600]), "must be an object or null"),
    ] {
        let before = stack.snapshot(id).await?;
        let (status, resp) = patch(
            &stack,
            id,
            json!({"name": "renamed", "retention": retention}),
        )
        .await?;
        assert_fault(status, &resp, StatusCode::BAD_REQUEST, &retention);
        let message = resp["badRequest"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{retention} -> {message}");
        assert_eq!(
            stack.snapshot(id).await?,
            before,
            "{retention} changed state"
        );
        assert_retention(&stack, id, own.clone()).await?;
    }

    // An object replaces the policy; a key left out follows the default.
    let (status, _) = patch(&stack, id, json!({"retention": {"min_backups": 0}})).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_retention(
        &stack,
        id,
        json!({"window_secs": 86400, "min_backups": 0, "source": "instance"}),
    )
    .await?;

    let (status, _) = stack
        .call_a(
            Method::PUT,
            &format!("/instances/{id}"),
            Some(json!({"instance": {"retention": null}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_retention(
        &stack,
        id,
        json!({"window_secs": 86400, "min_backups": 2, "source": "default"}),
    )
    .await?;

    // Another tenant cannot touch it.
    let (status, resp) = stack
        .call(
            Method::PATCH,
            &format!("/v1.0/{TENANT_B}/instances/{id}"),
            Some(TOKEN_B),
            Some(json!({"instance": {"retention": {"window_secs": 60}}})),
        )
        .await?;
    assert_fault(status, &resp, StatusCode::NOT_FOUND, "tenant B");
    stack.shutdown().await;
    Ok(())
}

/// Writes segment `segno` of timeline 1 of `instance` (a chunk and its seal) into the store.
async fn segment(stack: &Stack, instance: Uuid, segno: u64) -> Result<()> {
    let (wal, name) = (layout::wal_dir(instance), segment_name(1, segno));
    let store = stack.store()?;
    store
        .put(
            &chunk_key(
                &wal,
                1,
                &name,
                ChunkId {
                    seq: 0,
                    start: 0,
                    end: 4,
                },
            ),
            Bytes::from_static(b"wal!"),
        )
        .await?;
    store
        .put(&seal_key(&wal, 1, &name, &"0".repeat(64)), Bytes::new())
        .await
}

/// A completed backup of `instance` that stopped `age` ago at `start_lsn`, with its objects.
async fn backup(stack: &Stack, instance: Uuid, age: Duration, start_lsn: &str) -> Result<Uuid> {
    let dsv = pg_version(stack, None).await?;
    let stop = Utc::now() - age;
    let wal = Some((1, start_lsn, start_lsn));
    let id = backup_row(stack, TENANT_A, instance, "COMPLETED", dsv, stop, wal).await?;
    let store = stack.store()?;
    store
        .put(&layout::backup_archive(id), Bytes::from_static(b"archive"))
        .await?;
    store
        .put(&layout::backup_manifest(id), Bytes::from_static(b"{}"))
        .await?;
    Ok(id)
}

/// WAL reported on timeline 1 from segment `first` to `last`, the last commit now.
async fn reported(stack: &Stack, instance: Uuid, first: u64, last: u64) -> Result<()> {
    sqlx::query(
        "INSERT INTO wal_timelines (instance_id, timeline, first_segment, last_segment, \
         latest_commit, latest_lsn) VALUES ($1, 1, $2, $3, now(), '0/9000000')",
    )
    .bind(instance)
    .bind(segment_name(1, first))
    .bind(segment_name(1, last))
    .execute(&stack.pool)
    .await?;
    Ok(())
}

async fn window(stack: &Stack, id: Uuid) -> Result<Value> {
    let (status, w) = stack
        .get_a(&format!("/instances/{id}/recovery-window"))
        .await?;
    assert_eq!(status, StatusCode::OK, "{w}");
    Ok(w["recovery_window"].clone())
}

fn earliest(w: &Value) -> Result<DateTime<Utc>> {
    time_of(&w["earliest"]).with_context(|| format!("no earliest in {w}"))
}

async fn one_pass(stack: &Stack) -> Result<()> {
    let tm = stack.taskmanager_handle(RetentionConfig::default()).await?;
    let report = tm.retention_pass(None, &CancellationToken::new()).await?;
    assert!(report.failed.is_empty(), "{report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_moves_the_window_and_recovery_is_judged_against_the_new_earliest() -> Result<()>
{
    let stack = Stack::start(API_ONLY).await?;
    let id = idle_instance(&stack, TENANT_A, Some(1)).await?;
    let (status, _) = patch(
        &stack,
        id,
        json!({"retention": {"window_secs": 100, "min_backups": 1}}),
    )
    .await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    let oldest = backup(&stack, id, Duration::seconds(400), "0/2000028").await?;
    let anchor = backup(&stack, id, Duration::seconds(150), "0/5000028").await?;
    let fresh = backup(&stack, id, Duration::seconds(50), "0/7000028").await?;
    for segno in 1..=8 {
        segment(&stack, id, segno).await?;
    }
    reported(&stack, id, 1, 8).await?;
    let before = window(&stack, id).await?;
    assert_eq!(before["backups"][0]["id"], oldest.to_string(), "{before}");

    one_pass(&stack).await?;

    let after = window(&stack, id).await?;
    let ids: Vec<&str> = after["backups"]
        .as_array()
        .context("backups")?
        .iter()
        .filter_map(|b| b["id"].as_str())
        .collect();
    assert_eq!(ids, [anchor.to_string(), fresh.to_string()], "{after}");
    assert!(earliest(&after)? > earliest(&before)?, "{after}");
    assert_eq!(after["timelines"][0]["first_segment"], segment_name(1, 5));
    assert_eq!(
        stack.instance(id).await?["recovery_window"]["earliest"],
        after["earliest"]
    );
    let (status, b) = stack.get_a(&format!("/backups/{oldest}")).await?;
    assert_fault(status, &b, StatusCode::NOT_FOUND, "the expired backup");

    let new_earliest = earliest(&after)?;
    let too_early = rfc3339(new_earliest - Duration::seconds(1));
    stack
        .assert_recover_refused(
            id,
            json!({"recovery": {"point_in_time": too_early}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await?;
    let just_after = rfc3339(new_earliest + Duration::seconds(1));
    let accepted = stack
        .recover_accepted(id, json!({"point_in_time": just_after}))
        .await?;
    assert_eq!(
        accepted["recovery"]["recovered_from_backup"],
        anchor.to_string(),
        "{accepted}"
    );
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_instance_can_be_restored_from_until_its_retention_ends() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let source = idle_instance(&stack, TENANT_A, Some(1)).await?;
    let (status, _) = patch(&stack, source, json!({"retention": {"window_secs": 100}})).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    let b = backup(&stack, source, Duration::seconds(60), "0/2000028").await?;
    segment(&stack, source, 2).await?;
    reported(&stack, source, 2, 2).await?;
    // As the taskmanager marks it once the guest removed it.
    let deleted_ago = |secs: f64| {
        sqlx::query(
            "UPDATE instances SET deleted = true, deleted_at = now() - make_interval(secs => $2) \
             WHERE id = $1",
        )
        .bind(source)
        .bind(secs)
        .execute(&stack.pool)
    };
    deleted_ago(0.0).await?;
    let at = rfc3339(Utc::now() - Duration::seconds(30));
    let body = |name: &str| {
        json!({"instance": {
            "name": name, "flavorRef": "1", "volume": {"size": 1},
            "restorePoint": {"instanceRef": source, "point_in_time": at},
        }})
    };

    let (status, created) = stack.post_a("/instances", body("from-deleted")).await?;

    assert_eq!(status, StatusCode::OK, "{created}");
    let restored: Uuid = created["instance"]["id"]
        .as_str()
        .context("an id")?
        .parse()?;
    let target: Value = sqlx::query_scalar("SELECT restore_target FROM instances WHERE id = $1")
        .bind(restored)
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(target["wal_location"], format!("wal/{source}"));
    // Only its own tenant may.
    let (status, resp) = stack
        .call(
            Method::POST,
            &format!("/v1.0/{TENANT_B}/instances"),
            Some(TOKEN_B),
            Some(body("not-theirs")),
        )
        .await?;
    assert_fault(status, &resp, StatusCode::NOT_FOUND, "tenant B");
    // Its window since the delete has passed, but the new instance is still being built from
    // its backup: the pass leaves everything in place.
    deleted_ago(150.0).await?;
    one_pass(&stack).await?;
    assert!(
        stack
            .store()?
            .get(&layout::backup_archive(b))
            .await?
            .is_some()
    );

    // The build ended (here: failed); the next pass removes the source's objects, and a restore
    // from it is refused as before retention existed.
    sqlx::query("UPDATE instances SET task_id = 81 WHERE id = $1")
        .bind(restored)
        .execute(&stack.pool)
        .await?;
    one_pass(&stack).await?;
    assert!(
        stack
            .store()?
            .list(&layout::wal_dir(source))
            .await?
            .is_empty()
    );
    let (status, resp) = stack.post_a("/instances", body("too-late")).await?;
    assert_fault(status, &resp, StatusCode::NOT_FOUND, "after retention");
    stack.shutdown().await;
    Ok(())
}
