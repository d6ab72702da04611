//! The phase history `update_recovery` keeps in `recovery_phases`, on the real PostgreSQL:
//! each phase once, closed when the next starts or the recovery ends, whatever order and how
//! many times the broker delivers the guest's reports.

mod support;

use anyhow::Result;
use chrono::{DateTime, Utc};
use support::{Harness, Stored};
use trove_common::{
    recovery::RecoveryProgress,
    rpc::{
        RequestContext,
        conductor::{ConductorMethod, GuestErrorCode},
    },
    status::{InstanceTask, RecoveryPhase, RecoveryState},
};
use uuid::Uuid;

struct Recovery {
    instance: Uuid,
    id: Uuid,
}

/// A recovery of a RECOVERING instance, dispatched to its guest.
async fn dispatched(h: &Harness) -> Result<Recovery> {
    let instance = h.instance(InstanceTask::Recovering).await?;
    let backup = h.backup(instance).await?;
    let id = h.recovery(instance, backup, Stored::backup()).await?;
    h.tm.do_instance_recovery(RequestContext::default(), instance, backup, id)
        .await?;
    Ok(Recovery { instance, id })
}

/// Delivers an `update_recovery` from the instance's guest.
async fn report(
    h: &Harness,
    r: &Recovery,
    state: RecoveryState,
    phase: RecoveryPhase,
    progress: Option<RecoveryProgress>,
) -> Result<()> {
    let failed = state == RecoveryState::Failed;
    let msg = ConductorMethod::UpdateRecovery {
        instance_id: r.instance,
        recovery_id: r.id,
        sent: Utc::now().timestamp_micros() as f64 / 1e6,
        phase,
        state,
        progress,
        error: failed.then(|| "checksum of /var/lib/x differs".to_string()),
        error_code: failed.then_some(GuestErrorCode::ChecksumMismatch),
        outcome: None,
        preview: None,
        move_seq: None,
    };
    h.tm.update_recovery(&h.host, msg).await
}

type PhaseRow = (
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<sqlx::types::Json<RecoveryProgress>>,
);

async fn phases(h: &Harness, r: &Recovery) -> Result<Vec<PhaseRow>> {
    Ok(sqlx::query_as(
        "SELECT phase, started_at, ended_at, first_progress FROM recovery_phases \
         WHERE recovery_id = $1 ORDER BY rank",
    )
    .bind(r.id)
    .fetch_all(&h.pool)
    .await?)
}

fn names(rows: &[PhaseRow]) -> Vec<&str> {
    rows.iter().map(|p| p.0.as_str()).collect()
}

fn bytes(done: u64) -> Option<RecoveryProgress> {
    Some(RecoveryProgress {
        bytes_done: Some(done),
        bytes_total: Some(100),
        ..Default::default()
    })
}

#[tokio::test]
async fn redelivered_and_late_reports_leave_one_row_per_phase_in_order() -> Result<()> {
    let h = Harness::start().await?;
    let r = dispatched(&h).await?;
    use RecoveryPhase::*;
    use RecoveryState::Running;

    // The guest's first report of a phase carries no measure yet.
    report(&h, &r, Running, Fetching, Some(RecoveryProgress::default())).await?;
    report(&h, &r, Running, Fetching, bytes(10)).await?;
    report(&h, &r, Running, Fetching, bytes(40)).await?;
    // Redelivered, then a late report of an earlier phase after a newer one.
    report(&h, &r, Running, Fetching, bytes(10)).await?;
    report(&h, &r, Running, Verifying, None).await?;
    report(&h, &r, Running, Fetching, bytes(50)).await?;
    report(&h, &r, Running, Verifying, None).await?;

    let rows = phases(&h, &r).await?;
    assert_eq!(names(&rows), ["dispatched", "fetching", "verifying"]);
    // The late report did not reopen fetching; only the newest phase is open.
    let open: Vec<bool> = rows.iter().map(|p| p.2.is_none()).collect();
    assert_eq!(open, [false, false, true]);
    assert!(rows.windows(2).all(|w| w[0].2 <= Some(w[1].1)));
    // The rate's base is the phase's first progress that measures it, not an empty one, a
    // redelivered one or a later one.
    assert_eq!(rows[1].3.as_ref().map(|p| p.0.bytes_done), Some(Some(10)));
    Ok(())
}

#[tokio::test]
async fn a_failure_closes_the_phase_it_failed_in_and_keeps_its_code() -> Result<()> {
    let h = Harness::start().await?;
    let r = dispatched(&h).await?;

    report(
        &h,
        &r,
        RecoveryState::Running,
        RecoveryPhase::Fetching,
        bytes(5),
    )
    .await?;
    report(&h, &r, RecoveryState::Failed, RecoveryPhase::Fetching, None).await?;
    // A report after the end changes nothing.
    report(
        &h,
        &r,
        RecoveryState::Running,
        RecoveryPhase::Replaying,
        None,
    )
    .await?;

    let rows = phases(&h, &r).await?;
    assert_eq!(names(&rows), ["dispatched", "fetching"]);
    assert!(rows.iter().all(|p| p.2.is_some()), "every phase ended");
    let code: Option<String> =
        sqlx::query_scalar("SELECT error_code FROM recoveries WHERE id = $1")
            .bind(r.id)
            .fetch_one(&h.pool)
            .await?;
    assert_eq!(code.as_deref(), Some("checksum_mismatch"));
    Ok(())
}

#[tokio::test]
async fn a_completion_closes_the_last_phase_without_a_done_phase() -> Result<()> {
    let h = Harness::start().await?;
    let r = dispatched(&h).await?;

    report(
        &h,
        &r,
        RecoveryState::Running,
        RecoveryPhase::HealthCheck,
        None,
    )
    .await?;
    report(&h, &r, RecoveryState::Completed, RecoveryPhase::Done, None).await?;

    let rows = phases(&h, &r).await?;
    assert_eq!(names(&rows), ["dispatched", "health_check"]);
    assert!(rows.iter().all(|p| p.2.is_some()), "every phase ended");
    Ok(())
}
