//! Each host's broker credentials reach its own queues and the conductor, nothing else; the
//! conductor believes the broker about who sent a report, never the report itself.

use std::time::Duration;

use anyhow::Result;
use lapin::BasicProperties;
use trove_common::{
    rpc::{RequestContext, RpcMessage, conductor::ConductorMethod, topics},
    secrets::SecretKey,
    status::ServiceStatus,
};
use trove_taskmanager::manage::hosts;

use crate::support::{
    Host, Stack, heartbeat, now, raw_connection, raw_consume, raw_publish, refusal, wait_until,
};

const ACCESS_REFUSED: u16 = 403;
const PRECONDITION_FAILED: u16 = 406;

/// Two registered hosts with one instance each, and the taskmanager running (which declares
/// their queues at start-up).
async fn two_hosts() -> Result<(Stack, Host, Host, uuid::Uuid, uuid::Uuid)> {
    let mut stack = Stack::new(5).await?;
    let a = stack.add_host("a", 3).await?;
    let b = stack.add_host("b", 3).await?;
    let on_a = stack.instance_on(&a).await?;
    let on_b = stack.instance_on(&b).await?;
    stack.start_taskmanager();
    stack.wait_consuming().await?;
    // The conductor applies each host's own heartbeat: both identities work.
    for h in [&a, &b] {
        let msg = RpcMessage::new(
            &ConductorMethod::HostHeartbeat {
                host: h.name.clone(),
                address: "127.0.0.1".into(),
                capacity: None,
                sent: now(),
                public_key: None,
            },
            RequestContext::default(),
        );
        h.bus().await?.publish(topics::CONDUCTOR, &msg).await?;
        stack.wait_host_seen(h, None).await?;
    }
    Ok((stack, a, b, on_a, on_b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cannot_consume_another_hosts_queues_or_the_control_planes() -> Result<()> {
    let (stack, a, b, on_a, on_b) = two_hosts().await?;
    let conn = a.raw().await?;
    // Its own queues it can consume.
    raw_consume(&conn, &topics::guest_host(&a.name)).await?;
    raw_consume(&conn, &topics::guest_instance_queue(&a.name, on_a)).await?;
    for queue in [
        topics::guest_host(&b.name),
        topics::guest_instance_queue(&b.name, on_b),
        topics::CONDUCTOR.to_string(),
        topics::TASKMANAGER.to_string(),
        stack.control.dead_letter_queue(),
    ] {
        // Every queue exists, so the refusal is about permission, not absence.
        stack.control.queue_depth(&queue).await?;
        let code = refusal(
            &format!("consuming {queue} as {}", a.name),
            raw_consume(&conn, &queue).await,
        )?;
        assert_eq!(code, ACCESS_REFUSED, "consuming {queue}");
    }
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_can_publish_to_the_conductor_only() -> Result<()> {
    let (stack, a, b, on_a, on_b) = two_hosts().await?;
    let conn = a.raw().await?;
    let props = || BasicProperties::default().with_user_id(a.creds.user.as_str().into());
    let delete = RpcMessage::new(
        &trove_common::rpc::guest::GuestMethod::DeleteInstance {},
        RequestContext::default(),
    )
    .encode();
    let exchange = stack.control.exchange().to_string();
    let b_instance = topics::guest(on_b);
    let b_queue = topics::guest_instance_queue(&b.name, on_b);
    let b_host = topics::guest_host(&b.name);
    let dlx = format!("{exchange}.dlx");
    for (ex, key) in [
        (exchange.as_str(), topics::TASKMANAGER),
        (exchange.as_str(), b_instance.as_str()),
        (exchange.as_str(), b_host.as_str()),
        // Not even its own instance's topic: only the control plane casts to guests.
        (exchange.as_str(), &topics::guest(on_a)),
        // The default exchange reaches any queue by name.
        ("", b_queue.as_str()),
        ("", topics::TASKMANAGER),
        (dlx.as_str(), ""),
    ] {
        let code = refusal(
            &format!("publishing to {ex:?} with key {key} as {}", a.name),
            raw_publish(&conn, ex, key, props(), &delete).await,
        )?;
        assert_eq!(code, ACCESS_REFUSED, "publishing to {ex:?} with key {key}");
    }
    // The one thing it may do.
    raw_publish(
        &conn,
        &exchange,
        topics::CONDUCTOR,
        props(),
        &heartbeat(on_a, ServiceStatus::Healthy, now(), &a.name).encode(),
    )
    .await?;
    for queue in [&b_queue, &b_host] {
        assert_eq!(
            stack.control.queue_depth(queue).await?,
            0,
            "{queue} got nothing"
        );
    }
    assert_eq!(stack.dead_letters().await?, 0);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cannot_sign_as_another_host() -> Result<()> {
    let (stack, a, b, _, on_b) = two_hosts().await?;
    let before = stack.status(on_b).await?;
    let conn = a.raw().await?;
    let as_b = BasicProperties::default().with_user_id(b.creds.user.as_str().into());
    let report = heartbeat(on_b, ServiceStatus::Healthy, now(), &b.name).encode();
    let code = refusal(
        "publishing with B's user_id as A",
        raw_publish(
            &conn,
            stack.control.exchange(),
            topics::CONDUCTOR,
            as_b,
            &report,
        )
        .await,
    )?;
    assert_eq!(code, PRECONDITION_FAILED);
    // Without any user_id the conductor cannot tell who sent it: refused, nothing changes.
    raw_publish(
        &conn,
        stack.control.exchange(),
        topics::CONDUCTOR,
        BasicProperties::default(),
        &report,
    )
    .await?;
    stack.wait_dead_letters(1).await?;
    assert_eq!(stack.status(on_b).await?, before);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_naming_another_host_changes_nothing() -> Result<()> {
    let (stack, a, b, on_a, on_b) = two_hosts().await?;
    let before = stack.status(on_b).await?;
    let a_bus = a.bus().await?;
    // A claims, in the field a sender fills in, to be B, and reports on B's instance.
    let spoofed = heartbeat(on_b, ServiceStatus::Healthy, now(), &b.name);
    a_bus.publish(topics::CONDUCTOR, &spoofed).await?;
    // A host heartbeat naming B, sent by A, is refused too: it cannot give B an address, or a
    // public key whose secret A holds (B's next instances' passwords would be sealed for it).
    let a_key = SecretKey::generate();
    let b_alive = RpcMessage::new(
        &ConductorMethod::HostHeartbeat {
            host: b.name.clone(),
            address: "203.0.113.9".into(),
            capacity: None,
            sent: now(),
            public_key: Some(a_key.public_key()),
        },
        RequestContext::default(),
    );
    a_bus.publish(topics::CONDUCTOR, &b_alive).await?;
    stack.wait_dead_letters(2).await?;
    assert_eq!(
        stack.status(on_b).await?,
        before,
        "B's instance is untouched"
    );
    let (address, key): (String, Option<String>) =
        sqlx::query_as("SELECT address, public_key FROM guest_hosts WHERE id = $1")
            .bind(&b.name)
            .fetch_one(&stack.pool)
            .await?;
    assert_eq!(address, "127.0.0.1");
    assert_eq!(key, None, "B's key is not A's");
    // The context field is ignored either way: A's report on its own instance, claiming to come
    // from B, is applied as A's.
    a_bus
        .publish(
            topics::CONDUCTOR,
            &heartbeat(on_a, ServiceStatus::Healthy, now(), &b.name),
        )
        .await?;
    wait_until(
        "A's instance to be healthy",
        Duration::from_secs(30),
        || async { Ok((stack.status(on_a).await?.0 == "healthy").then_some(())) },
    )
    .await?;
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_heartbeat_cannot_change_the_registered_capacity() -> Result<()> {
    let (stack, a, _, _, _) = two_hosts().await?;
    let (capacity, seen) = stack.host_row(&a).await?;
    assert_eq!(capacity, 3);
    let greedy = RpcMessage::new(
        &ConductorMethod::HostHeartbeat {
            host: a.name.clone(),
            address: "127.0.0.1".into(),
            capacity: Some(i32::MAX),
            sent: now(),
            public_key: None,
        },
        RequestContext::default(),
    );
    a.bus().await?.publish(topics::CONDUCTOR, &greedy).await?;
    // The heartbeat itself is applied: the host stays live, at the capacity it was given.
    stack.wait_host_seen(&a, seen).await?;
    assert_eq!(stack.host_row(&a).await?.0, 3);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_broker_user_changes_nothing() -> Result<()> {
    let (stack, a, _, on_a, _) = two_hosts().await?;
    let before = stack.status(on_a).await?;
    // A user with every permission a host has, but never registered with host-add.
    let rogue = stack.rogue_user().await?;
    let bus =
        trove_common::amqp::Bus::connect_as(&rogue, trove_common::amqp::Role::GuestHost).await?;
    bus.publish(
        topics::CONDUCTOR,
        &heartbeat(on_a, ServiceStatus::Shutdown, now(), &a.name),
    )
    .await?;
    stack.wait_dead_letters(1).await?;
    assert_eq!(stack.status(on_a).await?, before);
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_host_loses_its_broker_user_and_its_placements() -> Result<()> {
    let (stack, a, b, _, _) = two_hosts().await?;
    let refused = hosts::remove_host(&stack.pool, &stack.broker, &b.name, false).await;
    assert!(
        refused.is_err(),
        "a host with instances is kept without --force"
    );
    raw_connection(&b.amqp).await?;
    hosts::remove_host(&stack.pool, &stack.broker, &b.name, true).await?;
    assert!(
        raw_connection(&b.amqp).await.is_err(),
        "the broker refuses the removed host's login"
    );
    // A is untouched and is the only host left for placement.
    let mut conn = stack.pool.acquire().await?;
    let chosen = trove_taskmanager::db::hosts::choose(&mut conn, 30, false).await?;
    assert_eq!(chosen.as_deref(), Some(a.name.as_str()));
    stack.shutdown().await;
    Ok(())
}
