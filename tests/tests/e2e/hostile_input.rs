//! Hostile and careless input: every refusal is a 4xx in Trove's envelope that names the field
//! and writes nothing (no row, no outbox message). These run the API alone against fixture rows:
//! every check happens before any other daemon is involved.

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{
    API_ONLY, Stack, TENANT_A, TOKEN_A, TOKEN_ADMIN,
    envelope::{assert_fault, fault_name},
    fixtures::idle_instance,
};
use uuid::Uuid;

/// What a refusal must leave untouched: the rows a request could add or change, and the outbox.
async fn control_plane(stack: &Stack) -> Result<Value> {
    let row: (i64, i64, i64, i64, Option<String>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM instances), (SELECT count(*) FROM backups), \
         (SELECT count(*) FROM recoveries), (SELECT count(*) FROM outbox), \
         (SELECT string_agg(name || '@' || updated::text, ',' ORDER BY id) FROM instances)",
    )
    .fetch_one(&stack.pool)
    .await?;
    Ok(json!([row.0, row.1, row.2, row.3, row.4]))
}

/// Sends `body` to tenant A's `path` and asserts `want` in the envelope, a message that names
/// `field`, and an untouched control plane.
async fn assert_refused(
    stack: &Stack,
    method: Method,
    path: &str,
    body: Value,
    want: StatusCode,
    field: &str,
) -> Result<()> {
    let before = control_plane(stack).await?;
    let (status, resp) = stack.call_a(method.clone(), path, Some(body)).await?;
    assert_fault(status, &resp, want, format!("{method} {path} ({field})"));
    let message = resp[fault_name(want)]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(field),
        "message does not name {field}: {resp}"
    );
    assert_eq!(
        control_plane(stack).await?,
        before,
        "a refusal changed state"
    );
    Ok(())
}

