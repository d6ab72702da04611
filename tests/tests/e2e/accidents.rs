//! Find the accident: while a writer runs, someone deletes rows and drops a table; the listing of
//! the WAL names both with their tables (the dropped one included), filters by kind and relation,
//! and the target it offers brings back exactly what committed before the accident.

use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};
use trove_e2e::{ALL, Stack, ids, rfc3339, wait_until};
use uuid::Uuid;

fn lsn(v: &Value) -> u64 {
    let (hi, lo) = v.as_str().and_then(|s| s.split_once('/')).expect("an LSN");
    (u64::from_str_radix(hi, 16).expect("as listed") << 32)
        | u64::from_str_radix(lo, 16).expect("as listed")
}

/// The listing between `since` and now with `extra` query parameters, once it is complete and
/// `ready` holds: the store lags the server by a fraction of a second, and so does the listing.
async fn listing(
    stack: &Stack,
    id: Uuid,
    since: &str,
    extra: &str,
    ready: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let path = format!("/instances/{id}/transactions?since={since}{extra}");
    wait_until(
        &format!("a listing {path} as expected"),
        Duration::from_secs(60),
        || async {
            let (status, body) = stack.get_a(&path).await?;
            match status {
                StatusCode::OK => Ok(Some(body["listing"].clone()).filter(|l| ready(l))),
                StatusCode::ACCEPTED | StatusCode::CONFLICT => Ok(None),
                other => anyhow::bail!("{path} answered {other}: {body}"),
            }
        },
    )
    .await
}

