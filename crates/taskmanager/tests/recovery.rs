//! The recovery path through the taskmanager, on the real PostgreSQL and RabbitMQ: what
//! `do_instance_recovery` sends the guest for each stored target, how it refuses a target it
//! cannot rebuild, and how the guest's reports and the sweeper's deadline settle a recovery.

mod support;

use anyhow::{Result, bail};
use chrono::{TimeZone, Utc};
use support::{Harness, Stored};
use trove_common::{
    recovery::{RecoveryOutcome, RecoveryProgress, RecoveryTarget, StopPoint, TargetKind},
    rpc::{
        RequestContext,
        conductor::{ConductorMethod, GuestErrorCode},
        guest::{BackupLocation, GuestMethod},
        topics,
    },
    status::{InstanceTask, RecoveryPhase, RecoveryState, ServiceStatus},
};
use uuid::Uuid;

/// One recovery of a RECOVERING instance from its completed backup, as the API queued it.
struct Queued {
    instance: Uuid,
    backup: Uuid,
    recovery: Uuid,
}

async fn queue(h: &Harness, target: Stored<'_>) -> Result<Queued> {
    let instance = h.instance(InstanceTask::Recovering).await?;
    let backup = h.backup(instance).await?;
    let recovery = h.recovery(instance, backup, target).await?;
    Ok(Queued {
        instance,
        backup,
        recovery,
    })
}

/// What the API's `do_instance_recovery` message asks for.
async fn dispatch(h: &Harness, q: &Queued) -> Result<()> {
    h.tm.do_instance_recovery(RequestContext::default(), q.instance, q.backup, q.recovery)
        .await
}

/// The one `do_recovery` the taskmanager sent, checked to go to the instance's guest.
async fn the_do_recovery(
    h: &Harness,
    q: &Queued,
) -> Result<(BackupLocation, Option<RecoveryTarget>)> {
    let mut sent = h.sent().await?;
    if sent.len() != 1 {
        bail!("expected one message to the guest, got {sent:?}");
    }
    match sent.remove(0) {
        (
            topic,
            GuestMethod::DoRecovery {
                recovery_id,
                backup_info,
                target,
                preview: false,
            },
        ) if topic == topics::guest(q.instance) && recovery_id == q.recovery => {
            Ok((backup_info, target))
        }
        other => bail!(
            "expected do_recovery of {} to its guest, got {other:?}",
            q.recovery
        ),
    }
}

/// What a guest report carries besides its state and phase.
#[derive(Default)]
struct Details {
    progress: Option<RecoveryProgress>,
    error: Option<&'static str>,
    error_code: Option<GuestErrorCode>,
    outcome: Option<RecoveryOutcome>,
}

/// Delivers an `update_recovery` from the instance's guest.
async fn report(
    h: &Harness,
    q: &Queued,
    state: RecoveryState,
    phase: RecoveryPhase,
    d: Details,
) -> Result<()> {
    let msg = ConductorMethod::UpdateRecovery {
        instance_id: q.instance,
        recovery_id: q.recovery,
        sent: Utc::now().timestamp_micros() as f64 / 1e6,
        phase,
        state,
        progress: d.progress,
        error: d.error.map(str::to_string),
        error_code: d.error_code,
        outcome: d.outcome,
        preview: None,
        move_seq: None,
    };
    h.tm.update_recovery(&h.host, msg).await
}

/// The recovery failed before the guest was involved, and the user reads why.
async fn assert_refused(h: &Harness, q: &Queued, why: &str) -> Result<()> {
    let row = h.recovery_row(q.recovery).await?;
    assert_eq!(
        (row.state, row.phase, row.error.as_deref(), row.finished),
        (
            RecoveryState::Failed,
            RecoveryPhase::Failed,
            Some(why),
            true
        )
    );
    let task = h.instance_row(q.instance).await?.task();
    assert_eq!(task, Some(InstanceTask::None), "the task is cleared");
    let fault = format!("Recovery {} failed: {why}.", q.recovery);
    let code = Some("recovery_refused".to_string());
    assert_eq!(h.faults(q.instance).await?, [(code, fault, String::new())]);
    assert!(h.sent().await?.is_empty(), "not run as a plain restore");
    Ok(())
}

