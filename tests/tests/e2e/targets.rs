//! Recovery in place to the targets besides a time: a WAL position (LSN) and a transaction,
//! checked by the rows inside the managed database; refusals of such targets change nothing.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};
use trove_e2e::{Stack, commit_mark_and_wait_for_the_store, ids, marked_after_a_backup};
use uuid::Uuid;

/// Sends each refused body and checks its status; the instance stays ACTIVE with the same rows.
async fn refused_change_nothing(
    stack: &Stack,
    id: Uuid,
    cases: &[(Value, StatusCode)],
) -> Result<()> {
    let mut conn = stack.connect_instance(id).await?;
    let rows = ids(&mut conn, "marks").await?;
    for (body, want) in cases {
        let (status, answer) = stack.recover(id, body.clone()).await?;
        assert_eq!(status, *want, "{body} answered {answer}");
    }
    assert_eq!(stack.instance(id).await?["status"], "ACTIVE");
    assert_eq!(ids(&mut conn, "marks").await?, rows);
    Ok(())
}

async fn wait_recovered(stack: &Stack, id: Uuid) -> Result<Value> {
    let after = stack
        .wait_status(id, "ACTIVE", "HEALTHY", Duration::from_secs(120))
        .await?;
    assert!(after.get("fault").is_none(), "{after}");
    Ok(after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_to_an_lsn_keeps_what_committed_before_it() -> Result<()> {
    let (stack, id, _, mut conn) = marked_after_a_backup("pg-lsn").await?;
    // Right after the commit of 1..10: the next record (the insert of 1000) is past it.
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut conn)
        .await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 1000).await?;

    refused_change_nothing(
        &stack,
        id,
        &[
            // Before the backup ended, and after everything shipped.
            (
                json!({"target": {"lsn": "0/1"}}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                json!({"target": {"lsn": "FF/0"}}),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (json!({"target": {"lsn": "0/zz"}}), StatusCode::BAD_REQUEST),
            (
                json!({"target": {"lsn": lsn, "xid": 900}}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"target": {"lsn": lsn}, "point_in_time": "latest"}),
                StatusCode::BAD_REQUEST,
            ),
        ],
    )
    .await?;

    let body = stack
        .recover_accepted(id, json!({"target": {"lsn": lsn}}))
        .await?;
    assert_eq!(body["recovery"]["target"], json!({"lsn": lsn}), "{body}");
    wait_recovered(&stack, id).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());
    // The history names the target.
    let (_, history) = stack.get_a(&format!("/instances/{id}/recoveries")).await?;
    let target = &history["recoveries"][0]["target"];
    assert_eq!(
        (&target["kind"], &target["lsn"]),
        (&json!("lsn"), &json!(lsn)),
        "{history}"
    );
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_to_just_before_a_transaction_brings_back_the_rows_it_deleted() -> Result<()> {
    let (stack, id, _, mut conn) = marked_after_a_backup("pg-xid").await?;
    let mut tx = sqlx::Connection::begin(&mut conn).await?;
    sqlx::query("DELETE FROM marks WHERE id > 5")
        .execute(&mut *tx)
        .await?;
    let xid: i64 = sqlx::query_scalar("SELECT txid_current()")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 1000).await?;
    let xid = u32::try_from(xid).context("a transaction id of the first epoch")?;

    refused_change_nothing(
        &stack,
        id,
        &[
            (json!({"target": {"xid": 2}}), StatusCode::BAD_REQUEST),
            (json!({"target": {"xid": "735"}}), StatusCode::BAD_REQUEST),
            (
                json!({"target": {"xid": xid, "inclusive": "no"}}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"target": {"xid": xid}, "point_in_time": "latest"}),
                StatusCode::BAD_REQUEST,
            ),
        ],
    )
    .await?;

    let body = stack
        .recover_accepted(id, json!({"target": {"xid": xid, "inclusive": false}}))
        .await?;
    assert_eq!(
        body["recovery"]["target"],
        json!({"xid": xid, "inclusive": false}),
        "{body}"
    );
    wait_recovered(&stack, id).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_an_lsn_into_a_new_instance_leaves_the_source_as_it_is() -> Result<()> {
    let (stack, src, _, mut conn) = marked_after_a_backup("pg-lsn-src").await?;
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut conn)
        .await?;
    commit_mark_and_wait_for_the_store(&stack, src, &mut conn, 1000).await?;

    let (status, body) = stack
        .post_a(
            "/instances",
            json!({"instance": {
                "name": "pg-at-lsn", "flavorRef": "1",
                "restorePoint": {"instanceRef": src.to_string(), "target": {"lsn": lsn}},
            }}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let copy = Uuid::parse_str(body["instance"]["id"].as_str().context("id")?)?;
    stack.wait_active(copy).await?;
    let mut copy_conn = stack.connect_instance(copy).await?;
    assert_eq!(
        ids(&mut copy_conn, "marks").await?,
        (1..=10).collect::<Vec<_>>()
    );
    let mut want: Vec<i32> = (1..=10).collect();
    want.push(1000);
    assert_eq!(ids(&mut conn, "marks").await?, want);
    stack.finish().await
}

/// Waits until the instance lists restore point `name` as COMPLETED; returns it.
async fn completed_restore_point(stack: &Stack, id: Uuid, name: &str) -> Result<Value> {
    trove_e2e::wait_until(
        &format!("restore point {name} to complete"),
        Duration::from_secs(30),
        || async {
            let (status, body) = stack
                .get_a(&format!("/instances/{id}/restore-points"))
                .await?;
            assert_eq!(status, StatusCode::OK, "{body}");
            let found = body["restore_points"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == name)
                .cloned();
            if let Some(p) = &found {
                assert_ne!(p["status"], "FAILED", "{p}");
            }
            Ok(found.filter(|p| p["status"] == "COMPLETED"))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_to_a_named_restore_point_brings_back_what_came_after_it() -> Result<()> {
    let (stack, id, _, mut conn) = marked_after_a_backup("pg-named").await?;
    let path = format!("/instances/{id}/restore-points");

    let (status, body) = stack
        .post_a(&path, json!({"restore_point": {"name": "before-delete"}}))
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["restore_point"]["name"], "before-delete");
    let point = completed_restore_point(&stack, id, "before-delete").await?;
    assert!(
        point["lsn"].is_string() && point["time"].is_string(),
        "{point}"
    );
    // The point is listed from the object store alone too.
    let key = format!("wal/{id}/restore-points/before-delete.json");
    let stored = stack
        .store()?
        .get(&key)
        .await?
        .context("no record in the store")?;
    let stored: Value = serde_json::from_slice(&stored)?;
    assert_eq!(
        (&stored["name"], &stored["lsn"]),
        (&point["name"], &point["lsn"])
    );
    // Refused names and a second point of the same name change nothing.
    for (body, want) in [
        (
            json!({"restore_point": {"name": "a'b"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"restore_point": {"name": ""}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"restore_point": {"name": "x", "lsn": "0/1"}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"restore_point": {"name": "before-delete"}}),
            StatusCode::CONFLICT,
        ),
    ] {
        let (status, answer) = stack.post_a(&path, body.clone()).await?;
        assert_eq!(status, want, "{body} answered {answer}");
    }
    let (_, listed) = stack.get_a(&path).await?;
    assert_eq!(listed["restore_points"].as_array().map(Vec::len), Some(1));

    sqlx::query("DELETE FROM marks WHERE id > 5")
        .execute(&mut conn)
        .await?;
    commit_mark_and_wait_for_the_store(&stack, id, &mut conn, 1000).await?;
    refused_change_nothing(
        &stack,
        id,
        &[
            (
                json!({"target": {"restore_point": "no-such-point"}}),
                StatusCode::NOT_FOUND,
            ),
            (
                json!({"target": {"restore_point": "bad name"}}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"target": {"restore_point": "before-delete", "xid": 900}}),
                StatusCode::BAD_REQUEST,
            ),
        ],
    )
    .await?;

    let body = stack
        .recover_accepted(id, json!({"target": {"restore_point": "before-delete"}}))
        .await?;
    assert_eq!(
        body["recovery"]["target"]["restore_point"], "before-delete",
        "{body}"
    );
    wait_recovered(&stack, id).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "marks").await?, (1..=10).collect::<Vec<_>>());
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_a_named_restore_point_into_a_new_instance() -> Result<()> {
    let (stack, src, _, mut conn) = marked_after_a_backup("pg-named-src").await?;
    let (status, body) = stack
        .post_a(
            &format!("/instances/{src}/restore-points"),
            json!({"restore_point": {"name": "before-delete"}}),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    completed_restore_point(&stack, src, "before-delete").await?;
    sqlx::query("DELETE FROM marks WHERE id > 5")
        .execute(&mut conn)
        .await?;
    commit_mark_and_wait_for_the_store(&stack, src, &mut conn, 1000).await?;

    let create = |name: &str, point: &str| {
        json!({"instance": {
            "name": name, "flavorRef": "1",
            "restorePoint": {"instanceRef": src.to_string(),
                             "target": {"restore_point": point}},
        }})
    };
    let (status, body) = stack
        .post_a("/instances", create("pg-nowhere", "no-such-point"))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = stack
        .post_a("/instances", create("pg-at-point", "before-delete"))
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let copy = Uuid::parse_str(body["instance"]["id"].as_str().context("id")?)?;
    stack.wait_active(copy).await?;
    let mut copy_conn = stack.connect_instance(copy).await?;
    assert_eq!(
        ids(&mut copy_conn, "marks").await?,
        (1..=10).collect::<Vec<_>>(),
        "the copy stops at the point, before the delete"
    );
    let mut want: Vec<i32> = (1..=5).collect();
    want.push(1000);
    assert_eq!(
        ids(&mut conn, "marks").await?,
        want,
        "the source is untouched"
    );
    stack.finish().await
}
