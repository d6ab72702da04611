//! `trove-bench api`: throughput and p99 latency of `GET /instances/{id}` and `GET /instances`
//! (pages of 100) under concurrent clients, against a real trove-api (in this process, on a real
//! socket) on a real control database of its own, seeded with instance rows. RabbitMQ must run:
//! the API connects to it at start, though these reads send nothing.

mod args;
mod load;
mod seed;

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, Result};
use tokio_util::sync::CancellationToken;
use trove_api::config::ApiConfig;
use trove_common::{secrets::SecretKey, testkit::Sandbox};

const TOKEN: &str = "bench-token";

pub async fn main(argv: impl Iterator<Item = String>) -> Result<()> {
    let Some(args) = args::parse(argv)? else {
        return Ok(());
    };
    // Its own database and vhost, dropped at the end.
    let sandbox = Sandbox::create("trove_bench").await?;
    trove_taskmanager::manage::bootstrap(&sandbox.pool).await?;
    let ids = seed::instances(&sandbox.pool, args.instances).await?;
    let dir = std::env::temp_dir().join(format!("trove-bench-api-{}", sandbox.id));
    std::fs::create_dir_all(&dir)?;
    let token_file = dir.join("tokens.json");
    let tokens = serde_json::json!({ TOKEN: {"project_id": seed::TENANT, "roles": ["member"]} });
    std::fs::write(&token_file, serde_json::to_vec(&tokens)?)?;

    let mut database = sandbox.database.clone();
    // One connection per client would be the most a client could use; the API's own default
    // (10) is what an operator runs with.
    database.max_connections = 10;
    let config = ApiConfig {
        listen: "127.0.0.1:0".into(),
        token_file,
        page_size: 100,
        database,
        amqp: sandbox.amqp.clone(),
        taskmanager_public_key: Some(SecretKey::generate().public_key()),
        ..ApiConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/v1.0/{}", listener.local_addr()?, seed::TENANT);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(trove_api::run(config, listener, shutdown.clone()));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(30))
        .build()?;
    wait_ready(&client, &base).await?;

    let show_base = base.clone();
    let ids = Arc::new(ids);
    let show = load::run(
        "GET /instances/{id}",
        &client,
        TOKEN,
        args.clients,
        args.secs,
        Arc::new(move |i| format!("{show_base}/instances/{}", ids[i % ids.len()])),
    )
    .await?;
    let list_base = base.clone();
    let list = load::run(
        "GET /instances (page of 100)",
        &client,
        TOKEN,
        args.clients,
        args.secs,
        Arc::new(move |_| format!("{list_base}/instances?limit=100")),
    )
    .await?;

    shutdown.cancel();
    server.await.context("the API task")??;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{:<30} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "scenario", "clients", "requests", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    for m in [&show, &list] {
        println!(
            "{:<30} {:>8} {:>10} {:>10.0} {:>9.2} {:>9.2} {:>9.2}",
            m.name,
            m.clients,
            m.requests,
            m.per_sec,
            m.latency_ms.p50,
            m.latency_ms.p99,
            m.latency_ms.max
        );
    }
    println!(
        "{}",
        serde_json::json!({"api_bench": [show, list], "instances": args.instances, "secs": args.secs})
    );
    Ok(())
}

/// Polls the version document until the API answers.
async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<()> {
    let root = base.split("/v1.0/").next().unwrap_or(base).to_string() + "/";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if client.get(&root).send().await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the API did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