#[tokio::test]
async fn a_recovery_to_a_backup_is_sent_without_a_wal_target() -> Result<()> {
    let h = Harness::start().await?;
    let q = queue(&h, Stored::backup()).await?;

    dispatch(&h, &q).await?;

    let (backup_info, target) = the_do_recovery(&h, &q).await?;
    assert_eq!(backup_info.id, q.backup);
    assert_eq!(backup_info.location, format!("{}/base.tar.zst", q.backup));
    assert_eq!(backup_info.checksum, "ab12");
    assert_eq!(target, None);
    let row = h.recovery_row(q.recovery).await?;
    assert_eq!(
        (row.state, row.phase),
        (RecoveryState::Running, RecoveryPhase::Dispatched)
    );
    assert_eq!(h.unsent().await?, 0, "the message reached the broker");
    Ok(())
}

/// Queues a recovery whose row stores `stored`, dispatches it, and checks the guest is sent
/// `stop` along `timeline` in the recovered instance's own WAL.
async fn assert_dispatched_as(stored: Stored<'_>, stop: StopPoint, timeline: u32) -> Result<()> {
    let h = Harness::start().await?;
    let q = queue(&h, stored).await?;

    dispatch(&h, &q).await?;

    let (_, target) = the_do_recovery(&h, &q).await?;
    let expected = RecoveryTarget::new(stop, timeline, q.instance);
    assert_eq!(target, Some(expected));
    Ok(())
}

#[tokio::test]
async fn a_recovery_to_a_time_is_sent_with_its_time_timeline_and_wal() -> Result<()> {
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 17, 0, 0).single();
    let at = at.expect("a valid date");
    assert_dispatched_as(Stored::time(at, 2), StopPoint::Time(at), 2).await
}

#[tokio::test]
async fn a_recovery_to_the_latest_is_sent_with_no_stop_time() -> Result<()> {
    assert_dispatched_as(Stored::latest(3), StopPoint::Latest, 3).await
}

