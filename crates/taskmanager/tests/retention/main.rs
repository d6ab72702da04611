//! Retention on the real PostgreSQL and the object store the tests are given (S3 on Swift when
//! `TROVE_TEST_S3_*` is set): one pass removes the expired backups and the WAL only they needed,
//! keeps what a recovery or restore uses, keeps a deleted instance's objects for its window and
//! then removes them, and goes on past an instance it cannot handle. Windows are seconds long;
//! ages are set in the rows, so nothing waits.

#[path = "../support/mod.rs"]
mod support;
mod usage;
mod world;

use anyhow::Result;
use serde_json::json;
use support::Stored;
use tokio_util::sync::CancellationToken;
use trove_common::{
    recovery::WalTimeline,
    status::{InstanceTask, ServiceStatus},
    testkit::insert_instance,
};
use trove_taskmanager::retention::segment_name;
use world::World;

#[tokio::test]
async fn expired_backups_and_the_wal_only_they_needed_leave_the_store() -> Result<()> {
    let w = World::start().await?;
    let i = w.instance(100, 1).await?;
    // Newest first after sorting: fresh (50 s), anchor (150 s, the newest before the cutoff),
    // then two older ones the window no longer needs.
    let oldest = w.backup(i, 400, Some("0/2000028"), "0/2000028").await?;
    let old = w.backup(i, 200, Some("0/4000028"), "0/4000028").await?;
    let anchor = w.backup(i, 150, Some("0/5000060"), "0/5000060").await?;
    let fresh = w.backup(i, 50, Some("0/7000028"), "0/7000028").await?;
    let all = [oldest, old, anchor, fresh];
    // Timeline 1 holds segments 1, 3..6 (2 is a gap), timeline 2 forked in segment 6.
    for segno in [1, 3, 4, 5, 6] {
        w.segment(i, 1, segno).await?;
    }
    for segno in [6, 7, 8] {
        w.segment(i, 2, segno).await?;
    }
    w.history(i, 2).await?;
    let gap = json!([[segment_name(1, 2), segment_name(1, 2)]]);
    w.reported(i, 1, None, 1, 6, gap.clone()).await?;
    w.reported(i, 2, Some(1), 6, 8, json!([])).await?;

    let report = w.pass().await?;

    assert_eq!(report.backups_expired.len(), 2, "{report:?}");
    assert_eq!(w.visible_backups(&all).await?, [anchor, fresh]);
    assert_eq!(w.stored_backups(&all).await?, [anchor, fresh]);
    let (segments, histories) = w.stored_wal(i).await?;
    assert_eq!(
        segments,
        [(1, 5), (1, 6), (2, 6), (2, 7), (2, 8)],
        "everything from the anchor's start segment on stays"
    );
    assert_eq!(histories, [2]);
    assert_eq!(
        report.wal_objects, 6,
        "three segments, a chunk and a seal each"
    );
    assert_eq!(
        w.floors(i).await?,
        [
            (1, segment_name(1, 5), json!([])),
            (2, segment_name(2, 6), json!([])),
        ],
        "the first segment moved up to the cut and the gap below it is gone"
    );

    // Idempotent: a second pass finds nothing more to do.
    let again = w.pass().await?;
    assert!(
        again.backups_expired.is_empty() && again.wal_objects == 0 && again.failed.is_empty(),
        "{again:?}"
    );
    assert_eq!(w.stored_backups(&all).await?, [anchor, fresh]);

    // A guest report made before the pruning names the old first segment: it does not move back.
    let stale = WalTimeline {
        timeline: 1,
        first_segment: Some(segment_name(1, 1)),
        last_segment: Some(segment_name(1, 6)),
        gaps: vec![(segment_name(1, 2), segment_name(1, 2))],
        ..Default::default()
    };
    let sent = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    w.h.tm
        .update_wal(&w.h.host, i, sent, 2, vec![stale])
        .await?;
    assert_eq!(w.floors(i).await?[0], (1, segment_name(1, 5), json!([])));
    Ok(())
}

