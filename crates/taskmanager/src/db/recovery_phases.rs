//! The phase history of a recovery (`recovery_phases`): one row per phase entered, closed when
//! the next one starts or the recovery ends. Callers hold the recovery row's lock, so reports of
//! one recovery are applied one at a time. A moved preview passes through its phases again: each
//! pass is a round of its own (the recovery's `preview_moves` when it is entered).

use sqlx::{PgConnection, types::Json};
use trove_common::{recovery::RecoveryProgress, status::RecoveryPhase};
use uuid::Uuid;

/// The recovery's current round, for a query whose `$1` is the recovery's id.
const ROUND: &str = "(SELECT preview_moves FROM recoveries WHERE id = $1)";

/// Records that the recovery is in `phase` now. A redelivered report finds its row; a late
/// report of a phase ranked below the newest recorded one is history already and changes
/// nothing. Entering a new phase closes the one before. The words for an end (`done`,
/// `failed`, `timed out`, `cancelled`) are no phase of work: ending is [`close_open`]'s.
pub async fn enter(
    conn: &mut PgConnection,
    recovery_id: Uuid,
    phase: RecoveryPhase,
    progress: Option<&RecoveryProgress>,
) -> sqlx::Result<()> {
    if matches!(
        phase,
        RecoveryPhase::Done
            | RecoveryPhase::Failed
            | RecoveryPhase::TimedOut
            | RecoveryPhase::Cancelled
    ) {
        return Ok(());
    }
    // Ranks compare within the current round: a move starts over at `replaying`.
    let newest: Option<i32> = sqlx::query_scalar(&format!(
        "SELECT max(rank) FROM recovery_phases WHERE recovery_id = $1 AND round = {ROUND}"
    ))
    .bind(recovery_id)
    .fetch_one(&mut *conn)
    .await?;
    let rank = phase.rank();
    if newest.is_some_and(|n| rank < n) {
        return Ok(());
    }
    if newest.is_none_or(|n| rank > n) {
        close_open(conn, recovery_id).await?;
        sqlx::query(&format!(
            "INSERT INTO recovery_phases (recovery_id, phase, rank, round) \
             VALUES ($1, $2, $3, {ROUND}) ON CONFLICT (recovery_id, round, phase) DO NOTHING"
        ))
        .bind(recovery_id)
        .bind(phase)
        .bind(rank)
        .execute(&mut *conn)
        .await?;
    }
    // The first progress seen in a phase is the base its rate is measured from. A base that
    // lacks a measure the new report carries (the guest's first report of a phase is often
    // empty) measures nothing, so the first report carrying it takes its place.
    if let Some(p) = progress {
        sqlx::query(
            "UPDATE recovery_phases SET first_progress = $3, first_progress_at = now() \
             WHERE recovery_id = $1 AND phase = $2 AND ended_at IS NULL AND (first_progress IS NULL \
             OR (NOT first_progress ? 'bytes_done' AND $3 ? 'bytes_done') \
             OR (NOT first_progress ? 'replayed_lsn' AND $3 ? 'replayed_lsn'))",
        )
        .bind(recovery_id)
        .bind(phase)
        .bind(Json(p))
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Ends the open phase, if any: the recovery moved on or finished.
pub async fn close_open(conn: &mut PgConnection, recovery_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE recovery_phases SET ended_at = now() WHERE recovery_id = $1 AND ended_at IS NULL",
    )
    .bind(recovery_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_rank_in_the_order_a_recovery_moves() {
        let order = [
            RecoveryPhase::Queued,
            RecoveryPhase::Dispatched,
            RecoveryPhase::Fetching,
            RecoveryPhase::Verifying,
            RecoveryPhase::Replaying,
            RecoveryPhase::VerifyingTarget,
            RecoveryPhase::CuttingOver,
            RecoveryPhase::HealthCheck,
            RecoveryPhase::Done,
        ];
        assert!(order.windows(2).all(|w| w[0].rank() < w[1].rank()));
    }
}