#[tokio::test]
async fn a_redelivered_dispatch_sends_nothing_more() -> Result<()> {
    let h = Harness::start().await?;
    let q = queue(&h, Stored::backup()).await?;
    dispatch(&h, &q).await?;

    dispatch(&h, &q).await?;

    the_do_recovery(&h, &q).await?;
    let row = h.recovery_row(q.recovery).await?;
    assert_eq!(
        (row.state, row.phase),
        (RecoveryState::Running, RecoveryPhase::Dispatched)
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_stored_target_fails_the_recovery_with_a_fault() -> Result<()> {
    let h = Harness::start().await?;
    let q = queue(&h, Stored::raw("name", None, Some(1))).await?;

    dispatch(&h, &q).await?;

    assert_refused(
        &h,
        &q,
        "the recovery's stored target kind 'name' is unknown",
    )
    .await
}

#[tokio::test]
async fn a_time_target_stored_without_its_time_fails_the_recovery_with_a_fault() -> Result<()> {
    let h = Harness::start().await?;
    let q = queue(&h, Stored::raw(TargetKind::Time.as_str(), None, Some(1))).await?;

    dispatch(&h, &q).await?;

    assert_refused(&h, &q, "the recovery's time target has no time recorded").await
}

#[tokio::test]
async fn a_late_completion_settles_a_recovery_the_sweeper_timed_out() -> Result<()> {
    let h = Harness::start().await?;
    let q = queue(&h, Stored::latest(1).overdue()).await?;
    dispatch(&h, &q).await?;
    h.tm.sweep_once().await?;
    let timed_out = h.recovery_row(q.recovery).await?;
    assert_eq!(
        (timed_out.state, timed_out.phase),
        (RecoveryState::Failed, RecoveryPhase::TimedOut)
    );
    let task = h.instance_row(q.instance).await?.task();
    assert_eq!(task, Some(InstanceTask::RecoveryError));
    assert_eq!(h.faults(q.instance).await?.len(), 1, "the timeout is shown");
    let outcome = RecoveryOutcome {
        new_timeline: Some(2),
        stop_lsn: Some("0/3000100".into()),
        duration_ms: Some(4200),
        ..Default::default()
    };

    let done = Details {
        outcome: Some(outcome.clone()),
        ..Default::default()
    };
    report(
        &h,
        &q,
        RecoveryState::Completed,
        RecoveryPhase::HealthCheck,
        done,
    )
    .await?;

    let row = h.recovery_row(q.recovery).await?;
    assert_eq!(
        (row.state, row.phase, row.error),
        (RecoveryState::Completed, RecoveryPhase::Done, None)
    );
    assert_eq!(row.outcome.map(|o| o.0), Some(outcome));
    let inst = h.instance_row(q.instance).await?;
    assert_eq!(inst.task(), Some(InstanceTask::None));
    assert_eq!(inst.timeline, Some(2), "the next recovery plans on it");
    assert_eq!(
        inst.status_description,
        ServiceStatus::Healthy.description()
    );
    let faults = h.faults(q.instance).await?;
    assert!(faults.is_empty(), "the timeout's fault is cleared");
    Ok(())
}

#[tokio::test]
async fn a_finished_recovery_ignores_later_reports() -> Result<()> {
    let h = Harness::start().await?;
    let q = queue(&h, Stored::backup()).await?;
    dispatch(&h, &q).await?;
    let health = RecoveryPhase::HealthCheck;
    report(&h, &q, RecoveryState::Completed, health, Details::default()).await?;

    let cut = RecoveryPhase::CuttingOver;
    report(&h, &q, RecoveryState::Failed, cut, Details::default()).await?;
    let replay = RecoveryPhase::Replaying;
    report(&h, &q, RecoveryState::Running, replay, Details::default()).await?;

    let row = h.recovery_row(q.recovery).await?;
    assert_eq!(
        (row.state, row.phase),
        (RecoveryState::Completed, RecoveryPhase::Done)
    );
    assert!(h.faults(q.instance).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_guest_failure_keeps_the_data_and_shows_its_code_in_the_fault() -> Result<()> {
    let h = Harness::start().await?;
    let q = queue(&h, Stored::backup()).await?;
    dispatch(&h, &q).await?;
    let progress = RecoveryProgress {
        replayed_lsn: Some("0/2800000".into()),
        ..Default::default()
    };
    let running = Details {
        progress: Some(progress.clone()),
        ..Default::default()
    };
    let replay = RecoveryPhase::Replaying;
    report(&h, &q, RecoveryState::Running, replay, running).await?;
    assert_eq!(h.progress(q.recovery).await?, Some(progress));

    let failed = Details {
        error: Some("replay stopped before the target"),
        error_code: Some(GuestErrorCode::TargetNotReached),
        ..Default::default()
    };
    report(&h, &q, RecoveryState::Failed, replay, failed).await?;

    let row = h.recovery_row(q.recovery).await?;
    assert_eq!((row.state, row.phase), (RecoveryState::Failed, replay));
    assert_eq!(
        row.error.as_deref(),
        Some("replay stopped before the target")
    );
    let task = h.instance_row(q.instance).await?.task();
    assert_eq!(task, Some(InstanceTask::None));
    // Everyone reads the phase and the code; the guest's own words are the (admin) details.
    let message = format!(
        "Recovery {} from backup {} failed during replaying (target_not_reached); the instance still runs its previous data.",
        q.recovery, q.backup
    );
    let details = "target_not_reached: replay stopped before the target".to_string();
    let code = Some("target_not_reached".to_string());
    assert_eq!(h.faults(q.instance).await?, [(code, message, details)]);
    Ok(())
}
