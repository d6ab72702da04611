//! The surface Trove's clients touch around the resources: the version documents, the health
//! check, links behind a proxy, `next` links that keep a list's filters, and create options that
//! are refused rather than silently dropped.

use anyhow::{Context, Result};
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trove_e2e::{
    API_ONLY, Stack, TENANT_A, TOKEN_A,
    envelope::assert_fault,
    fixtures::{backup_row, idle_instance, pg_version},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_documents_and_the_health_check_answer_without_a_token() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let self_href = format!("{}/v1.0/", stack.api_url);

    let (status, one) = stack.call(Method::GET, "/v1.0/", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["version"]["id"], "v1.0");
    assert_eq!(one["version"]["status"], "CURRENT");
    assert_eq!(one["version"]["links"][0]["href"], self_href.as_str());
    let (status, bare) = stack.call(Method::GET, "/v1.0", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bare, one);
    let (status, all) = stack.call(Method::GET, "/", None, None).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["versions"][0], one["version"]);

    let resp = stack
        .http
        .get(format!("{}/healthcheck", stack.api_url))
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(resp.text().await?, "OK");
    stack.shutdown().await;
    Ok(())
}

/// GETs `path` with the forwarded headers given, and returns the body.
async fn get_forwarded(
    stack: &Stack,
    path: &str,
    proto: &str,
    host: &str,
) -> Result<(StatusCode, Value)> {
    let resp = stack
        .http
        .get(format!("{}{path}", stack.api_url))
        .header("X-Auth-Token", TOKEN_A)
        .header("X-Forwarded-Proto", proto)
        .header("X-Forwarded-Host", host)
        .send()
        .await?;
    Ok((resp.status(), resp.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_follow_the_proxy_and_ignore_forwarded_values_that_are_no_host() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let flavors = format!("/v1.0/{TENANT_A}/flavors");

    let (status, fl) = get_forwarded(&stack, &flavors, "https", "db.example.com:8443").await?;
    assert_eq!(status, StatusCode::OK);
    let href = fl["flavors"][0]["links"][0]["href"]
        .as_str()
        .context("href")?;
    assert!(
        href.starts_with(&format!(
            "https://db.example.com:8443/v1.0/{TENANT_A}/flavors/"
        )),
        "{href}"
    );
    let (_, v) = get_forwarded(&stack, "/v1.0/", "HTTPS", "[2001:db8::1]").await?;
    assert_eq!(
        v["version"]["links"][0]["href"],
        "https://[2001:db8::1]/v1.0/"
    );

    // A forged value is not echoed: the link falls back to what the client dialled.
    for (proto, host) in [
        ("javascript", "evil.example/x?"),
        ("http", "a@evil.example"),
        ("ftp", "evil.example:99999"),
    ] {
        let (status, fl) = get_forwarded(&stack, &flavors, proto, host).await?;
        assert_eq!(status, StatusCode::OK, "{proto} {host}");
        let href = fl["flavors"][0]["links"][0]["href"]
            .as_str()
            .context("href")?;
        assert!(
            href.starts_with(&format!("{}/v1.0/", stack.api_url)),
            "{proto} {host}: {href}"
        );
    }
    stack.shutdown().await;
    Ok(())
}

/// The path and query of a `next` link, to follow it against the test's API.
fn next_of(page: &Value, api_url: &str) -> Option<String> {
    let href = page["links"][0]["href"].as_str()?;
    href.strip_prefix(api_url).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_links_keep_the_lists_filters() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let dsv = pg_version(&stack, None).await?;
    let mine = idle_instance(&stack, TENANT_A, None).await?;
    let other = idle_instance(&stack, TENANT_A, None).await?;
    for _ in 0..3 {
        backup_row(&stack, TENANT_A, mine, "COMPLETED", dsv, Utc::now(), None).await?;
    }
    backup_row(&stack, TENANT_A, other, "COMPLETED", dsv, Utc::now(), None).await?;

    let first = format!("/v1.0/{TENANT_A}/backups?limit=2&instance_id={mine}&datastore=postgresql");
    let (status, page) = stack.call(Method::GET, &first, Some(TOKEN_A), None).await?;
    assert_eq!(status, StatusCode::OK);
    let next = next_of(&page, &stack.api_url).context("a next link")?;
    assert_eq!(
        next,
        format!(
            "/v1.0/{TENANT_A}/backups?limit=2&marker=2&instance_id={mine}&datastore=postgresql"
        )
    );
    let (status, rest) = stack.call(Method::GET, &next, Some(TOKEN_A), None).await?;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&Value> = page["backups"]
        .as_array()
        .into_iter()
        .chain(rest["backups"].as_array())
        .flatten()
        .map(|b| &b["instance_id"])
        .collect();
    assert_eq!(ids.len(), 3, "{page} {rest}");
    assert!(ids.iter().all(|i| **i == json!(mine)), "{page} {rest}");
    assert!(rest.get("links").is_none(), "{rest}");

    // The per-instance list has its instance in the path; the query keeps the datastore only.
    let per_instance =
        format!("/v1.0/{TENANT_A}/instances/{mine}/backups?limit=2&datastore=postgresql");
    let (_, page) = stack
        .call(Method::GET, &per_instance, Some(TOKEN_A), None)
        .await?;
    assert_eq!(
        next_of(&page, &stack.api_url).as_deref(),
        Some(
            format!(
                "/v1.0/{TENANT_A}/instances/{mine}/backups?limit=2&marker=2&datastore=postgresql"
            )
            .as_str()
        )
    );
    stack.shutdown().await;
    Ok(())
}

/// A create body as `openstack database instance create` sends it without the options under test.
fn cli_create(extra: Value) -> Value {
    let mut inst = json!({
        "name": "pg-cli", "flavorRef": 1, "volume": {"size": 1, "type": null},
        "datastore": {"type": "postgresql", "version": "15"},
        "access": {"is_public": false},
    });
    if let (Some(o), Value::Object(more)) = (inst.as_object_mut(), extra) {
        o.extend(more);
    }
    json!({ "instance": inst })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_options_it_would_drop_and_writes_nothing() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let users_at = |host: &str| {
        json!({"databases": [{"name": "app"}],
               "users": [{"name": "alice", "password": "alice-secret-1", "host": host,
                          "databases": [{"name": "app"}]}]})
    };
    let not_implemented = [
        (json!({"volume": {"size": 1, "type": "ssd"}}), "volume.type"),
        (json!({"availability_zone": "nova"}), "availability_zone"),
        (json!({"nics": [{"network_id": "aaaa"}]}), "nics"),
        (json!({"locality": "anti-affinity"}), "locality"),
        (json!({"modules": [{"id": "m-1"}]}), "modules"),
        (
            json!({"replica_of": "pg1", "replica_count": 2}),
            "replica_of",
        ),
        (json!({"region_name": "RegionTwo"}), "region_name"),
        (
            json!({"databases": [{"name": "app", "character_set": "LATIN1"}]}),
            "databases[].character_set",
        ),
        (
            json!({"databases": [{"name": "app", "collate": "C"}]}),
            "databases[].collate",
        ),
        (users_at("10.0.0.%"), "users[].host"),
    ];
    for (extra, option) in not_implemented {
        let (status, resp) = stack
            .post_a("/instances", cli_create(extra.clone()))
            .await?;
        assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{extra} -> {resp}");
        assert_eq!(resp["notImplemented"]["code"], 501, "{resp}");
        let message = resp["notImplemented"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(&format!("'{option}'")),
            "{extra} -> {message}"
        );
    }
    let bad_values = [
        json!({"locality": "nearby"}),
        json!({"nics": {"network_id": "aaaa"}}),
        json!({"availability_zone": 1}),
        json!({"datastore": {"type": "postgresql", "version": "15", "version_number": "9.6"}}),
    ];
    for extra in bad_values {
        let (status, resp) = stack
            .post_a("/instances", cli_create(extra.clone()))
            .await?;
        assert_fault(status, &resp, StatusCode::BAD_REQUEST, extra);
    }
    assert_eq!(stack.count("instances").await?, 0);
    assert_eq!(stack.count("outbox").await?, 0);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_accepts_options_sent_unset_and_a_matching_version_number() -> Result<()> {
    let stack = Stack::start(API_ONLY).await?;
    let (_, v) = stack.get_a("/datastores/postgresql/versions/15").await?;
    let number = v["version"]["version"].as_str().context("version number")?;
    let extra = json!({
        "datastore": {"type": "postgresql", "version": "15", "version_number": number},
        "availability_zone": null, "nics": [], "configuration": null, "modules": [],
        "region_name": "RegionOne", "locality": null,
        "databases": [{"name": "app", "character_set": null, "collate": ""}],
        "users": [{"name": "alice", "password": "alice-secret-1", "host": "%",
                   "databases": [{"name": "app"}]}],
    });
    let (status, resp) = stack.post_a("/instances", cli_create(extra)).await?;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["instance"]["datastore"]["version"], "15", "{resp}");
    assert_eq!(stack.count("instances").await?, 1);
    stack.shutdown().await;
    Ok(())
}
