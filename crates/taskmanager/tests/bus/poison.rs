//! A message whose handler fails on every delivery leaves the queue after `max_attempts`
//! deliveries instead of holding up what is queued behind it; a report dated in the future
//! cannot freeze an instance's status.

use std::time::{Duration, Instant};

use anyhow::Result;
use trove_common::{rpc::topics, status::ServiceStatus};

use crate::support::{Stack, heartbeat, now, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_poison_messages_delay_a_real_heartbeat_by_seconds_and_are_dead_lettered() -> Result<()>
{
    let mut stack = Stack::new(5).await?;
    let a = stack.add_host("a", 3).await?;
    let poisoned = stack.instance_on(&a).await?;
    let real = stack.instance_on(&a).await?;
    // Every status update of `poisoned` fails inside the control database, as a bug would.
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'poisoned row'; END $$; \
         CREATE TRIGGER poison BEFORE UPDATE ON service_statuses FOR EACH ROW \
         WHEN (NEW.instance_id = '{poisoned}') EXECUTE FUNCTION poison();"
    ))
    .execute(&stack.pool)
    .await?;
    // The conductor's queue exists; ten poison messages and then a real heartbeat wait in it
    // before any consumer runs.
    stack
        .control
        .declare_route(topics::CONDUCTOR, topics::CONDUCTOR)
        .await?;
    let bus = a.bus().await?;
    for _ in 0..10 {
        bus.publish(
            topics::CONDUCTOR,
            &heartbeat(poisoned, ServiceStatus::Healthy, now(), &a.name),
        )
        .await?;
    }
    bus.publish(
        topics::CONDUCTOR,
        &heartbeat(real, ServiceStatus::Healthy, now(), &a.name),
    )
    .await?;
    assert_eq!(stack.control.queue_depth(topics::CONDUCTOR).await?, 11);

    let started = Instant::now();
    stack.start_taskmanager();
    wait_until(
        "the real heartbeat to be applied",
        Duration::from_secs(30),
        || async { Ok((stack.status(real).await?.0 == "healthy").then_some(())) },
    )
    .await?;
    let delay = started.elapsed();
    println!(
        "real heartbeat applied {delay:?} after the consumer started, behind ten poison messages"
    );
    // Each poison message costs one failed delivery before the heartbeat: a second or so.
    assert!(delay < Duration::from_secs(15), "took {delay:?}");

    // Each poison message is tried max_attempts times, then parked once; nothing loops on.
    stack.wait_dead_letters(10).await?;
    let drained = started.elapsed();
    println!("all ten poison messages dead-lettered after {drained:?}");
    assert_eq!(stack.status(poisoned).await?.0, "running");
    stack.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_dated_a_day_ahead_does_not_freeze_the_status() -> Result<()> {
    let mut stack = Stack::new(5).await?;
    let a = stack.add_host("a", 3).await?;
    let id = stack.instance_on(&a).await?;
    stack.start_taskmanager();
    stack.wait_consuming().await?;
    let bus = a.bus().await?;
    bus.publish(
        topics::CONDUCTOR,
        &heartbeat(id, ServiceStatus::Shutdown, now() + 86_400.0, &a.name),
    )
    .await?;
    wait_until(
        "the status to be shutdown",
        Duration::from_secs(30),
        || async { Ok((stack.status(id).await?.0 == "shutdown").then_some(())) },
    )
    .await?;
    // Stored as received now, not as a day ahead: the next real heartbeat is newer.
    bus.publish(
        topics::CONDUCTOR,
        &heartbeat(id, ServiceStatus::Healthy, now(), &a.name),
    )
    .await?;
    wait_until(
        "the status to follow the next heartbeat",
        Duration::from_secs(30),
        || async { Ok((stack.status(id).await?.0 == "healthy").then_some(())) },
    )
    .await?;
    let stored: f64 = sqlx::query_scalar(
        "SELECT sent FROM conductor_lastseen WHERE instance_id = $1 AND method_name = 'heartbeat'",
    )
    .bind(id)
    .fetch_one(&stack.pool)
    .await?;
    assert!(stored <= now(), "stored sent {stored} is not in the future");
    stack.shutdown().await;
    Ok(())
}
