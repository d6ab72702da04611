//! Point-in-time requests that must be refused before anything is touched, and the window
//! they are judged against. The API alone runs, against fixture rows of what a guest reported.

use anyhow::Result;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use trove_e2e::{API_ONLY, Stack, TENANT_A, fixtures, rfc3339 as ts};
use uuid::Uuid;

struct Fixture {
    instance: Uuid,
    backup: Uuid,
    backup_stop: chrono::DateTime<Utc>,
    latest: chrono::DateTime<Utc>,
}

/// A stack running the API alone, with an idle instance on timeline 2 (after one recovery), a
/// backup on timeline 1, and archived WAL up to `latest` with `gaps` on timeline 2.
async fn fixture(gaps: Value) -> Result<(Stack, Fixture)> {
    let stack = Stack::start(API_ONLY).await?;
    let instance = fixtures::idle_instance(&stack, TENANT_A, Some(2)).await?;
    let dsv = fixtures::pg_version(&stack, None).await?;
    let backup_stop = Utc::now() - Duration::minutes(10);
    let wal = Some((1, "0/2000028", "0/2000100"));
    let backup = fixtures::backup_row(
        &stack,
        TENANT_A,
        instance,
        "COMPLETED",
        dsv,
        backup_stop,
        wal,
    )
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
    let f = Fixture {
        instance,
        backup,
        backup_stop,
        latest,
    };
    Ok((stack, f))
}

/// Asks for `recovery` of the fixture's instance; asserts it is refused with `want` and changes
/// nothing. Returns the refusal's message.
async fn refused(stack: &Stack, f: &Fixture, recovery: Value, want: StatusCode) -> Result<String> {
    let body = json!({ "recovery": recovery });
    stack.assert_recover_refused(f.instance, body, want).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_refusals_name_the_window_and_change_nothing() -> Result<()> {
    let (stack, f) = fixture(json!([])).await?;
    let (bad, late) = (StatusCode::BAD_REQUEST, StatusCode::UNPROCESSABLE_ENTITY);
    // Each refusal must name what is wrong, so that the caller can pick a better target.
    let cases: [(Value, StatusCode, &[&str]); 5] = [
        // A timestamp without a zone.
        (
            json!({"point_in_time": "2026-11-25T10:00:00"}),
            bad,
            &["zone"],
        ),
        // Before the earliest restorable point (the backup's stop time).
        (
            json!({"point_in_time": ts(f.backup_stop - Duration::seconds(1))}),
            late,
            &["recoverable window", &ts(f.backup_stop)],
        ),
        // After the last archived commit.
        (
            json!({"point_in_time": ts(f.latest + Duration::seconds(2))}),
            late,
            &[&ts(f.latest)],
        ),
        // A timeline the instance never had.
        (
            json!({"point_in_time": ts(f.latest - Duration::seconds(30)), "timeline": 7}),
            bad,
            &["never had timeline 7"],
        ),
        // A backup that ends after the target.
        (
            json!({"point_in_time": ts(f.backup_stop - Duration::seconds(1)), "backup": f.backup}),
            late,
            &[],
        ),
    ];
    for (recovery, want, mentions) in cases {
        let m = refused(&stack, &f, recovery, want).await?;
        assert!(mentions.iter().all(|s| m.contains(s)), "{m}");
    }
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_gap_between_the_backup_and_the_target_is_a_conflict() -> Result<()> {
    let (stack, f) = fixture(json!([[
        "000000020000000000000007",
        "000000020000000000000009"
    ]]))
    .await?;
    let target = json!({"point_in_time": ts(f.latest - Duration::seconds(30))});
    let m = refused(&stack, &f, target, StatusCode::CONFLICT).await?;
    assert!(
        m.contains("gap") && m.contains("000000020000000000000007"),
        "{m}"
    );
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_is_shown_on_the_instance_and_on_its_own_route() -> Result<()> {
    let (stack, f) = fixture(json!([])).await?;
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
    let r = stack
        .recover_accepted(f.instance, json!({"point_in_time": target}))
        .await?;
    assert_eq!(r["recovery"]["point_in_time"], target);
    assert_eq!(r["recovery"]["recovered_from_backup"], json!(f.backup));
    assert_eq!(r["recovery"]["timeline"], 2);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_to_a_time_refuses_bad_restore_points_and_creates_nothing() -> Result<()> {
    let (stack, f) = fixture(json!([])).await?;
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
    assert_eq!(
        stack.count("instances").await?,
        1,
        "only the fixture exists"
    );
    stack.shutdown().await;
    Ok(())
}
