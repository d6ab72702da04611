//! The `sent` time of a guest report, as the conductor orders reports by it.

use chrono::Utc;
use trove_common::timefmt::epoch_seconds;

/// `sent` no later than now. Reports are ordered per instance by `sent` (`conductor_lastseen`),
/// so a time in the future, from a skewed clock or a hostile sender, would make every later
/// report look stale and freeze the instance's status until that time came.
pub fn clamp(sent: f64) -> f64 {
    clamp_at(sent, epoch_seconds(Utc::now()))
}

fn clamp_at(sent: f64, now: f64) -> f64 {
    if sent.is_finite() { sent.min(now) } else { now }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_sent_becomes_now_and_a_past_one_stays() {
        let now = 1_764_090_000.5;
        assert_eq!(clamp_at(now + 86_400.0, now), now);
        assert_eq!(clamp_at(f64::MAX, now), now);
        assert_eq!(clamp_at(f64::INFINITY, now), now);
        assert_eq!(clamp_at(now - 3.25, now), now - 3.25);
        assert_eq!(clamp_at(now, now), now);
    }

    #[test]
    fn clamping_uses_the_current_clock() {
        let before = epoch_seconds(Utc::now());
        let clamped = clamp(before + 86_400.0);
        assert!(clamped >= before && clamped < before + 5.0, "{clamped}");
    }
}
