//! Retention on the whole stack, with a real guest shipping real WAL to the object store: a
//! window of seconds removes the old backup and the WAL only it needed, `earliest` moves to the
//! backup kept at the cutoff, a recovery just after it still brings back exactly the rows
//! committed by then, and one before it is refused.

use std::time::Duration;

use anyhow::{Context as _, Result};
use chrono::TimeDelta as Span;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use trove_common::store::wal_keys::StoredWal;
use trove_e2e::{ALL, Stack, ids, rfc3339, target_between, tick_ids_upto, time_of, wait_until};
use trove_taskmanager::config::RetentionConfig;
use uuid::Uuid;

/// The segment numbers of timeline 1 of the instance's WAL in the store.
async fn stored_segments(stack: &Stack, id: Uuid) -> Result<Vec<u64>> {
    let dir = format!("wal/{id}");
    let entries = stack.store()?.list(&dir).await?;
    let wal = StoredWal::from_listing(&dir, &entries);
    Ok(wal
        .timelines
        .get(&1)
        .map(|t| {
            t.segments
                .keys()
                .filter_map(|name| u64::from_str_radix(name.get(8..)?, 16).ok())
                .collect()
        })
        .unwrap_or_default())
}

/// The segment number (16 MiB segments, as `<log><seg>` in a name) of an `X/Y` LSN.
fn segno(lsn: &str) -> Result<u64> {
    let (hi, lo) = lsn.split_once('/').context("an X/Y lsn")?;
    let lsn = (u64::from_str_radix(hi, 16)? << 32) | u64::from_str_radix(lo, 16)?;
    let seg = lsn / (16 << 20);
    Ok(((seg / 256) << 32) | (seg % 256))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_window_of_seconds_prunes_the_store_and_the_window_follows() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance("pg-retained").await?;

    // An old backup, WAL after it, then the backup that will be kept at the cutoff.
    let writer = stack.start_writer(id).await?;
    let old = stack.backup(id, "old").await?;
    let (_, before_anchor) = stack.keep_writing(id, writer, Span::seconds(1)).await?;
    let writer = stack.start_writer(id).await?;
    let anchor = stack.backup(id, "anchor").await?;
    let (since, rows) = stack.keep_writing(id, writer, Span::seconds(3)).await?;
    let old_id = old["id"].as_str().context("backup id")?.to_owned();
    let anchor_id = anchor["id"].as_str().context("backup id")?.to_owned();
    let (anchor_start, anchor_stop): (String, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT start_lsn, stop_time FROM backups WHERE id = $1::uuid")
            .bind(&anchor_id)
            .fetch_one(&stack.pool)
            .await?;
    let cut = segno(&anchor_start)?;
    let before = stored_segments(&stack, id).await?;
    assert!(
        before.first().is_some_and(|first| *first < cut),
        "WAL from before the anchor is in the store: {before:?}, cut {cut}"
    );
    let window_before = stack.instance(id).await?["recovery_window"].clone();

    // A window of two seconds: the anchor is past it once two seconds have gone by.
    let (status, body) = stack
        .call_a(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(json!({"instance": {"retention": {"window_secs": 2, "min_backups": 1}}})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let tm = stack.taskmanager_handle(RetentionConfig::default()).await?;
    let store = stack.store()?;
    wait_until(
        "retention to expire the old backup",
        Duration::from_secs(60),
        || async {
            let report = tm
                .retention_pass(Some(id), &CancellationToken::new())
                .await?;
            anyhow::ensure!(report.failed.is_empty(), "{report:?}");
            Ok(store
                .list(&format!("backups/{old_id}"))
                .await?
                .is_empty()
                .then_some(()))
        },
    )
    .await?;

    // The old backup is gone from the API and the store; the anchor stays.
    let (status, _) = stack.get_a(&format!("/backups/{old_id}")).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(store.list(&format!("backups/{anchor_id}")).await?.len(), 2);
    // The WAL only the old backup needed is gone; from the anchor's start on it is all there.
    let after = stored_segments(&stack, id).await?;
    assert_eq!(after.first(), Some(&cut), "{after:?}");
    assert_eq!(after.last(), before.last().max(after.last()));
    // The window starts at the anchor now, and shows the policy in force.
    let shown = stack.instance(id).await?;
    let window = &shown["recovery_window"];
    let earliest = time_of(&window["earliest"]).context("earliest")?;
    assert!(
        earliest > time_of(&window_before["earliest"]).context("earlier earliest")?,
        "{window} after {window_before}"
    );
    assert!(earliest >= anchor_stop - Span::seconds(1), "{window}");
    assert_eq!(shown["retention"]["window_secs"], 2, "{shown}");
    assert_eq!(shown["retention"]["source"], "instance", "{shown}");

    // Before the new earliest: refused up front, nothing changes.
    let too_early = before_anchor
        .first()
        .map(|t| t.committed)
        .context("rows before the anchor")?;
    let (status, body) = stack
        .recover(id, json!({"point_in_time": rfc3339(too_early)}))
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Just after it: replayed from the anchor and the WAL kept after it.
    let (t, kept) = target_between(&rows, since.max(earliest)).context("a gap")?;
    let accepted = stack
        .recover_accepted(id, json!({"point_in_time": rfc3339(t)}))
        .await?;
    assert_eq!(
        accepted["recovery"]["recovered_from_backup"], anchor_id,
        "{accepted}"
    );
    stack
        .wait_status(id, "ACTIVE", "HEALTHY", Duration::from_secs(120))
        .await?;
    let mut conn = stack.connect_instance(id).await?;
    let mut want = tick_ids_upto(&before_anchor, i32::MAX);
    want.extend(tick_ids_upto(&rows, kept));
    assert_eq!(ids(&mut conn, "ticks").await?, want);
    stack.finish().await
}
