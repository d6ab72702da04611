//! Point-in-time requests that must be refused before anything is touched, and the window
//! they are judged against. The API alone runs, against fixture rows of what a guest reported.

use anyhow::Result;
use chrono::{Duration, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use trove_e2e::{API_ONLY, Stack, TENANT_A};
use uuid::Uuid;

struct Fixture {
    instance: Uuid,
    backup: Uuid,
    backup_stop: chrono::DateTime<Utc>,
    latest: chrono::DateTime<Utc>,
}

/// An idle instance on timeline 2 (after one recovery), a backup on timeline 1, archived WAL up
/// to `latest`.
async fn fixture(stack: &Stack, gaps: Value) -> Result<Fixture> {
    let instance = Uuid::new_v4();
    let dsv: Uuid = sqlx::query_scalar(
        "SELECT v.id FROM datastore_versions v JOIN datastores d ON d.id = v.datastore_id WHERE d.name = 'postgresql'",
    )
    .fetch_one(&stack.pool)
    .await?;
    sqlx::query(
        "INSERT INTO instances (id, name, tenant_id, flavor_id, datastore_version_id, task_id, task_description, timeline) \
         VALUES ($1, 'pitr-fixture', $2, '1', $3, 1, 'No tasks for the instance.', 2)",
    )
    .bind(instance)
    .bind(TENANT_A)
    .bind(dsv)
    .execute(&stack.pool)
    .await?;
    sqlx::query("INSERT INTO service_statuses (id, instance_id, status_id, status_description) VALUES ($1, $2, 33, 'healthy')")
        .bind(Uuid::new_v4())
        .bind(instance)
        .execute(&stack.pool)
        .await?;
    let backup = Uuid::new_v4();
    let backup_stop = Utc::now() - Duration::minutes(10);
    sqlx::query(
        "INSERT INTO backups (id, name, tenant_id, state, instance_id, datastore_version_id, location, checksum, \
         stop_time, timeline, start_lsn, stop_lsn) \
         VALUES ($1, 'b', $2, 'COMPLETED', $3, $4, 'x/base.tar.zst', 'abc', $5, 1, '0/2000028', '0/2000100')",
    )
    .bind(backup)
    .bind(TENANT_A)
    .bind(instance)
    .bind(dsv)
    .bind(backup_stop)
    .execute(&stack.pool)
    .await?;
    let latest = Utc::now() - Duration::seconds(5);
    for (tl, parent, switch, latest_commit, gaps) in [
        (
            1,
            None,
            None,
            Some(latest - Duration::minutes(3)),
            json!([]),
        ),
        (2, Some(1), Some("0/3000000"), Some(latest), gaps),
    ] {
        sqlx::query(
            "INSERT INTO wal_timelines (instance_id, timeline, parent_timeline, switch_lsn, gaps, latest_commit) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(instance)
        .bind(tl)
        .bind(parent)
        .bind(switch)
        .bind(gaps)
        .bind(latest_commit)
        .execute(&stack.pool)
        .await?;
    }
    Ok(Fixture {
        instance,
        backup,
        backup_stop,
        latest,
    })
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn refused(
    stack: &Stack,
    f: &Fixture,
    recovery: Value,
    want: StatusCode,
    fault: &str,
) -> Result<String> {
    let before = stack.snapshot(f.instance).await?;
    let (status, resp) = stack
        .post_a(
            &format!("/instances/{}/recover", f.instance),
            json!({ "recovery": recovery }),
        )
        .await?;
    assert_eq!(status, want, "{recovery} -> {resp}");
    assert_eq!(resp[fault]["code"], want.as_u16(), "{resp}");
    assert_eq!(
        stack.snapshot(f.instance).await?,
        before,
        "a refusal changed state"
    );
    Ok(resp[fault]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_refusals_name_the_window_and_change_nothing() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let f = fixture(&stack, json!([])).await?;
    // A timestamp without a zone.
    let m = refused(
        &stack,
        &f,
        json!({"point_in_time": "2026-11-25T10:00:00"}),
        StatusCode::BAD_REQUEST,
        "badRequest",
    )
    .await?;
    assert!(m.contains("zone"), "{m}");
    // Before the earliest restorable point (the backup's stop time).
    let m = refused(
        &stack,
        &f,
        json!({"point_in_time": ts(f.backup_stop - Duration::seconds(1))}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessableEntity",
    )
    .await?;
    assert!(
        m.contains("recoverable window") && m.contains(&ts(f.backup_stop)),
        "{m}"
    );
    // After the last archived commit.
    let m = refused(
        &stack,
        &f,
        json!({"point_in_time": ts(f.latest + Duration::seconds(2))}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessableEntity",
    )
    .await?;
    assert!(m.contains(&ts(f.latest)), "{m}");
    // A timeline the instance never had.
    let m = refused(
        &stack,
        &f,
        json!({"point_in_time": ts(f.latest - Duration::seconds(30)), "timeline": 7}),
        StatusCode::BAD_REQUEST,
        "badRequest",
    )
    .await?;
    assert!(m.contains("never had timeline 7"), "{m}");
    // A backup that ends after the target.
    refused(
        &stack,
        &f,
        json!({"point_in_time": ts(f.backup_stop - Duration::seconds(1)), "backup": f.backup}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessableEntity",
    )
    .await?;
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_gap_between_the_backup_and_the_target_is_a_conflict() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let f = fixture(
        &stack,
        json!([["000000020000000000000007", "000000020000000000000009"]]),
    )
    .await?;
    let m = refused(
        &stack,
        &f,
        json!({"point_in_time": ts(f.latest - Duration::seconds(30))}),
        StatusCode::CONFLICT,
        "conflict",
    )
    .await?;
    assert!(
        m.contains("gap") && m.contains("000000020000000000000007"),
        "{m}"
    );
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_is_shown_on_the_instance_and_on_its_own_route() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let f = fixture(&stack, json!([])).await?;
    let inst = stack.instance(f.instance).await?;
    assert_eq!(
        inst["recovery_window"]["earliest"],
        ts(f.backup_stop),
        "{inst}"
    );
    assert_eq!(inst["recovery_window"]["latest"], ts(f.latest), "{inst}");
    assert_eq!(inst["recovery_window"]["timeline"], 2);
    let (status, w) = stack
        .get_a(&format!("/instances/{}/recovery-window", f.instance))
        .await?;
    assert_eq!(status, StatusCode::OK, "{w}");
    let w = &w["recovery_window"];
    assert_eq!(w["lineage"], json!([2, 1]));
    assert_eq!(w["backups"][0]["id"], json!(f.backup));
    assert_eq!(w["timelines"].as_array().map(Vec::len), Some(2));
    let (status, _) = stack
        .get_a(&format!(
            "/instances/{}/recovery-window?timeline=9",
            f.instance
        ))
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A valid target is accepted, answered with the target and the chosen backup.
    let target = ts(f.latest - Duration::seconds(30));
    let (status, r) = stack
        .post_a(
            &format!("/instances/{}/recover", f.instance),
            json!({"recovery": {"point_in_time": target}}),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["recovery"]["point_in_time"], target);
    assert_eq!(r["recovery"]["recovered_from_backup"], json!(f.backup));
    assert_eq!(r["recovery"]["timeline"], 2);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_to_a_time_refuses_bad_restore_points_and_creates_nothing() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let f = fixture(&stack, json!([])).await?;
    let cases = [
        (json!({"instanceRef": f.instance}), StatusCode::BAD_REQUEST),
        (
            json!({"instanceRef": f.instance, "point_in_time": "2026-11-25 10:00:00"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"instanceRef": f.instance, "point_in_time": ts(f.backup_stop - Duration::seconds(5))}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"instanceRef": Uuid::new_v4(), "point_in_time": ts(f.latest)}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"backupRef": f.backup, "point_in_time": ts(f.latest + Duration::seconds(5))}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"instanceRef": f.instance, "point_in_time": ts(f.latest), "timeline": 5}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (rp, want) in cases {
        let (status, resp) = stack
            .post_a(
                "/instances",
                json!({"instance": {"name": "copy", "flavorRef": "1", "restorePoint": rp}}),
            )
            .await?;
        assert_eq!(status, want, "{rp} -> {resp}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM instances")
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(n, 1, "only the fixture exists");
    stack.shutdown().await;
    Ok(())
}
