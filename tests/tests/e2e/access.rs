//! Network access: `access.allowed_cidrs` and `is_public` decide which source addresses the
//! managed server admits, on create and on update, with a reload and no restart.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use trove_e2e::{
    ALL, API_ONLY, Stack, TENANT_A,
    envelope::assert_fault,
    fixtures::idle_instance,
    pg_probe::{Admission, probe},
    wait_until,
};
use uuid::Uuid;

const APP_PASSWORD: &str = "app-secret-1";

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Which of 127.0.0.1-3 the server admits, probed from each.
async fn admitted(server: SocketAddr) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for last in 1..=3 {
        match probe(loopback(last), server, "app", "appdb").await? {
            Admission::Admitted => out.push(last),
            Admission::Refused(why) => assert!(why.contains("pg_hba.conf"), "{why}"),
        }
    }
    Ok(out)
}

/// A tenant login from 127.0.0.1 (sqlx connects from the address it connects to).
async fn login(port: u16) -> Result<PgConnection> {
    let opts = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("app")
        .password(APP_PASSWORD)
        .database("appdb");
    Ok(PgConnection::connect_with(&opts).await?)
}

/// The postmaster's pid, from its data directory.
fn postmaster_pid(stack: &Stack, id: Uuid) -> Result<String> {
    let pid_file = stack.instance_dir(id).join("data").join("postmaster.pid");
    let text = std::fs::read_to_string(&pid_file)?;
    Ok(text
        .lines()
        .next()
        .context("empty postmaster.pid")?
        .to_string())
}

