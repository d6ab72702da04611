//! A password given to the driver never reaches the managed server's log, even when the
//! statement that carries it fails and PostgreSQL logs the failure.

use std::time::Duration;

use anyhow::{Context as _, Result};
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use trove_guestagent::testkit::{TestRoot, execute, query_value, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_statement_that_fails_leaves_no_trace_of_the_password_in_the_server_log()
-> Result<()> {
    let root = TestRoot::new("trove-pwlog")?;
    let cluster = root.cluster("live")?;
    cluster.init().await?;
    cluster.start().await?;
    cluster.create_database("appdb").await?;
    let created = format!("pw-created-{}", uuid::Uuid::new_v4().simple());
    cluster
        .create_user("app", &created, &["appdb".to_owned()])
        .await?;
    // The verifier works: the user logs in with the password over TCP.
    let login = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(cluster.spec().port)
        .username("app")
        .password(&created)
        .database("appdb")
        .ssl_mode(PgSslMode::Disable);
    sqlx::PgConnection::connect_with(&login)
        .await
        .context("logging in with the password")?
        .close()
        .await?;
    let stored: String = query_value(
        &cluster,
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'",
    )
    .await?;
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");

    // Every new session of the database the agent administers from is now read-only, so both
    // CREATE ROLE (a new user) and ALTER ROLE (a new password) fail.
    execute(
        &cluster,
        "ALTER DATABASE postgres SET default_transaction_read_only = on",
    )
    .await?;
    let refused_new = format!("pw-new-{}", uuid::Uuid::new_v4().simple());
    let refused_reset = format!("pw-reset-{}", uuid::Uuid::new_v4().simple());
    let err = cluster
        .create_user("late", &refused_new, &[])
        .await
        .expect_err("CREATE ROLE in a read-only transaction");
    assert!(format!("{err:#}").contains("read-only"), "{err:#}");
    let err = cluster
        .create_user("app", &refused_reset, &[])
        .await
        .expect_err("ALTER ROLE in a read-only transaction");
    assert!(format!("{err:#}").contains("read-only"), "{err:#}");
    // Even a server told to log every statement and every failing one keeps them out, because
    // the agent's session overrides it.
    // (From another database: sessions of `postgres` may not write any more.)
    let mut admin = cluster.connect_to("appdb").await?;
    for sql in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "ALTER SYSTEM SET log_min_error_statement = 'error'",
        "SELECT pg_reload_conf()",
    ] {
        sqlx::raw_sql(sql).execute(&mut admin).await?;
    }
    admin.close().await?;
    wait_for(
        "the server to log every statement",
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            let setting: String = query_value(&cluster, "SHOW log_statement").await.ok()?;
            (setting == "all").then_some(())
        },
    )
    .await?;
    let err = cluster
        .create_user("late", &refused_new, &[])
        .await
        .expect_err("CREATE ROLE in a read-only transaction");
    assert!(format!("{err:#}").contains("read-only"), "{err:#}");

    let log = std::fs::read_to_string(&cluster.spec().log_file)?;
    // The failures are in the log, so the log was written and read.
    assert!(
        log.matches("cannot execute CREATE ROLE in a read-only transaction")
            .count()
            >= 2,
        "{log}"
    );
    assert!(log.contains("cannot execute ALTER ROLE in a read-only transaction"));
    for password in [&created, &refused_new, &refused_reset] {
        assert!(
            !log.contains(password.as_str()),
            "a password is in the server log"
        );
    }
    assert!(
        !log.contains("PASSWORD"),
        "a role statement is in the server log: {log}"
    );
    assert!(
        !log.contains("SCRAM-SHA-256$"),
        "a verifier is in the server log"
    );
    // Error messages name the role, never the secret.
    assert!(!format!("{err:#}").contains(refused_new.as_str()));
    Ok(())
}
