//! The unchanged `openstack database …` CLI against the real stack: every command a PostgreSQL
//! user runs on a running instance, with its effect checked in the managed server.

use std::time::Duration;

use anyhow::Result;
use trove_e2e::{
    ALL, Stack,
    cli::{Cli, names},
    wait_until,
};

/// Waits until the CLI lists what the instance was created with (the guest's first report).
async fn created_accounts_listed(cli: &Cli, id: &str) -> Result<()> {
    wait_until(
        "the created database to be listed",
        Duration::from_secs(30),
        || async {
            let dbs = cli.json(&["db", "list", id]).await?;
            Ok((names(&dbs) == ["appdb"]).then_some(()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_manages_databases_and_users() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("cli-accounts").await?;
    let cli = stack.cli_a();
    let inst = id.to_string();
    let i = inst.as_str();
    created_accounts_listed(&cli, i).await?;

    cli.ok(&["db", "create", i, "sales"]).await?;
    cli.ok(&["db", "create", i, "hr"]).await?;
    assert_eq!(
        names(&cli.json(&["db", "list", i]).await?),
        ["appdb", "hr", "sales"]
    );
    let err = cli.fails(&["db", "create", i, "sales"]).await?;
    assert!(
        err.contains("already exists") && err.contains("HTTP 400"),
        "{err}"
    );

    cli.ok(&[
        "user",
        "create",
        i,
        "bob",
        "bob-secret-1",
        "--databases",
        "sales",
    ])
    .await?;
    let users = cli.json(&["user", "list", i]).await?;
    assert_eq!(names(&users), ["app", "bob"]);
    let shown = cli.json(&["user", "show", i, "bob"]).await?;
    assert_eq!(shown["name"], "bob");
    assert_eq!(shown["host"], "%");
    assert!(stack.can_use(id, "bob", "bob-secret-1", "sales").await);
    assert!(!stack.can_use(id, "bob", "bob-secret-1", "hr").await);

    cli.ok(&["user", "grant", "access", i, "bob", "hr"]).await?;
    assert_eq!(
        names(&cli.json(&["user", "show", "access", i, "bob"]).await?),
        ["hr", "sales"]
    );
    assert!(stack.can_use(id, "bob", "bob-secret-1", "hr").await);
    cli.ok(&["user", "revoke", "access", i, "bob", "sales"])
        .await?;
    assert_eq!(
        names(&cli.json(&["user", "show", "access", i, "bob"]).await?),
        ["hr"]
    );
    assert!(!stack.can_use(id, "bob", "bob-secret-1", "sales").await);

    cli.ok(&[
        "user",
        "update",
        "attributes",
        i,
        "bob",
        "--new_name",
        "robert",
        "--new_password",
        "robert-secret-1",
    ])
    .await?;
    assert!(stack.can_use(id, "robert", "robert-secret-1", "hr").await);
    assert!(!stack.can_use(id, "bob", "bob-secret-1", "hr").await);
    assert_eq!(
        names(&cli.json(&["user", "list", i]).await?),
        ["app", "robert"]
    );

    cli.ok(&["user", "delete", i, "robert"]).await?;
    assert_eq!(names(&cli.json(&["user", "list", i]).await?), ["app"]);
    assert!(!stack.can_use(id, "robert", "robert-secret-1", "hr").await);
    cli.ok(&["db", "delete", i, "hr"]).await?;
    assert_eq!(
        names(&cli.json(&["db", "list", i]).await?),
        ["appdb", "sales"]
    );
    let mut su = stack.connect_superuser(id, "postgres").await?;
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname",
    )
    .fetch_all(&mut su)
    .await?;
    assert_eq!(left, ["appdb", "postgres", "sales"]);
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_enables_shows_and_disables_root() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("cli-root").await?;
    let cli = stack.cli_a();
    let inst = id.to_string();
    let i = inst.as_str();
    let shown = cli.json(&["root", "show", i]).await?;
    assert_eq!(shown["is_root_enabled"], false, "{shown}");
    let enabled = cli.json(&["root", "enable", i]).await?;
    assert_eq!(enabled["name"], "root");
    let password = enabled["password"].as_str().unwrap_or_default().to_string();
    let mut root = stack
        .connect_instance_as(id, "root", &password, "appdb")
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles")
        .fetch_one(&mut root)
        .await?;
    assert!(n > 0);
    drop(root);
    let shown = cli.json(&["root", "show", i]).await?;
    assert_eq!(shown["is_root_enabled"], true, "{shown}");
    cli.ok(&["root", "disable", i]).await?;
    assert!(
        stack
            .connect_instance_as(id, "root", &password, "appdb")
            .await
            .is_err()
    );
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_creates_backs_up_renames_and_deletes_an_instance() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let cli = stack.cli_a();
    let created = cli
        .json(&[
            "instance",
            "create",
            "cli-life",
            "--flavor",
            "1",
            "--size",
            "1",
            "--datastore",
            "postgresql",
            "--datastore-version",
            "15",
            "--databases",
            "appdb",
            "--users",
            "app:app-secret-1",
        ])
        .await?;
    let inst = created["id"].as_str().unwrap_or_default().to_string();
    let id = uuid::Uuid::parse_str(&inst)?;
    wait_until(
        "the instance to be ACTIVE",
        Duration::from_secs(90),
        || async {
            let v = cli.json(&["instance", "show", &inst]).await?;
            Ok((v["status"] == "ACTIVE").then_some(()))
        },
    )
    .await?;
    let mut conn = stack.connect_instance(id).await?;
    sqlx::raw_sql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .execute(&mut conn)
        .await?;
    drop(conn);

    let backup = cli
        .json(&["backup", "create", "cli-backup", "-i", &inst])
        .await?;
    let bid = backup["id"].as_str().unwrap_or_default().to_string();
    wait_until(
        "the backup to complete",
        Duration::from_secs(90),
        || async {
            let v = cli.json(&["backup", "show", &bid]).await?;
            Ok((v["status"] == "COMPLETED").then_some(()))
        },
    )
    .await?;
    assert!(
        cli.ok(&["backup", "list", "-f", "json"])
            .await?
            .contains(&bid)
    );
    assert!(
        cli.ok(&["backup", "list", "instance", &inst, "-f", "json"])
            .await?
            .contains(&bid)
    );
    assert!(
        cli.ok(&["flavor", "list", "-f", "json"])
            .await?
            .contains("m1.small")
    );

    cli.ok(&["instance", "update", &inst, "--name", "cli-renamed"])
        .await?;
    let v = cli.json(&["instance", "show", &inst]).await?;
    assert_eq!(v["name"], "cli-renamed", "{v}");
    cli.ok(&["backup", "delete", &bid]).await?;
    wait_until("the backup to be gone", Duration::from_secs(60), || async {
        Ok((!cli
            .ok(&["backup", "list", "-f", "json"])
            .await?
            .contains(&bid))
        .then_some(()))
    })
    .await?;
    cli.ok(&["instance", "delete", &inst]).await?;
    wait_until(
        "the instance to be gone",
        Duration::from_secs(90),
        || async {
            Ok((cli.json(&["instance", "list"]).await? == serde_json::json!([])).then_some(()))
        },
    )
    .await?;
    stack.finish().await
}
