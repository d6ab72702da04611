//! The read-only surface and the error envelope, as Trove's clients need them.

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::json;
use trove_e2e::{API_ONLY, Stack, envelope::assert_fault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_versions_and_unknown_routes_answer_in_trove_shapes() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let (status, v) = stack.call(Method::GET, "/", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["versions"][0]["id"], "v1.0");

    let (_, ds) = stack.get_a("/datastores").await?;
    let pg = &ds["datastores"][0];
    assert_eq!(pg["name"], "postgresql");
    assert_eq!(pg["default_version"], pg["versions"][0]["id"]);
    let (status, by_name) = stack.get_a("/datastores/postgresql/versions/15").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_name["version"]["name"], "15");
    let vid = by_name["version"]["id"].as_str().expect("id").to_string();
    let (status, _) = stack.get_a(&format!("/datastores/versions/{vid}")).await?;
    assert_eq!(status, StatusCode::OK);

    let (_, fl) = stack.get_a("/flavors").await?;
    assert!(fl["flavors"].as_array().is_some_and(|f| f.len() >= 4));
    assert_eq!(fl["flavors"][0]["id"], 1);
    assert_eq!(fl["flavors"][0]["str_id"], "1");

    for path in ["/nothing-here", "/instances/not-a-uuid"] {
        let (status, nf) = stack.get_a(path).await?;
        assert_fault(status, &nf, StatusCode::NOT_FOUND, path);
    }
    let (status, _) = stack.call_a(Method::DELETE, "/flavors", None).await?;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (_, list) = stack.get_a("/instances").await?;
    assert_eq!(list, json!({"instances": []}));
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_bad_input_and_writes_nothing() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let cases = [
        json!({}),
        json!({"instance": {"flavorRef": "1"}}),
        json!({"instance": {"name": "x", "flavorRef": "999"}}),
        json!({"instance": {"name": "x", "flavorRef": "1", "volume": {"size": 0}}}),
        json!({"instance": {"name": "x", "flavorRef": "1", "datastore": {"type": "nosuch"}}}),
        json!({"instance": {"name": "x", "flavorRef": "1", "databases": [{"name": "bad name;"}]}}),
        json!({"instance": {"name": "x", "flavorRef": "1", "users": [{"name": "u"}]}}),
        json!({"instance": {"name": "x", "flavorRef": "1", "users": [{"name": "u", "password": "p", "databases": [{"name": "missing"}]}]}}),
        json!({"instance": {"name": "x", "flavorRef": "1", "restorePoint": {"backupRef": "nope"}}}),
    ];
    for body in cases {
        let (status, resp) = stack.post_a("/instances", body.clone()).await?;
        assert_fault(status, &resp, StatusCode::BAD_REQUEST, body);
    }
    let (status, resp) = stack
        .post_a("/instances", json!({"instance": {"name": "x", "flavorRef": "1", "restorePoint": {"backupRef": uuid::Uuid::new_v4()}}}))
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{resp}");
    assert_eq!(stack.count("instances").await?, 0);
    assert_eq!(stack.count("outbox").await?, 0);
    stack.shutdown().await;
    Ok(())
}