/// PATCHes `access`, waits until the guest applied it, and returns the instance's view.
async fn update_access(stack: &Stack, id: Uuid, access: Value) -> Result<Value> {
    let path = format!("/instances/{id}");
    let (status, v) = stack
        .call_a(
            Method::PATCH,
            &path,
            Some(json!({"instance": {"access": access}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    stack.wait_active(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allowed_cidrs_decide_who_connects_and_an_update_applies_without_a_restart() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (status, v) = stack
        .post_a(
            "/instances",
            json!({"instance": {
                "name": "pg-access", "flavorRef": "1", "volume": {"size": 1},
                "databases": [{"name": "appdb"}],
                "users": [{"name": "app", "password": APP_PASSWORD, "databases": [{"name": "appdb"}]}],
                "access": {"is_public": false, "allowed_cidrs": ["127.0.0.1", "127.0.0.2/32"]},
            }}),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = Uuid::parse_str(v["instance"]["id"].as_str().context("no id")?)?;
    let shown = stack.wait_active(id).await?;
    assert_eq!(
        shown["access"],
        json!({"is_public": false, "allowed_cidrs": ["127.0.0.1/32", "127.0.0.2/32"]})
    );
    let port = shown["addresses"][0]["port"].as_u64().context("no port")? as u16;
    let server = SocketAddr::new(loopback(1), port);
    // The server listens on every address; the rules, not the socket, refuse 127.0.0.3.
    assert_eq!(admitted(server).await?, vec![1, 2]);
    let pid = postmaster_pid(&stack, id)?;
    let mut open_session = login(port).await?;
    sqlx::query("CREATE TABLE t (id int)")
        .execute(&mut open_session)
        .await?;

    // Only 127.0.0.3 now: the others are refused, and the session from 127.0.0.1 is ended.
    let after = update_access(&stack, id, json!({"allowed_cidrs": ["127.0.0.3"]})).await?;
    assert_eq!(
        after["access"],
        json!({"is_public": false, "allowed_cidrs": ["127.0.0.3/32"]})
    );
    assert_eq!(admitted(server).await?, vec![3]);
    assert!(
        sqlx::query("SELECT 1")
            .execute(&mut open_session)
            .await
            .is_err(),
        "a session from an address no longer admitted survived"
    );
    assert!(login(port).await.is_err(), "127.0.0.1 logged in");
    assert_eq!(postmaster_pid(&stack, id)?, pid, "the server was restarted");

    // Public without a list: everyone, and the data is still there.
    update_access(&stack, id, json!({"is_public": true})).await?;
    assert_eq!(admitted(server).await?, vec![1, 2, 3]);
    let mut conn = login(port).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(n, 0);
    // Private without a list (what the openstack CLI sends by default): the private networks
    // only, loopback among them, and no rule for the public internet.
    update_access(&stack, id, json!({"is_public": false, "allowed_cidrs": []})).await?;
    assert_eq!(admitted(server).await?, vec![1, 2, 3]);
    assert_eq!(postmaster_pid(&stack, id)?, pid, "the server was restarted");
    let mut admin = stack.connect_superuser(id, "appdb").await?;
    let networks: Vec<String> = sqlx::query_scalar(
        "SELECT address || '/' || netmask FROM pg_hba_file_rules \
         WHERE error IS NULL AND type = 'host' ORDER BY line_number",
    )
    .fetch_all(&mut admin)
    .await?;
    for private in [
        "10.0.0.0/255.0.0.0",
        "127.0.0.0/255.0.0.0",
        "192.168.0.0/255.255.0.0",
    ] {
        assert!(networks.iter().any(|n| n == private), "{networks:?}");
    }
    assert!(
        !networks
            .iter()
            .any(|n| n.starts_with("0.0.0.0/") || n.starts_with("::/")),
        "{networks:?}"
    );
    admin.close().await?;
    stack.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_access_is_refused_with_400_and_changes_nothing() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let id = idle_instance(&stack, TENANT_A, None).await?;
    let path = format!("/instances/{id}");
    let many: Vec<String> = (0..101).map(|i| format!("10.0.{i}.0/24")).collect();
    for access in [
        json!("10.0.0.0/8"),
        json!({"allowed_cidrs": ["10.0.0.0/33"]}),
        json!({"allowed_cidrs": ["10.0.0.0/8\nhost all all 0.0.0.0/0 trust"]}),
        json!({"allowed_cidrs": ["10.0.0.0/8", "10.0.0.0/8"]}),
        json!({"allowed_cidrs": many}),
        json!({"allowed_cidrs": "10.0.0.0/8"}),
        json!({"is_public": "yes"}),
        json!({"is_public": true, "allowed_cidrs": null}),
        json!({"allowed_cidrs": ["10.0.0.0/"]}),
    ] {
        let before = stack.snapshot(id).await?;
        let body = json!({"instance": {"access": access}});
        let (status, resp) = stack
            .call_a(Method::PATCH, &path, Some(body.clone()))
            .await?;
        assert_fault(status, &resp, StatusCode::BAD_REQUEST, &body);
        assert_eq!(stack.snapshot(id).await?, before, "{body} changed state");
        // The same on create: nothing is written.
        let create = json!({"instance": {"name": "x", "flavorRef": "1", "access": body["instance"]["access"]}});
        let (status, resp) = stack.post_a("/instances", create).await?;
        assert_fault(status, &resp, StatusCode::BAD_REQUEST, &body);
    }
    assert_eq!(stack.count("instances").await?, 1);
    let stored: Option<Value> = sqlx::query_scalar("SELECT access FROM instances WHERE id = $1")
        .bind(id)
        .fetch_one(&stack.pool)
        .await?;
    assert_eq!(stored, None);

    // A valid one is stored normalized, without keys Trove does not know, and starts the
    // UPDATING task (Trove's code 12).
    let body = json!({"instance": {"access": {"allowed_cidrs": ["10.1.2.3/8"], "everyone": true}}});
    let (status, _) = stack.call_a(Method::PUT, &path, Some(body)).await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (access, task): (Value, i32) =
        sqlx::query_as("SELECT access, task_id FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&stack.pool)
            .await?;
    assert_eq!(
        access,
        json!({"is_public": false, "allowed_cidrs": ["10.0.0.0/8"]})
    );
    assert_eq!(task, 12);
    // While it runs, another change is refused.
    let again = json!({"instance": {"access": {"is_public": true}}});
    let (status, resp) = stack.call_a(Method::PATCH, &path, Some(again)).await?;
    assert_fault(status, &resp, StatusCode::UNPROCESSABLE_ENTITY, "busy");
    wait_until("the outbox to drain", Duration::from_secs(10), || async {
        Ok((stack.count("outbox").await? == 0).then_some(()))
    })
    .await?;
    stack.shutdown().await;
    Ok(())
}
