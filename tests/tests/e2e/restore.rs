//! Restoring a backup into a new instance (`restorePoint.backupRef`).

use anyhow::Result;
use trove_e2e::{ALL, Stack, ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restore_into_a_new_instance_holds_the_backup_rows_and_leaves_the_source_alone()
-> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (src, backup) = stack
        .backed_up_instance(
            "pg-source",
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);",
            "for-restore",
            "INSERT INTO t VALUES (4)",
        )
        .await?;

    let bid = uuid::Uuid::parse_str(backup["id"].as_str().expect("id"))?;
    let copy = stack.create_instance("pg-copy", Some(bid)).await?;
    let inst = stack.wait_active(copy).await?;
    assert_ne!(
        inst["addresses"][0]["port"],
        stack.instance(src).await?["addresses"][0]["port"]
    );

    let mut conn = stack.connect_instance(copy).await?;
    assert_eq!(ids(&mut conn, "t").await?, vec![1, 2, 3]);
    let mut conn = stack.connect_instance(src).await?;
    assert_eq!(ids(&mut conn, "t").await?, vec![1, 2, 3, 4]);
    stack.finish().await
}
