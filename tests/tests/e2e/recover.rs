//! Recovering a running instance in place from a backup.

use std::time::Duration;

use anyhow::{Context as _, Result};
use reqwest::Method;
use serde_json::{Value, json};
use trove_e2e::{ALL, Stack, TENANT_A, TOKEN_ADMIN, ids, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_brings_back_exactly_the_backup_rows() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    // Arrange: an instance with a table and three rows, backed up.
    let (id, inst, mut conn) = stack
        .seeded_instance(
            "pg-recover",
            "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'); \
             CREATE TABLE keep (x int); INSERT INTO keep VALUES (42);",
        )
        .await?;
    assert_eq!(inst["addresses"][0]["type"], "private");
    let backup = stack.backup(id, "before-damage").await?;
    assert!(backup["stop_time"].is_string(), "{backup}");
    // Damage: insert, update, delete and drop.
    sqlx::raw_sql(
        "INSERT INTO t VALUES (4, 'd'), (5, 'e'); UPDATE t SET v = 'changed' WHERE id = 1; \
         DELETE FROM t WHERE id = 2; DROP TABLE keep;",
    )
    .execute(&mut conn)
    .await?;
    drop(conn);

    // Act
    let body = stack
        .recover_accepted(id, json!({"instance": id, "backup": backup["id"]}))
        .await?;

    // Assert: the contract of the 202.
    let r = &body["recovery"];
    assert_eq!(r["id"], json!(id));
    assert_eq!(r["name"], "pg-recover");
    assert_eq!(r["status"], "BUILDING");
    assert_eq!(r["datastore"], "postgresql");
    assert_eq!(r["recovered_from_backup"], backup["id"]);
    assert_eq!(r["point_in_time"], backup["stop_time"]);
    assert!(
        r["recovery_id"]
            .as_str()
            .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())
    );
    // The instance shows RECOVER while the work runs (set in the same transaction as the 202).
    let during = stack.instance(id).await?;
    assert_eq!(during["status"], "RECOVER", "{during}");
    assert_eq!(during["recovery"]["id"], r["recovery_id"]);

    let after = stack.wait_active(id).await?;
    assert!(after.get("fault").is_none(), "{after}");
    assert!(after.get("recovery").is_none(), "{after}");
    let mut conn = stack.connect_instance(id).await?;
    let rows: Vec<(i32, String)> = sqlx::query_as("SELECT id, v FROM t ORDER BY id")
        .fetch_all(&mut conn)
        .await?;
    assert_eq!(
        rows,
        vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
    );
    let keep: i32 = sqlx::query_scalar("SELECT x FROM keep")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(keep, 42);
    let rid = r["recovery_id"].as_str().unwrap_or_default();
    assert_eq!(stack.recovery_state(rid).await?, "COMPLETED");
    // The recovered instance takes writes.
    sqlx::query("INSERT INTO t VALUES (10, 'new')")
        .execute(&mut conn)
        .await?;
    assert_eq!(ids(&mut conn, "t").await?, vec![1, 2, 3, 10]);
    // The backup still opens the recoverable window on the new timeline (its state is where
    // that timeline forked), once a commit on it is archived.
    let window = wait_until(
        "the window on the new timeline",
        Duration::from_secs(60),
        || async {
            let w = stack.instance(id).await?["recovery_window"].clone();
            Ok((w["timeline"].as_i64() > Some(1) && w["earliest"].is_string()).then_some(w))
        },
    )
    .await?;
    let stop = backup["stop_time"].as_str().unwrap_or_default();
    assert!(
        window["earliest"]
            .as_str()
            .is_some_and(|e| e.starts_with(stop)),
        "{window} vs {stop}"
    );
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_from_a_corrupted_backup_fails_and_keeps_serving_current_data() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, backup) = stack
        .backed_up_instance(
            "pg-corrupt",
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
            "to-be-corrupted",
            "INSERT INTO t VALUES (3)",
        )
        .await?;
    // Corrupt the archive in the store: flip bytes in the middle.
    let store = stack.store()?;
    let key = backup["locationRef"].as_str().expect("location");
    let mut bytes = store
        .get(key)
        .await?
        .context("the archive is in the store")?
        .to_vec();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    store.put(key, bytes.into()).await?;

    let body = stack
        .recover_accepted(id, json!({"backup": backup["id"]}))
        .await?;
    let rid = body["recovery"]["recovery_id"]
        .as_str()
        .expect("recovery id")
        .to_string();

    let state = wait_until("the recovery to fail", Duration::from_secs(60), || async {
        let s = stack.recovery_state(&rid).await?;
        Ok((s == "FAILED" || s == "COMPLETED").then_some(s))
    })
    .await?;
    assert_eq!(state, "FAILED");
    // A member reads what failed, in which phase, and a stable code; nothing from the host.
    let inst = stack.wait_active(id).await?;
    let fault = &inst["fault"];
    let message = fault["message"].as_str().unwrap_or_default();
    assert!(message.contains(&rid), "{inst}");
    assert!(
        message.contains("during fetching (checksum_mismatch)"),
        "{inst}"
    );
    assert_eq!(fault["error_code"], "checksum_mismatch", "{inst}");
    assert_eq!(fault["details"], Value::Null, "{inst}");
    let root = stack.root().to_string_lossy().into_owned();
    for leak in ["/", root.as_str(), "zstd", "sha256"] {
        assert!(!fault.to_string().contains(leak), "{leak} in {fault}");
    }
    // An admin reads the guest's own words too, store keys and all; so does the detail list.
    let path = format!("/v1.0/{TENANT_A}/instances/{id}");
    let (_, shown) = stack
        .call(Method::GET, &path, Some(TOKEN_ADMIN), None)
        .await?;
    let details = shown["instance"]["fault"]["details"]
        .as_str()
        .unwrap_or_default();
    assert!(details.starts_with("checksum_mismatch: "), "{shown}");
    assert!(details.contains(key), "{shown}");
    let listed = format!("/v1.0/{TENANT_A}/instances/detail");
    let (_, as_admin) = stack
        .call(Method::GET, &listed, Some(TOKEN_ADMIN), None)
        .await?;
    assert_eq!(
        as_admin["instances"][0]["fault"]["details"], details,
        "{as_admin}"
    );
    let (_, as_member) = stack.get_a("/instances/detail").await?;
    assert_eq!(as_member["instances"][0]["fault"]["details"], Value::Null);
    // The instance still serves the data it had, including what was written after the backup.
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "t").await?, vec![1, 2, 3]);
    stack.finish().await
}
