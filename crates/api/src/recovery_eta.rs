//! The time left of a running recovery, estimated from the rate measured in its current phase.
//!
//! Formula: in a phase that moves a measured quantity `q` toward a known goal `g` (bytes of the
//! archive in `fetching`/`verifying`: `bytes_done` toward `bytes_total`; WAL in `replaying`:
//! `replayed_lsn` toward `target_lsn`, else `store_end_lsn`), take the first sample of the phase
//! that carries `q`, `(q0, t0)`, and the latest `(q1, t1)`:
//!
//! ```text
//! rate = (q1 - q0) / (t1 - t0)
//! left = (g - q1) / rate - (now - t1)      clamped at 0
//! ```
//!
//! Not estimable (`None`) in a phase without such a quantity, before two samples an instant
//! apart, while `q` has not moved, or when a sample lacks the quantity or its goal.

use chrono::{DateTime, Utc};
use trove_common::{
    recovery::{RecoveryProgress, parse_lsn},
    status::RecoveryPhase,
};

/// Progress as reported at a moment.
#[derive(Debug, Clone)]
pub struct Sample<'a> {
    pub at: DateTime<Utc>,
    pub progress: &'a RecoveryProgress,
}

/// Where a phase is and where it ends, in one unit.
fn position(phase: RecoveryPhase, p: &RecoveryProgress) -> Option<(u64, u64)> {
    match phase {
        RecoveryPhase::Fetching | RecoveryPhase::Verifying => Some((p.bytes_done?, p.bytes_total?)),
        RecoveryPhase::Replaying => {
            let goal = p.target_lsn.as_deref().or(p.store_end_lsn.as_deref())?;
            Some((parse_lsn(p.replayed_lsn.as_deref()?)?, parse_lsn(goal)?))
        }
        _ => None,
    }
}

/// Seconds left in `phase`, from its first and latest samples, as of `now`.
pub fn time_left(
    phase: RecoveryPhase,
    first: &Sample<'_>,
    latest: &Sample<'_>,
    now: DateTime<Utc>,
) -> Option<u64> {
    let (q1, goal) = position(phase, latest.progress)?;
    if q1 >= goal {
        return Some(0);
    }
    // The base must be in the same unit; a first sample without it measures nothing.
    let (q0, _) = position(phase, first.progress)?;
    let elapsed_ms = (latest.at - first.at).num_milliseconds();
    if elapsed_ms <= 0 || q1 <= q0 {
        return None;
    }
    let rate_per_ms = (q1 - q0) as f64 / elapsed_ms as f64;
    let left_ms = (goal - q1) as f64 / rate_per_ms;
    let since_ms = (now - latest.at).num_milliseconds().max(0) as f64;
    Some(((left_ms - since_ms).max(0.0) / 1000.0).ceil() as u64)
}

