//! A guest's report of its server's databases and users: stored when it is sane and the newest,
//! ignored (never at the cost of the instance's status) when it is not, and never about another
//! host's instance.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use trove_common::{
    accounts::{AccountUser, Accounts, MAX_REPORTED},
    rpc::{
        RequestContext, RpcMessage,
        conductor::{ConductorMethod, HeartbeatPayload},
        topics,
    },
    status::ServiceStatus,
};
use uuid::Uuid;

use crate::support::{Stack, heartbeat, now, wait_until};

/// A healthy heartbeat carrying `accounts`.
fn heartbeat_with(instance: Uuid, accounts: Accounts, sent: f64, host: &str) -> RpcMessage {
    RpcMessage::new(
        &ConductorMethod::Heartbeat {
            instance_id: instance,
            payload: HeartbeatPayload {
                service_status: ServiceStatus::Healthy.description().to_string(),
                address: None,
                port: None,
                error: None,
                completes: None,
                accounts: Some(accounts),
                volume_used_bytes: None,
                rewind: None,
            },
            sent,
        },
        RequestContext {
            guest_host: Some(host.to_string()),
            ..Default::default()
        },
    )
}

fn catalog(databases: &[&str]) -> Accounts {
    Accounts {
        databases: databases.iter().map(|d| d.to_string()).collect(),
        users: vec![AccountUser {
            name: "app".into(),
            databases: databases.iter().map(|d| d.to_string()).collect(),
        }],
    }
}

async fn stored(stack: &Stack, id: Uuid) -> Result<Option<Value>> {
    Ok(
        sqlx::query_scalar("SELECT accounts FROM instance_accounts WHERE instance_id = $1")
            .bind(id)
            .fetch_optional(&stack.pool)
            .await?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_accounts_are_stored_newest_first_and_oversized_ones_cost_nothing() -> Result<()> {
    let mut stack = Stack::new(5).await?;
    let a = stack.add_host("a", 3).await?;
    let b = stack.add_host("b", 3).await?;
    let id = stack.instance_on(&a).await?;
    stack.start_taskmanager();
    stack.wait_consuming().await?;
    let bus_a = a.bus().await?;
    let t0 = now();
    bus_a
        .publish(
            topics::CONDUCTOR,
            &heartbeat_with(id, catalog(&["app"]), t0, &a.name),
        )
        .await?;
    wait_until(
        "the catalog to be stored",
        Duration::from_secs(30),
        || async {
            Ok(stored(&stack, id)
                .await?
                .filter(|v| v["databases"][0] == "app"))
        },
    )
    .await?;

    // Older than what is stored: ignored. Too large: ignored, and the status still follows.
    bus_a
        .publish(
            topics::CONDUCTOR,
            &heartbeat_with(id, catalog(&["old"]), t0 - 10.0, &a.name),
        )
        .await?;
    let many: Vec<String> = (0..=MAX_REPORTED).map(|i| format!("d{i}")).collect();
    let huge = Accounts {
        databases: many,
        users: vec![],
    };
    bus_a
        .publish(
            topics::CONDUCTOR,
            &heartbeat(id, ServiceStatus::Shutdown, t0 + 1.0, &a.name),
        )
        .await?;
    wait_until(
        "the status to be shutdown",
        Duration::from_secs(30),
        || async { Ok((stack.status(id).await?.0 == "shutdown").then_some(())) },
    )
    .await?;
    bus_a
        .publish(
            topics::CONDUCTOR,
            &heartbeat_with(id, huge, t0 + 2.0, &a.name),
        )
        .await?;
    wait_until(
        "the status to follow the oversized report",
        Duration::from_secs(30),
        || async { Ok((stack.status(id).await?.0 == "healthy").then_some(())) },
    )
    .await?;
    let v = stored(&stack, id).await?.unwrap_or_default();
    assert_eq!(v["databases"], serde_json::json!(["app"]), "{v}");

    // Another host cannot report for this instance.
    let bus_b = b.bus().await?;
    bus_b
        .publish(
            topics::CONDUCTOR,
            &heartbeat_with(id, catalog(&["evil"]), now() + 5.0, &b.name),
        )
        .await?;
    stack.wait_dead_letters(1).await?;
    let v = stored(&stack, id).await?.unwrap_or_default();
    assert_eq!(v["databases"], serde_json::json!(["app"]), "{v}");
    stack.shutdown().await;
    Ok(())
}
