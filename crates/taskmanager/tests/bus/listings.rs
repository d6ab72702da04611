//! A guest's accident listing: stored once for the listing its instance asked for, refused over
//! its bounds, and never from another host.

use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use trove_common::{
    rpc::{RequestContext, RpcMessage, conductor::ConductorMethod, topics},
    wal_activity::{Activity, Change, ChangeKind, MAX_TRANSACTIONS, Transaction},
};
use uuid::Uuid;

use crate::support::{Stack, wait_until};

fn listed(instance: Uuid, listing: Uuid, activity: Activity, host: &str) -> RpcMessage {
    RpcMessage::new(
        &ConductorMethod::TransactionsListed {
            instance_id: instance,
            listing_id: listing,
            activity: Some(activity),
            error: None,
        },
        RequestContext {
            guest_host: Some(host.to_string()),
            ..Default::default()
        },
    )
}

fn activity(n: usize) -> Activity {
    let t = Transaction {
        xid: 900,
        timeline: 1,
        lsn: "0/3000A28".into(),
        commit_time: Utc::now(),
        changes: vec![Change {
            database: "shop".into(),
            relation: "public.orders".into(),
            kind: ChangeKind::Delete,
            rows: Some(3),
        }],
        more_changes: 0,
    };
    Activity {
        transactions: vec![t; n],
        truncated: false,
        segments: 1,
    }
}

/// A listing the API would have stored and the taskmanager sent.
async fn sent_listing(stack: &Stack, instance: Uuid) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO wal_listings (id, instance_id, tenant_id, since, until, state) \
         VALUES ($1, $2, 't', now() - interval '1 hour', now(), 'SENT')",
    )
    .bind(id)
    .bind(instance)
    .execute(&stack.pool)
    .await?;
    Ok(id)
}

async fn state(stack: &Stack, id: Uuid) -> Result<(String, Option<String>)> {
    Ok(
        sqlx::query_as("SELECT state, error FROM wal_listings WHERE id = $1")
            .bind(id)
            .fetch_one(&stack.pool)
            .await?,
    )
}

async fn wait_state(stack: &Stack, id: Uuid, want: &str) -> Result<Option<String>> {
    wait_until(
        &format!("listing {id} to be {want}"),
        Duration::from_secs(30),
        || async {
            let (s, error) = state(stack, id).await?;
            Ok((s == want).then_some(error))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_is_stored_once_within_its_bounds_and_only_from_its_host() -> Result<()> {
    let mut stack = Stack::new(5).await?;
    let a = stack.add_host("a", 3).await?;
    let b = stack.add_host("b", 3).await?;
    let id = stack.instance_on(&a).await?;
    stack.start_taskmanager();
    stack.wait_consuming().await?;
    let (bus_a, bus_b) = (a.bus().await?, b.bus().await?);

    // Another host cannot answer for this instance.
    let first = sent_listing(&stack, id).await?;
    bus_b
        .publish(topics::CONDUCTOR, &listed(id, first, activity(1), &b.name))
        .await?;
    stack.wait_dead_letters(1).await?;
    assert_eq!(state(&stack, first).await?.0, "SENT");

    // Its own host's answer settles it once: a later one changes nothing.
    bus_a
        .publish(topics::CONDUCTOR, &listed(id, first, activity(2), &a.name))
        .await?;
    wait_state(&stack, first, "COMPLETED").await?;
    bus_a
        .publish(topics::CONDUCTOR, &listed(id, first, activity(0), &a.name))
        .await?;

    // Over its bounds: refused, with a reason, nothing stored. (Published after the late answer
    // above, so that one has been handled too once this one is.)
    let second = sent_listing(&stack, id).await?;
    bus_a
        .publish(
            topics::CONDUCTOR,
            &listed(id, second, activity(MAX_TRANSACTIONS + 1), &a.name),
        )
        .await?;
    let error = wait_state(&stack, second, "FAILED").await?;
    assert_eq!(
        error.as_deref(),
        Some("the guest's listing exceeded its bounds")
    );
    let n: i64 = sqlx::query_scalar(
        "SELECT jsonb_array_length(result->'transactions')::int8 FROM wal_listings WHERE id = $1",
    )
    .bind(first)
    .fetch_one(&stack.pool)
    .await?;
    assert_eq!(n, 2, "the first answer stays");
    stack.shutdown().await;
    Ok(())
}
