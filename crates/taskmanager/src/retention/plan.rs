//! Which backups a policy keeps, and how much WAL they need: pure decisions, tested alone.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use trove_common::{retention::Policy, status::BackupState};
use uuid::Uuid;

use crate::db::retention::BackupFacts;

/// What one pass does with an instance's backups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Completed backups that stay, in use ones included.
    pub kept: Vec<Uuid>,
    /// Backups to delete.
    pub expired: Vec<Uuid>,
}

/// Keeps every completed backup that stopped after `cutoff`; the newest one at or before it (the
/// base a recovery to just after the cutoff replays from), and the newest one at or before it
/// among those that serve the instance's current lineage (`on_lineage`: after a recovery to an
/// earlier point, a newer backup may lie on the abandoned branch); the newest `min_backups`; and
/// every backup a recovery or restore uses. Other completed backups expire, and so do failed
/// ones created before the cutoff. Backups still being taken are never touched.
pub fn decide(
    backups: &[BackupFacts],
    in_use: &HashSet<Uuid>,
    on_lineage: &HashSet<Uuid>,
    policy: Policy,
    cutoff: DateTime<Utc>,
) -> Decision {
    let mut completed: Vec<&BackupFacts> = backups
        .iter()
        .filter(|b| b.state == BackupState::Completed)
        .collect();
    // Newest first; the id breaks ties so that two taskmanagers decide alike.
    completed.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    let anchor = completed.iter().position(|b| b.at <= cutoff);
    let lineage_anchor = completed
        .iter()
        .position(|b| b.at <= cutoff && on_lineage.contains(&b.id));
    let min = usize::try_from(policy.min_backups).unwrap_or(0);
    let mut d = Decision::default();
    for (i, b) in completed.iter().enumerate() {
        let anchored = Some(i) == anchor || Some(i) == lineage_anchor;
        let keep = b.at > cutoff || anchored || i < min || in_use.contains(&b.id);
        if keep {
            d.kept.push(b.id);
        } else {
            d.expired.push(b.id);
        }
    }
    d.expired.extend(
        backups
            .iter()
            .filter(|b| b.state == BackupState::Failed && b.at <= cutoff)
            .filter(|b| !in_use.contains(&b.id))
            .map(|b| b.id),
    );
    d
}

/// How much of an instance's WAL may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalCut {
    /// Segments numbered below this one, on every timeline: no kept backup starts before it,
    /// and timelines only go forward in LSN, so no replay from a kept backup reads them.
    Below(u64),
    /// No backup is kept: segments written entirely before this time, oldest first.
    WrittenBefore(DateTime<Utc>),
    /// Nothing, this pass: a kept backup's start is unknown, or a first backup is being taken
    /// (its start is not recorded yet, and it will need the WAL from there).
    Nothing,
}

/// The cut for kept backups starting at segments `starts` (None where unknown).
pub fn wal_cut(starts: &[Option<u64>], backup_running: bool, cutoff: DateTime<Utc>) -> WalCut {
    if starts.is_empty() {
        return if backup_running {
            WalCut::Nothing
        } else {
            WalCut::WrittenBefore(cutoff)
        };
    }
    let known: Option<Vec<u64>> = starts.iter().copied().collect();
    match known.and_then(|s| s.into_iter().min()) {
        Some(min) => WalCut::Below(min),
        None => WalCut::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn backup(state: BackupState, age_secs: i64, now: DateTime<Utc>) -> BackupFacts {
        BackupFacts {
            id: Uuid::new_v4(),
            state,
            at: now - Duration::seconds(age_secs),
            start_lsn: None,
            stop_lsn: None,
            timeline: Some(1),
        }
    }

    fn policy(window_secs: i64, min_backups: i32) -> Policy {
        Policy {
            window_secs,
            min_backups,
        }
    }

    #[test]
    fn keeps_the_window_the_anchor_before_it_and_what_is_in_use() {
        let now = Utc::now();
        let cutoff = now - Duration::seconds(100);
        let oldest = backup(BackupState::Completed, 400, now);
        let used = backup(BackupState::Completed, 300, now);
        let old = backup(BackupState::Completed, 200, now);
        let anchor = backup(BackupState::Completed, 150, now);
        let fresh = backup(BackupState::Completed, 50, now);
        let failed_old = backup(BackupState::Failed, 500, now);
        let failed_new = backup(BackupState::Failed, 10, now);
        let running = backup(BackupState::Building, 1000, now);
        let all = [
            oldest.clone(),
            used.clone(),
            old.clone(),
            anchor.clone(),
            fresh.clone(),
            failed_old.clone(),
            failed_new,
            running,
        ];
        let on_lineage = all.iter().map(|b| b.id).collect();
        let d = decide(
            &all,
            &HashSet::from([used.id]),
            &on_lineage,
            policy(100, 1),
            cutoff,
        );
        assert_eq!(d.kept, vec![fresh.id, anchor.id, used.id]);
        assert_eq!(d.expired, vec![old.id, oldest.id, failed_old.id]);
    }

    #[test]
    fn min_backups_keeps_the_newest_however_old() {
        let now = Utc::now();
        let cutoff = now - Duration::seconds(10);
        let b: Vec<BackupFacts> = (1..=4)
            .map(|i| backup(BackupState::Completed, 100 * i, now))
            .collect();
        let on_lineage = b.iter().map(|b| b.id).collect();
        let d = decide(&b, &HashSet::new(), &on_lineage, policy(10, 3), cutoff);
        assert_eq!(d.kept, vec![b[0].id, b[1].id, b[2].id]);
        assert_eq!(d.expired, vec![b[3].id]);
        // With none required, the anchor alone stays.
        let d = decide(&b, &HashSet::new(), &on_lineage, policy(10, 0), cutoff);
        assert_eq!(d.kept, vec![b[0].id]);
    }

    #[test]
    fn the_base_of_the_current_lineage_stays_when_a_newer_backup_was_abandoned() {
        let now = Utc::now();
        let cutoff = now - Duration::seconds(100);
        // A recovery went back to before `abandoned` was taken: only `before` serves the
        // lineage the instance runs on at the cutoff.
        let before = backup(BackupState::Completed, 400, now);
        let abandoned = backup(BackupState::Completed, 300, now);
        let older = backup(BackupState::Completed, 500, now);
        let all = [older.clone(), before.clone(), abandoned.clone()];
        let on_lineage = HashSet::from([older.id, before.id]);
        let d = decide(&all, &HashSet::new(), &on_lineage, policy(100, 0), cutoff);
        assert_eq!(d.kept, vec![abandoned.id, before.id]);
        assert_eq!(d.expired, vec![older.id]);
    }

    #[test]
    fn the_cut_is_the_oldest_kept_start_or_nothing_when_unsure() {
        let t = Utc::now();
        assert_eq!(wal_cut(&[Some(9), Some(4)], false, t), WalCut::Below(4));
        assert_eq!(wal_cut(&[Some(9), None], false, t), WalCut::Nothing);
        assert_eq!(wal_cut(&[], false, t), WalCut::WrittenBefore(t));
        assert_eq!(wal_cut(&[], true, t), WalCut::Nothing);
        assert_eq!(wal_cut(&[Some(2)], true, t), WalCut::Below(2));
    }
}