/// The estimate from what the control database keeps: the recovery's `phase`, its latest
/// `progress` (reported at `updated`) and the first progress of that phase (at `first_at`).
/// Progress that does not parse is not estimable, not an error: it came from a guest.
pub fn from_stored(
    phase: &str,
    latest: Option<&serde_json::Value>,
    updated: DateTime<Utc>,
    first: Option<&serde_json::Value>,
    first_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<u64> {
    let phase = RecoveryPhase::parse(phase)?;
    let parse = |v: &serde_json::Value| serde_json::from_value::<RecoveryProgress>(v.clone()).ok();
    let (latest, first) = (parse(latest?)?, parse(first?)?);
    time_left(
        phase,
        &Sample {
            at: first_at?,
            progress: &first,
        },
        &Sample {
            at: updated,
            progress: &latest,
        },
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn bytes(done: u64, total: u64) -> RecoveryProgress {
        RecoveryProgress {
            bytes_done: Some(done),
            bytes_total: Some(total),
            ..Default::default()
        }
    }

    fn lsn(at: &str, target: Option<&str>, end: Option<&str>) -> RecoveryProgress {
        RecoveryProgress {
            replayed_lsn: Some(at.into()),
            target_lsn: target.map(Into::into),
            store_end_lsn: end.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn fetching_extrapolates_the_byte_rate() {
        let t0 = Utc::now();
        let (a, b) = (bytes(100, 1_000), bytes(300, 1_000));
        let first = Sample {
            at: t0,
            progress: &a,
        };
        let latest = Sample {
            at: t0 + Duration::seconds(2),
            progress: &b,
        };
        // 100 B/s, 700 B to go: 7 s at the latest report, 4 s three seconds later.
        assert_eq!(
            time_left(RecoveryPhase::Fetching, &first, &latest, latest.at),
            Some(7)
        );
        assert_eq!(
            time_left(
                RecoveryPhase::Fetching,
                &first,
                &latest,
                latest.at + Duration::seconds(3)
            ),
            Some(4)
        );
        // Overdue estimates say zero, not a negative time.
        assert_eq!(
            time_left(
                RecoveryPhase::Verifying,
                &first,
                &latest,
                latest.at + Duration::seconds(60)
            ),
            Some(0)
        );
    }

    #[test]
    fn replay_uses_the_target_lsn_or_else_the_end_of_the_store() {
        let t0 = Utc::now();
        let a = lsn("0/1000000", Some("0/5000000"), None);
        let b = lsn("0/2000000", Some("0/5000000"), None);
        let first = Sample {
            at: t0,
            progress: &a,
        };
        let latest = Sample {
            at: t0 + Duration::seconds(1),
            progress: &b,
        };
        // 16 MiB/s, 48 MiB to go.
        assert_eq!(
            time_left(RecoveryPhase::Replaying, &first, &latest, latest.at),
            Some(3)
        );
        let c = lsn("0/2000000", None, Some("0/3000000"));
        let latest = Sample {
            at: latest.at,
            progress: &c,
        };
        assert_eq!(
            time_left(RecoveryPhase::Replaying, &first, &latest, latest.at),
            Some(1)
        );
    }

    #[test]
    fn not_estimable_without_a_measured_rate() {
        let t0 = Utc::now();
        let (a, b) = (bytes(100, 1_000), bytes(300, 1_000));
        let at = |s| t0 + Duration::seconds(s);
        let s = |t, p| Sample {
            at: at(t),
            progress: p,
        };
        // One sample only (first == latest): no elapsed time.
        assert_eq!(
            time_left(RecoveryPhase::Fetching, &s(0, &a), &s(0, &a), at(1)),
            None
        );
        // Nothing moved.
        assert_eq!(
            time_left(RecoveryPhase::Fetching, &s(0, &a), &s(5, &a), at(5)),
            None
        );
        // A phase with no measured quantity.
        assert_eq!(
            time_left(RecoveryPhase::CuttingOver, &s(0, &a), &s(2, &b), at(2)),
            None
        );
        // Replay without a goal, or with garbage the guest sent.
        let (x, y) = (lsn("0/1", None, None), lsn("0/2", None, None));
        assert_eq!(
            time_left(RecoveryPhase::Replaying, &s(0, &x), &s(1, &y), at(1)),
            None
        );
        let (x, y) = (lsn("0/1", Some("zz"), None), lsn("0/2", Some("zz"), None));
        assert_eq!(
            time_left(RecoveryPhase::Replaying, &s(0, &x), &s(1, &y), at(1)),
            None
        );
        // The base lacks the quantity.
        let empty = RecoveryProgress::default();
        assert_eq!(
            time_left(RecoveryPhase::Fetching, &s(0, &empty), &s(2, &b), at(2)),
            None
        );
    }

    #[test]
    fn stored_progress_is_read_or_not_estimable() {
        let t0 = Utc::now();
        let t1 = t0 + Duration::seconds(2);
        let first = serde_json::json!({"bytes_done": 100, "bytes_total": 1000});
        let latest = serde_json::json!({"bytes_done": 300, "bytes_total": 1000});
        let est =
            |phase, l: Option<&serde_json::Value>, f, at| from_stored(phase, l, t1, f, at, t1);
        assert_eq!(
            est("fetching", Some(&latest), Some(&first), Some(t0)),
            Some(7)
        );
        assert_eq!(
            est("no such phase", Some(&latest), Some(&first), Some(t0)),
            None
        );
        assert_eq!(est("fetching", None, Some(&first), Some(t0)), None);
        assert_eq!(est("fetching", Some(&latest), Some(&first), None), None);
        let odd = serde_json::json!({"bytes_done": "many"});
        assert_eq!(est("fetching", Some(&odd), Some(&first), Some(t0)), None);
    }

    #[test]
    fn a_finished_phase_has_nothing_left() {
        let t0 = Utc::now();
        let a = bytes(1_000, 1_000);
        let s = Sample {
            at: t0,
            progress: &a,
        };
        assert_eq!(time_left(RecoveryPhase::Fetching, &s, &s, t0), Some(0));
    }
}