/// The transactions of a listing whose changes include `(relation, kind)`.
fn with_change<'a>(l: &'a Value, relation: &str, kind: &str) -> Vec<&'a Value> {
    l["transactions"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| {
                    t["changes"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["relation"] == relation && c["kind"] == kind)
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_listing_names_a_delete_and_a_drop_and_its_target_undoes_them() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("pg-accident").await?;
    stack.backup(id, "base").await?;
    let mut conn = stack.connect_instance(id).await?;
    let t0: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut conn)
        .await?;
    let since = rfc3339(t0 - chrono::Duration::milliseconds(1));
    for sql in [
        "CREATE TABLE orders (id int PRIMARY KEY)",
        "INSERT INTO orders SELECT generate_series(1, 20)",
        "CREATE TABLE audit (id int PRIMARY KEY)",
        "INSERT INTO audit SELECT generate_series(1, 5)",
    ] {
        sqlx::query(sql).execute(&mut conn).await?;
    }
    // The guest knows `audit` by name once a listing shows its creation.
    let before = listing(&stack, id, &since, "&relation=audit", |l| {
        !with_change(l, "public.audit", "INSERT").is_empty()
    })
    .await?;
    assert_eq!(
        with_change(&before, "public.audit", "CREATE").len(),
        1,
        "{before}"
    );

    let writer = stack.start_writer(id).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM ticks")
            .fetch_one(&mut conn)
            .await?;
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the writer wrote no rows"
        );
        if n >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The accident, while the writer goes on.
    sqlx::query("DELETE FROM orders WHERE id <= 10")
        .execute(&mut conn)
        .await?;
    sqlx::query("DROP TABLE audit").execute(&mut conn).await?;
    let (_, ticks) = stack
        .keep_writing(id, writer, chrono::Duration::milliseconds(300))
        .await?;
    assert!(
        ticks.len() >= 5,
        "the writer committed {} rows",
        ticks.len()
    );

    let all = listing(&stack, id, &since, "", |l| {
        !with_change(l, "public.audit", "DROP").is_empty()
    })
    .await?;
    let deletes = with_change(&all, "public.orders", "DELETE");
    let drops = with_change(&all, "public.audit", "DROP");
    assert_eq!((deletes.len(), drops.len()), (1, 1), "{all}");
    let (delete, drop) = (deletes[0], drops[0]);
    assert_eq!(delete["changes"][0]["rows"], 10, "{delete}");
    assert_eq!(delete["changes"][0]["database"], "appdb", "{delete}");
    assert!(lsn(&delete["lsn"]) < lsn(&drop["lsn"]), "{all}");
    assert_eq!(
        delete["undo"],
        json!({"xid": delete["xid"], "inclusive": false})
    );
    let inserts = with_change(&all, "public.orders", "INSERT");
    assert_eq!(inserts.len(), 1, "{all}");
    assert_eq!(inserts[0]["changes"][0]["rows"], 20);

    // Filters: by kind, and by a relation's bare or qualified name.
    let only_drops = listing(&stack, id, &since, "&kind=drop", |_| true).await?;
    let listed: Vec<&Value> = only_drops["transactions"]
        .as_array()
        .expect("as listed")
        .iter()
        .collect();
    assert_eq!(listed.len(), 1, "{only_drops}");
    assert_eq!(listed[0]["xid"], drop["xid"]);
    let audit = listing(&stack, id, &since, "&relation=public.audit", |_| true).await?;
    let kinds: Vec<&Value> = audit["transactions"]
        .as_array()
        .expect("as listed")
        .iter()
        .flat_map(|t| t["changes"].as_array().expect("as listed"))
        .map(|c| &c["kind"])
        .collect();
    assert_eq!(
        kinds,
        [&json!("CREATE"), &json!("INSERT"), &json!("DROP")],
        "{audit}"
    );

    // The same through the OpenStack CLI plugin (clients/osc-plugin), by instance name.
    let cli = stack.cli_a();
    let rows = cli
        .json(&[
            "instance",
            "transactions",
            "pg-accident",
            "--since",
            &since,
            "--relation",
            "audit",
            "--kind",
            "drop",
        ])
        .await?;
    let rows = rows.as_array().expect("a JSON list");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["Relation"], "public.audit");
    assert_eq!(rows[0]["XID"], drop["xid"]);
    assert_eq!(
        rows[0]["Undo"],
        format!("--xid {} --exclusive", drop["xid"])
    );
    let refused = cli
        .fails(&[
            "instance",
            "transactions",
            "pg-accident",
            "--since",
            "yesterday",
        ])
        .await?;
    assert!(refused.contains("RFC 3339"), "{refused}");

    // Refusals.
    for (path, want) in [
        (
            format!("/instances/{id}/transactions"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/instances/{id}/transactions?since=2026-11-29T10:00:00"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/instances/{id}/transactions?since={since}&kind=MERGE"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/instances/{}/transactions?since={since}", Uuid::new_v4()),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (status, body) = stack.get_a(&path).await?;
        assert_eq!(status, want, "{path}: {body}");
    }

    // The writer's rows are a prefix in commit order; those that committed before the delete
    // are the ones the undo keeps.
    let delete_lsn = lsn(&delete["lsn"]);
    let kept_ticks = with_change(&all, "public.ticks", "INSERT")
        .iter()
        .filter(|t| lsn(&t["lsn"]) < delete_lsn)
        .count();
    let kept_ticks = i32::try_from(kept_ticks)?;
    assert!(
        (kept_ticks as usize) < ticks.len(),
        "the writer committed after the accident too"
    );

    let body = stack
        .recover_accepted(id, json!({"target": delete["undo"]}))
        .await?;
    assert_eq!(body["recovery"]["target"], delete["undo"], "{body}");
    let after = stack
        .wait_status(id, "ACTIVE", "HEALTHY", Duration::from_secs(120))
        .await?;
    assert!(after.get("fault").is_none(), "{after}");
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(
        ids(&mut conn, "orders").await?,
        (1..=20).collect::<Vec<_>>()
    );
    assert_eq!(ids(&mut conn, "audit").await?, (1..=5).collect::<Vec<_>>());
    assert_eq!(
        ids(&mut conn, "ticks").await?,
        (1..=kept_ticks).collect::<Vec<_>>(),
        "exactly the writer's rows that committed before the delete"
    );
    stack.finish().await
}