/// A create body with `extra` merged into `instance`.
fn create_with(extra: Value) -> Value {
    let mut inst = json!({"name": "pg1", "flavorRef": "1"});
    if let (Some(o), Some(e)) = (inst.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    json!({ "instance": inst })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_name_or_description_is_a_400_not_a_500() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = idle_instance(&stack, TENANT_A, None).await?;
    let bad = StatusCode::BAD_REQUEST;
    assert_refused(
        &stack,
        Method::POST,
        "/instances",
        create_with(json!({"name": "a\u{0}b"})),
        bad,
        "name",
    )
    .await?;
    assert_refused(
        &stack,
        Method::POST,
        "/backups",
        json!({"backup": {"name": "b", "instance": a, "description": "x\u{0}y"}}),
        bad,
        "description",
    )
    .await?;
    for method in [Method::PUT, Method::PATCH] {
        assert_refused(
            &stack,
            method,
            &format!("/instances/{a}"),
            json!({"instance": {"name": "a\u{0}b"}}),
            bad,
            "name",
        )
        .await?;
    }
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_lists_and_strings_are_refused() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = idle_instance(&stack, TENANT_A, None).await?;
    let bad = StatusCode::BAD_REQUEST;
    let many_dbs: Vec<Value> = (0..30_000)
        .map(|i| json!({"name": format!("d{i}")}))
        .collect();
    // 30 000 databases fit in 64 KiB only as a 413; a list just past the cap is a 400.
    let (status, resp) = stack
        .post_a("/instances", create_with(json!({"databases": many_dbs})))
        .await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert_eq!(resp["overLimit"]["code"], 413, "{resp}");
    let dbs: Vec<Value> = (0..101).map(|i| json!({"name": format!("d{i}")})).collect();
    assert_refused(
        &stack,
        Method::POST,
        "/instances",
        create_with(json!({ "databases": dbs })),
        bad,
        "databases",
    )
    .await?;
    let description = "x".repeat(1_500_000);
    let (status, resp) = stack
        .post_a(
            "/backups",
            json!({"backup": {"name": "b", "instance": a, "description": description}}),
        )
        .await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{resp}");
    assert_refused(
        &stack,
        Method::POST,
        "/backups",
        json!({"backup": {"name": "b", "instance": a, "description": "x".repeat(513)}}),
        bad,
        "description",
    )
    .await?;
    assert_eq!(control_plane(&stack).await?[1], 0, "no backup was written");
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_oversized_values_anywhere_are_refused() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    idle_instance(&stack, TENANT_A, None).await?;
    let bad = StatusCode::BAD_REQUEST;
    let secret = "s3cret\u{1b}[2J-password";
    let user = |password: &str| json!([{"name": "alice", "password": password}]);
    let cidrs: Vec<String> = (0..101).map(|i| format!("10.0.{i}.0/24")).collect();
    let users: Vec<Value> = (0..101)
        .map(|i| json!({"name": format!("u{i}"), "password": "long-enough-1"}))
        .collect();
    let dbs: Vec<Value> = (0..101).map(|i| json!({"name": format!("d{i}")})).collect();
    let cases = [
        (
            json!({ "users": user(secret) }),
            "instance['users'][0]['password']",
        ),
        (
            json!({ "users": user("short") }),
            "password of user 'alice'",
        ),
        (
            json!({ "users": user(&"p".repeat(129)) }),
            "password of user 'alice'",
        ),
        // A key trove-rs ignores is still checked: nothing with a NUL gets past the door.
        (
            json!({ "nics": [{"net-id": "a\u{0}"}] }),
            "instance['nics'][0]['net-id']",
        ),
        (json!({ "name": "x".repeat(256) }), "instance 'name'"),
        (json!({ "flavorRef": "f".repeat(256) }), "flavorRef"),
        (
            json!({ "datastore": {"type": "p\u{0}g"} }),
            "instance['datastore']['type']",
        ),
        (
            json!({ "datastore": {"version": 15} }),
            "instance['datastore']['version']",
        ),
        (
            json!({ "volume": {"size": "00000000001"} }),
            "instance['volume']['size']",
        ),
        (
            json!({ "access": {"allowed_cidrs": cidrs} }),
            "allowed_cidrs",
        ),
        (
            json!({ "access": {"allowed_cidrs": ["10.0.0.0/33"]} }),
            "allowed_cidrs",
        ),
        (json!({ "access": {"is_public": "yes"} }), "is_public"),
        (json!({ "users": users }), "instance['users']"),
        (
            json!({ "databases": [{"name": "d0"}], "users": [{"name": "u", "password": "long-enough-1", "databases": dbs}] }),
            "databases of user 'u'",
        ),
        (
            json!({ "restorePoint": {"instanceRef": "i".repeat(300), "point_in_time": "latest"} }),
            "restorePoint['instanceRef']",
        ),
        (
            json!({ "restorePoint": {"backupRef": Uuid::new_v4(), "point_in_time": "2".repeat(100)} }),
            "point_in_time",
        ),
    ];
    for (extra, field) in cases {
        let body = create_with(extra);
        let before = control_plane(&stack).await?;
        let (status, resp) = stack.post_a("/instances", body.clone()).await?;
        assert_fault(status, &resp, bad, &body);
        let message = resp["badRequest"]["message"].as_str().unwrap_or("");
        assert!(message.contains(field), "{field}: {resp}");
        assert!(!message.contains("s3cret"), "a password was echoed: {resp}");
        assert_eq!(control_plane(&stack).await?, before, "{body} changed state");
    }
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_path_segment_query_value_or_host_is_a_400() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let a = idle_instance(&stack, TENANT_A, None).await?;
    let long = "x".repeat(256);
    let t = format!("/v1.0/{TENANT_A}");
    let cases = [
        // Each of these reached PostgreSQL with a NUL and answered 500 before.
        (
            format!("{t}/datastores/pg%00"),
            TOKEN_A,
            "path segment 'ds'",
        ),
        (
            format!("{t}/datastores/postgresql/versions/1%005"),
            TOKEN_A,
            "path segment 'version'",
        ),
        (format!("{t}/flavors/1%00"), TOKEN_A, "path segment 'id'"),
        (
            format!("{t}/backups?datastore=pg%00"),
            TOKEN_A,
            "query parameter 'datastore'",
        ),
        (
            "/v1.0/ten%00ant/instances".into(),
            TOKEN_ADMIN,
            "path segment 'tenant'",
        ),
        // Invalid UTF-8 once decoded, over-long segments and values, control characters.
        (format!("{t}/flavors/%FF"), TOKEN_A, "path segment"),
        (format!("{t}/flavors/{long}"), TOKEN_A, "path segment 'id'"),
        (
            format!("{t}/instances/{a}/recovery-window?timeline=1%0A"),
            TOKEN_A,
            "query parameter 'timeline'",
        ),
        (
            format!("{t}/instances?marker={long}"),
            TOKEN_A,
            "query parameter 'marker'",
        ),
        (format!("{t}/instances?limit=%2B5"), TOKEN_A, "limit"),
        (format!("{t}/backups?marker=%2B5"), TOKEN_A, "marker"),
        (
            format!("{t}/instances/{a}/recovery-window?timeline=%2B1"),
            TOKEN_A,
            "timeline",
        ),
    ];
    for (path, token, field) in cases {
        let before = control_plane(&stack).await?;
        let (status, resp) = stack.call(Method::GET, &path, Some(token), None).await?;
        assert_fault(status, &resp, StatusCode::BAD_REQUEST, &path);
        let message = resp["badRequest"]["message"].as_str().unwrap_or("");
        assert!(message.contains(field), "{path}: {resp}");
        assert_eq!(control_plane(&stack).await?, before);
    }
    // A token longer than any the token file holds is unknown, without a lookup.
    let long_token = "t".repeat(2000);
    let (status, resp) = stack
        .call(
            Method::GET,
            &format!("{t}/flavors"),
            Some(&long_token),
            None,
        )
        .await?;
    assert_fault(status, &resp, StatusCode::UNAUTHORIZED, "a 2000-byte token");
    // Links are built from the Host header, so one that is no host name is refused.
    let resp = stack
        .http
        .get(format!("{}{t}/flavors", stack.api_url))
        .header("X-Auth-Token", TOKEN_A)
        .header("Host", "evil\"host")
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await?;
    assert_fault(
        StatusCode::BAD_REQUEST,
        &body,
        StatusCode::BAD_REQUEST,
        "Host",
    );
    stack.shutdown().await;
    Ok(())
}