#[tokio::test]
async fn backups_in_use_and_the_newest_min_backups_stay_with_their_wal() -> Result<()> {
    let w = World::start().await?;
    let i = w.instance(100, 3).await?;
    let expired = w.backup(i, 1100, Some("0/1000028"), "0/1000028").await?;
    let restoring = w.backup(i, 1000, Some("0/2000028"), "0/2000028").await?;
    let recovering = w.backup(i, 900, Some("0/3000028"), "0/3000028").await?;
    // Its row lacks the start: the manifest's is read.
    let third = w.backup(i, 800, None, "0/4000028").await?;
    let second = w.backup(i, 700, Some("0/5000028"), "0/5000028").await?;
    let newest = w.backup(i, 600, Some("0/6000028"), "0/6000028").await?;
    let failed = w.failed_backup(i, 2000).await?;
    let all = [expired, restoring, recovering, third, second, newest];
    // A recovery in place runs from one backup; a new instance is being built from another.
    w.h.recovery(i, recovering, Stored::backup()).await?;
    let building =
        insert_instance(&w.h.pool, None, InstanceTask::Building, ServiceStatus::New).await?;
    sqlx::query("UPDATE instances SET restored_from_backup = $2 WHERE id = $1")
        .bind(building)
        .bind(restoring)
        .execute(&w.h.pool)
        .await?;
    for segno in 1..=6 {
        w.segment(i, 1, segno).await?;
    }
    w.reported(i, 1, None, 1, 6, json!([])).await?;

    let report = w.pass().await?;

    assert_eq!(report.backups_expired, [expired, failed], "{report:?}");
    let kept = [restoring, recovering, third, second, newest];
    assert_eq!(w.visible_backups(&all).await?, kept);
    assert_eq!(w.stored_backups(&all).await?, kept);
    assert!(w.visible_backups(&[failed]).await?.is_empty());
    let (segments, _) = w.stored_wal(i).await?;
    assert_eq!(segments, [(1, 2), (1, 3), (1, 4), (1, 5), (1, 6)]);
    assert_eq!(w.floors(i).await?[0].1, segment_name(1, 2));

    // Once the restore is built and the recovery done, both may expire like any other.
    sqlx::query("UPDATE instances SET task_id = 1 WHERE id = $1")
        .bind(building)
        .execute(&w.h.pool)
        .await?;
    sqlx::query("UPDATE recoveries SET state = 'COMPLETED' WHERE instance_id = $1")
        .bind(i)
        .execute(&w.h.pool)
        .await?;
    w.pass().await?;
    assert_eq!(w.stored_backups(&all).await?, [third, second, newest]);
    let (segments, _) = w.stored_wal(i).await?;
    assert_eq!(
        segments,
        [(1, 4), (1, 5), (1, 6)],
        "the manifest's start counts"
    );
    Ok(())
}

