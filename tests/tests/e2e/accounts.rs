//! Databases, users, grants and root on a running instance, through the API, checked in the
//! managed PostgreSQL itself: who can log in, to which database, and what they can do there.

use std::time::Duration;

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{ALL, Stack, TENANT_B, TOKEN_B, envelope::assert_fault, wait_until};
use uuid::Uuid;

/// Names in a list answer (`databases` or `users`), sorted.
fn names(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn expect(
    stack: &Stack,
    method: Method,
    path: &str,
    body: Option<Value>,
    want: StatusCode,
) -> Result<Value> {
    let (status, v) = stack.call_a(method, path, body).await?;
    if want.is_success() {
        assert_eq!(status, want, "{path}: {v}");
    } else {
        assert_fault(status, &v, want, path);
    }
    Ok(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn databases_users_and_grants_are_real_on_the_server() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("accounts").await?;
    let base = format!("/instances/{id}");

    // What the instance was created with is listed once the guest reported it.
    wait_until(
        "the created database and user to be listed",
        Duration::from_secs(30),
        || async {
            let (_, dbs) = stack.get_a(&format!("{base}/databases")).await?;
            let (_, users) = stack.get_a(&format!("{base}/users")).await?;
            Ok(
                (names(&dbs, "databases") == ["appdb"] && names(&users, "users") == ["app"])
                    .then_some(()),
            )
        },
    )
    .await?;

    let dbs = json!({"databases": [{"name": "sales"}, {"name": "hr"}]});
    expect(
        &stack,
        Method::POST,
        &format!("{base}/databases"),
        Some(dbs),
        StatusCode::ACCEPTED,
    )
    .await?;
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/databases"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "databases"), ["appdb", "hr", "sales"]);
    let again = json!({"databases": [{"name": "sales"}]});
    expect(
        &stack,
        Method::POST,
        &format!("{base}/databases"),
        Some(again),
        StatusCode::BAD_REQUEST,
    )
    .await?;

    let users = json!({"users": [{"name": "bob", "password": "bob-secret-1", "databases": [{"name": "sales"}]}]});
    expect(
        &stack,
        Method::POST,
        &format!("{base}/users"),
        Some(users),
        StatusCode::ACCEPTED,
    )
    .await?;
    // The change was stored with its password sealed, never in clear.
    let stored: Vec<String> = sqlx::query_scalar("SELECT op::text FROM account_ops")
        .fetch_all(&stack.pool)
        .await?;
    assert!(stored.iter().any(|op| op.contains("create_users")));
    assert!(stored.iter().all(|op| !op.contains("bob-secret-1")));
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/users/bob"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(v["user"]["host"], "%");
    assert_eq!(names(&v["user"], "databases"), ["sales"]);
    assert!(stack.can_use(id, "bob", "bob-secret-1", "sales").await);
    // Databases, made with the instance or later, are closed to users without access.
    assert!(!stack.can_use(id, "bob", "bob-secret-1", "hr").await);
    assert!(!stack.can_use(id, "bob", "bob-secret-1", "appdb").await);

    let grant = json!({"databases": [{"name": "hr"}]});
    expect(
        &stack,
        Method::PUT,
        &format!("{base}/users/bob/databases"),
        Some(grant),
        StatusCode::ACCEPTED,
    )
    .await?;
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/users/bob@%25/databases"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "databases"), ["hr", "sales"]);
    assert!(stack.can_use(id, "bob", "bob-secret-1", "hr").await);

    expect(
        &stack,
        Method::DELETE,
        &format!("{base}/users/bob/databases/sales"),
        None,
        StatusCode::ACCEPTED,
    )
    .await?;
    assert!(!stack.can_use(id, "bob", "bob-secret-1", "sales").await);
    expect(
        &stack,
        Method::DELETE,
        &format!("{base}/users/bob/databases/sales"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await?;

    // Rename with a new password: the old login is gone, the new one works.
    let update = json!({"user": {"name": "robert", "password": "robert-secret-1"}});
    expect(
        &stack,
        Method::PUT,
        &format!("{base}/users/bob"),
        Some(update),
        StatusCode::ACCEPTED,
    )
    .await?;
    assert!(stack.can_use(id, "robert", "robert-secret-1", "hr").await);
    assert!(!stack.can_use(id, "bob", "bob-secret-1", "hr").await);
    let pw = json!({"users": [{"name": "robert", "password": "robert-secret-2"}]});
    expect(
        &stack,
        Method::PUT,
        &format!("{base}/users"),
        Some(pw),
        StatusCode::ACCEPTED,
    )
    .await?;
    assert!(!stack.can_use(id, "robert", "robert-secret-1", "hr").await);
    assert!(stack.can_use(id, "robert", "robert-secret-2", "hr").await);

    // A deleted user's tables stay, owned by the administrator.
    let mut conn = stack
        .connect_instance_as(id, "robert", "robert-secret-2", "hr")
        .await?;
    sqlx::raw_sql("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
        .execute(&mut conn)
        .await?;
    drop(conn);
    expect(
        &stack,
        Method::DELETE,
        &format!("{base}/users/robert"),
        None,
        StatusCode::ACCEPTED,
    )
    .await?;
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/users"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "users"), ["app"]);
    let mut su = stack.connect_superuser(id, "hr").await?;
    let kept: i32 = sqlx::query_scalar("SELECT id FROM kept")
        .fetch_one(&mut su)
        .await?;
    assert_eq!(kept, 7);
    drop(su);
    expect(
        &stack,
        Method::GET,
        &format!("{base}/users/robert"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await?;

    expect(
        &stack,
        Method::DELETE,
        &format!("{base}/databases/hr"),
        None,
        StatusCode::ACCEPTED,
    )
    .await?;
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/databases"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "databases"), ["appdb", "sales"]);
    expect(
        &stack,
        Method::DELETE,
        &format!("{base}/databases/hr"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await?;

    // Pages follow the names.
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/databases?limit=1"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "databases"), ["appdb"]);
    let next = v["links"][0]["href"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(next.contains("marker=appdb"), "{v}");
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/databases?limit=1&marker=appdb"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "databases"), ["sales"]);
    assert_eq!(v["links"], json!([]));
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn root_is_an_administrator_that_cannot_reach_the_host() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _, _) = stack
        .seeded_instance(
            "root",
            "CREATE TABLE secret (v text); INSERT INTO secret VALUES ('s')",
        )
        .await?;
    let base = format!("/instances/{id}");
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/root"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(v, json!({"rootEnabled": false}));
    expect(
        &stack,
        Method::DELETE,
        &format!("{base}/root"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await?;

    let (status, v) = stack
        .call_a(Method::POST, &format!("{base}/root"), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["name"], "root");
    let password = v["user"]["password"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(password.len() >= 16, "{v}");
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/root"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(v, json!({"rootEnabled": true}));
    // Root is not listed as a user.
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/users"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "users"), ["app"]);

    let mut root = stack
        .connect_instance_as(id, "root", &password, "appdb")
        .await?;
    let seen: String = sqlx::query_scalar("SELECT v FROM secret")
        .fetch_one(&mut root)
        .await?;
    assert_eq!(seen, "s");
    sqlx::raw_sql("CREATE DATABASE made_by_root")
        .execute(&mut root)
        .await?;
    let escape = sqlx::raw_sql("COPY secret TO PROGRAM 'id'")
        .execute(&mut root)
        .await;
    assert!(escape.is_err(), "root ran a program on the host");
    let read_file = sqlx::raw_sql("SELECT pg_read_file('/etc/passwd')")
        .execute(&mut root)
        .await;
    assert!(read_file.is_err(), "root read a host file");
    drop(root);

    // A password of the caller's choice, then disable: the login stops working.
    let (status, v) = stack
        .call_a(
            Method::POST,
            &format!("{base}/root"),
            Some(json!({"password": "chosen-root-pw"})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["password"], "chosen-root-pw");
    assert!(
        stack
            .connect_instance_as(id, "root", "chosen-root-pw", "appdb")
            .await
            .is_ok()
    );
    let (status, v) = stack
        .call_a(Method::DELETE, &format!("{base}/root"), None)
        .await?;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    assert!(
        stack
            .connect_instance_as(id, "root", "chosen-root-pw", "appdb")
            .await
            .is_err()
    );
    // Trove's `root show` says whether root was ever enabled.
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/root"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(v, json!({"rootEnabled": true}));
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_account_requests_are_refused_and_change_nothing() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("hostile-accounts").await?;
    let base = format!("/instances/{id}");
    wait_until(
        "the created user to be listed",
        Duration::from_secs(30),
        || async {
            let (_, users) = stack.get_a(&format!("{base}/users")).await?;
            Ok((names(&users, "users") == ["app"]).then_some(()))
        },
    )
    .await?;
    let bad = StatusCode::BAD_REQUEST;
    for body in [
        json!({"databases": [{"name": "x\"; DROP DATABASE appdb; --"}]}),
        json!({"databases": [{"name": "postgres"}]}),
        json!({"databases": []}),
        json!({"databases": "appdb"}),
        json!({"databases": [{"name": "a"}, {"name": "a"}]}),
    ] {
        expect(
            &stack,
            Method::POST,
            &format!("{base}/databases"),
            Some(body),
            bad,
        )
        .await?;
    }
    for body in [
        json!({"users": [{"name": "root", "password": "long-enough-1"}]}),
        json!({"users": [{"name": "pg_monitor", "password": "long-enough-1"}]}),
        json!({"users": [{"name": "eve", "password": "short"}]}),
        json!({"users": [{"name": "eve'", "password": "long-enough-1"}]}),
        json!({"users": [{"name": "app", "password": "long-enough-1"}]}),
    ] {
        expect(
            &stack,
            Method::POST,
            &format!("{base}/users"),
            Some(body),
            bad,
        )
        .await?;
    }
    let body = json!({"users": [{"name": "eve", "password": "long-enough-1", "databases": [{"name": "nope"}]}]});
    expect(
        &stack,
        Method::POST,
        &format!("{base}/users"),
        Some(body),
        StatusCode::NOT_FOUND,
    )
    .await?;
    let body = json!({"users": [{"name": "eve", "password": "long-enough-1", "host": "10.0.0.1"}]});
    expect(
        &stack,
        Method::POST,
        &format!("{base}/users"),
        Some(body),
        StatusCode::NOT_IMPLEMENTED,
    )
    .await?;
    expect(
        &stack,
        Method::GET,
        &format!("{base}/users/app@10.0.0.1"),
        None,
        StatusCode::NOT_IMPLEMENTED,
    )
    .await?;
    expect(
        &stack,
        Method::PUT,
        &format!("{base}/users/app"),
        Some(json!({"user": {}})),
        bad,
    )
    .await?;
    expect(
        &stack,
        Method::PUT,
        &format!("{base}/users/app"),
        Some(json!({"user": {"name": "postgres"}})),
        bad,
    )
    .await?;
    expect(
        &stack,
        Method::DELETE,
        &format!("{base}/users/nobody"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await?;
    expect(
        &stack,
        Method::GET,
        &format!("/instances/{}/users", Uuid::new_v4()),
        None,
        StatusCode::NOT_FOUND,
    )
    .await?;

    // Another tenant sees nothing and changes nothing.
    let path = format!("/v1.0/{TENANT_B}/instances/{id}/users");
    let (status, v) = stack.call(Method::GET, &path, Some(TOKEN_B), None).await?;
    assert_fault(status, &v, StatusCode::NOT_FOUND, &path);
    let path = format!("/v1.0/{TENANT_B}/instances/{id}/root");
    let (status, v) = stack.call(Method::POST, &path, Some(TOKEN_B), None).await?;
    assert_fault(status, &v, StatusCode::NOT_FOUND, &path);

    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/users"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "users"), ["app"]);
    let v = expect(
        &stack,
        Method::GET,
        &format!("{base}/databases"),
        None,
        StatusCode::OK,
    )
    .await?;
    assert_eq!(names(&v, "databases"), ["appdb"]);
    let mut su = stack.connect_superuser(id, "postgres").await?;
    let roles: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname IN ('eve', 'root')")
            .fetch_one(&mut su)
            .await?;
    assert_eq!(roles, 0);
    stack.finish().await
}
