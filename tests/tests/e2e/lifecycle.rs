//! The rest of an instance's life: restart, rename, a build nobody finishes, and a control
//! database that was never migrated.

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::json;
use trove_e2e::{ALL, Daemons, Stack, ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_and_rename_keep_the_data() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _, conn) = stack
        .seeded_instance(
            "pg-life",
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1);",
        )
        .await?;
    drop(conn);

    let (status, body) = stack
        .post_a(&format!("/instances/{id}/action"), json!({"restart": {}}))
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(stack.instance(id).await?["status"], "REBOOT");
    stack.wait_active(id).await?;
    let mut conn = stack.connect_instance(id).await?;
    assert_eq!(ids(&mut conn, "t").await?, vec![1]);

    let rename = json!({"instance": {"name": "pg-renamed"}});
    let (status, _) = stack
        .call_a(Method::PUT, &format!("/instances/{id}"), Some(rename))
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(stack.instance(id).await?["name"], "pg-renamed");
    let (status, resp) = stack
        .post_a(
            &format!("/instances/{id}/action"),
            json!({"promote_to_replica_source": {}}),
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{resp}");
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_build_no_guest_answers_turns_into_an_error_with_a_fault() -> Result<()> {
    let mut stack = Stack::start(Daemons {
        task_timeout_secs: 3,
        ..ALL
    })
    .await?;
    // The host stays registered, but its agent is gone: the prepare is never answered.
    stack.stop("guest").await?;
    let id = stack.create_instance("pg-silent", None).await?;
    let inst = stack
        .wait_status(id, "ERROR", "", Duration::from_secs(30))
        .await?;
    assert!(
        inst["fault"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not become active")),
        "{inst}"
    );
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_refuse_an_unmigrated_control_database() -> Result<()> {
    let stack = Stack::start(trove_e2e::API_ONLY).await?;
    let db = format!("trove_empty_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&stack.pool)
        .await?;
    let cfg = trove_taskmanager::config::TaskManagerConfig {
        database: trove_common::config::DatabaseConfig {
            url: format!("postgres://postgres@127.0.0.1:5432/{db}"),
            ..Default::default()
        },
        amqp: stack.amqp.clone(),
        secret_key_file: stack.taskmanager_key_file(),
        ..Default::default()
    };
    let err = trove_taskmanager::run(cfg, tokio_util::sync::CancellationToken::new())
        .await
        .expect_err("an empty database must be refused");
    assert!(format!("{err:#}").contains("db-sync"), "{err:#}");
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&stack.pool)
        .await?;
    stack.shutdown().await;
    Ok(())
}