#[tokio::test]
async fn after_a_recovery_to_an_earlier_point_the_base_of_the_new_lineage_stays() -> Result<()> {
    let w = World::start().await?;
    let i = w.instance(100, 0).await?;
    // Timeline 2 forked from timeline 1 at 0/3000000, back before `abandoned` was taken.
    let older = w.backup(i, 500, Some("0/1000028"), "0/1000028").await?;
    w.stopped_at(older, 1, "0/1000100").await?;
    let base = w.backup(i, 400, Some("0/2000028"), "0/2000028").await?;
    w.stopped_at(base, 1, "0/2000100").await?;
    let abandoned = w.backup(i, 300, Some("0/4000028"), "0/4000028").await?;
    w.stopped_at(abandoned, 1, "0/4000100").await?;
    sqlx::query("UPDATE instances SET timeline = 2 WHERE id = $1")
        .bind(i)
        .execute(&w.h.pool)
        .await?;
    w.reported(i, 1, None, 1, 4, json!([])).await?;
    w.reported(i, 2, Some(1), 3, 5, json!([])).await?;
    sqlx::query(
        "UPDATE wal_timelines SET switch_lsn = '0/3000000' WHERE instance_id = $1 AND timeline = 2",
    )
    .bind(i)
    .execute(&w.h.pool)
    .await?;
    for (tli, segno) in [(1, 1), (1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (2, 5)] {
        w.segment(i, tli, segno).await?;
    }

    w.pass().await?;

    let all = [older, base, abandoned];
    assert_eq!(w.stored_backups(&all).await?, [base, abandoned]);
    let (segments, _) = w.stored_wal(i).await?;
    assert_eq!(
        segments,
        [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (2, 5)],
        "timeline 2's past from the base on stays"
    );
    Ok(())
}

#[tokio::test]
async fn a_deleted_instance_keeps_its_objects_for_its_window_then_loses_them_all() -> Result<()> {
    let w = World::start().await?;
    let i = w.instance(100, 1).await?;
    let backup = w.backup(i, 500, Some("0/2000028"), "0/2000028").await?;
    for segno in [2, 3] {
        w.segment(i, 1, segno).await?;
    }
    w.history(i, 2).await?;
    w.reported(i, 1, None, 2, 3, json!([])).await?;
    let delete_ago = |secs: f64| {
        sqlx::query(
            "UPDATE instances SET deleted = true, \
             deleted_at = now() - make_interval(secs => $2) WHERE id = $1",
        )
        .bind(i)
        .bind(secs)
        .execute(&w.h.pool)
    };
    delete_ago(50.0).await?;

    let report = w.pass().await?;

    assert!(report.purged.is_empty(), "{report:?}");
    assert_eq!(w.stored_backups(&[backup]).await?, [backup]);
    assert_eq!(w.stored_wal(i).await?, (vec![(1, 2), (1, 3)], vec![2]));

    delete_ago(150.0).await?;
    let report = w.pass().await?;

    assert_eq!(report.purged, [i], "{report:?}");
    assert!(w.stored_backups(&[backup]).await?.is_empty());
    assert!(w.visible_backups(&[backup]).await?.is_empty());
    assert_eq!(w.stored_wal(i).await?, (vec![], vec![]));
    assert!(w.floors(i).await?.is_empty());
    let purged: bool =
        sqlx::query_scalar("SELECT store_purged_at IS NOT NULL FROM instances WHERE id = $1")
            .bind(i)
            .fetch_one(&w.h.pool)
            .await?;
    assert!(purged);
    let next = w.pass().await?;
    assert_eq!(
        next.instances, 0,
        "a purged instance is not looked at again"
    );
    Ok(())
}

#[tokio::test]
async fn a_deleted_instance_being_restored_from_keeps_its_objects() -> Result<()> {
    let w = World::start().await?;
    let i = w.instance(100, 1).await?;
    let backup = w.backup(i, 500, Some("0/2000028"), "0/2000028").await?;
    w.segment(i, 1, 2).await?;
    sqlx::query(
        "UPDATE instances SET deleted = true, deleted_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(i)
    .execute(&w.h.pool)
    .await?;
    let building =
        insert_instance(&w.h.pool, None, InstanceTask::Building, ServiceStatus::New).await?;
    sqlx::query("UPDATE instances SET restored_from_backup = $2 WHERE id = $1")
        .bind(building)
        .bind(backup)
        .execute(&w.h.pool)
        .await?;

    let report = w.pass().await?;

    assert_eq!(report.deferred, [i], "{report:?}");
    assert_eq!(w.stored_backups(&[backup]).await?, [backup]);
    assert_eq!(w.stored_wal(i).await?.0, [(1, 2)]);
    Ok(())
}

#[tokio::test]
async fn an_instance_that_fails_or_is_taken_does_not_stop_the_pass() -> Result<()> {
    let w = World::start().await?;
    // Its WAL row cannot be read (gaps that are no segment names): its WAL step fails.
    let broken = w.instance(100, 0).await?;
    w.backup(broken, 400, Some("0/2000028"), "0/2000028")
        .await?;
    w.backup(broken, 300, Some("0/3000028"), "0/3000028")
        .await?;
    sqlx::query(
        "INSERT INTO wal_timelines (instance_id, timeline, first_segment, gaps) \
         VALUES ($1, 1, '000000010000000000000001', '[[1, 2]]')",
    )
    .bind(broken)
    .execute(&w.h.pool)
    .await?;
    // Another taskmanager is working on this one right now.
    let taken = w.instance(100, 0).await?;
    let taken_old = w.backup(taken, 400, Some("0/2000028"), "0/2000028").await?;
    w.backup(taken, 300, Some("0/3000028"), "0/3000028").await?;
    // Nothing at all: no backups, no WAL.
    let empty = w.instance(100, 0).await?;
    let fine = w.instance(100, 0).await?;
    let fine_old = w.backup(fine, 400, Some("0/2000028"), "0/2000028").await?;
    let fine_anchor = w.backup(fine, 300, Some("0/3000028"), "0/3000028").await?;
    w.segment(fine, 1, 2).await?;
    w.segment(fine, 1, 3).await?;

    let mut other = w.h.pool.begin().await?;
    let locked: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('trove-retention/' || $1::text, 0))",
    )
    .bind(taken)
    .fetch_one(&mut *other)
    .await?;
    assert!(locked);
    let report =
        w.h.tm
            .retention_pass(None, &CancellationToken::new())
            .await?;

    assert_eq!(report.failed, [broken], "{report:?}");
    assert_eq!(report.deferred, [taken]);
    assert_eq!(report.instances, 4, "{empty} included");
    assert_eq!(
        w.stored_backups(&[fine_old, fine_anchor]).await?,
        [fine_anchor]
    );
    assert_eq!(w.stored_wal(fine).await?.0, [(1, 3)]);
    assert_eq!(w.stored_backups(&[taken_old]).await?, [taken_old]);

    // The other taskmanager is done: the next pass takes the instance.
    other.rollback().await?;
    w.pass().await?;
    assert!(w.stored_backups(&[taken_old]).await?.is_empty());
    Ok(())
}
