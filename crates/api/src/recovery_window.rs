//! The recoverable window of an instance and the plan of a point-in-time recovery, computed from
//! what the WAL store holds per timeline and from the instance's backups. Pure logic: the routes
//! load the rows, this decides.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
pub use trove_common::recovery::lineage;
use trove_common::recovery::{
    RecoveryTarget, StopPoint, WalTimeline, format_lsn, lsn_segment, parse_lsn, segment_number,
    serves_lineage,
};
use uuid::Uuid;

use crate::error::ApiError;

/// A completed backup of the instance.
#[derive(Debug, Clone)]
pub struct BackupPoint {
    pub id: Uuid,
    pub stop_time: DateTime<Utc>,
    pub timeline: Option<u32>,
    pub start_lsn: Option<String>,
    pub stop_lsn: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Window {
    /// The instance whose WAL the window is made of; a plan replays its history.
    pub instance_id: Uuid,
    pub timeline: u32,
    pub lineage: Vec<u32>,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    /// End of the WAL the store holds on this timeline: an LSN target must lie before it.
    pub latest_lsn: Option<u64>,
    /// Backups usable on this lineage, oldest first.
    pub backups: Vec<BackupPoint>,
    /// (timeline, first missing segment, last missing segment).
    pub gaps: Vec<(u32, String, String)>,
}

/// A timeline number as requests give it and the control database holds it (`integer`): 1 to
/// `i32::MAX`. Anything else names no timeline.
pub fn timeline_number(n: i64) -> Option<u32> {
    i32::try_from(n)
        .ok()
        .filter(|t| *t >= 1)
        .and_then(|t| u32::try_from(t).ok())
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn window(
    instance_id: Uuid,
    timeline: u32,
    timelines: &[WalTimeline],
    backups: &[BackupPoint],
) -> Window {
    let lineage = lineage(timeline, timelines);
    let mut usable: Vec<BackupPoint> = backups
        .iter()
        .filter(|b| serves_lineage(b.timeline, b.stop_lsn.as_deref(), &lineage, timelines))
        .cloned()
        .collect();
    usable.sort_by_key(|b| b.stop_time);
    let current = timelines.iter().find(|t| t.timeline == timeline);
    let latest = current.and_then(|t| t.latest_commit);
    let latest_lsn = current
        .and_then(|t| t.latest_lsn.as_deref())
        .and_then(parse_lsn);
    let gaps = timelines
        .iter()
        .filter(|t| lineage.contains(&t.timeline))
        .flat_map(|t| {
            t.gaps
                .iter()
                .map(|(a, b)| (t.timeline, a.clone(), b.clone()))
        })
        .collect();
    Window {
        instance_id,
        timeline,
        earliest: usable
            .first()
            .map(|b| b.stop_time)
            .filter(|_| latest.is_some()),
        latest,
        latest_lsn,
        lineage,
        backups: usable,
        gaps,
    }
}

impl Window {
    pub fn summary(&self) -> Value {
        json!({
            "earliest": self.earliest.map(rfc3339),
            "latest": self.latest.map(rfc3339),
            "timeline": self.timeline,
        })
    }

    fn describe(&self) -> String {
        match (self.earliest, self.latest) {
            (Some(e), Some(l)) => format!(
                "the recoverable window on timeline {} is {} to {}",
                self.timeline,
                rfc3339(e),
                rfc3339(l)
            ),
            _ => format!(
                "timeline {} has no recoverable window yet (it needs a completed backup and archived WAL after it)",
                self.timeline
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub backup: Uuid,
    /// Where replay of the window's instance's WAL stops, on the window's timeline.
    pub target: RecoveryTarget,
    /// What the response calls the point in time: the target, or the latest commit for "latest";
    /// None for an LSN or transaction target, whose time is known only once replay reaches it.
    pub point_in_time: Option<DateTime<Utc>>,
}

/// Chooses the backup and checks the target against the window, refusing before anything is
/// touched: outside the window (422), a WAL gap after the backup (409), a backup that stops
/// after the target or is not on the lineage (422).
pub fn plan(w: &Window, stop: StopPoint, requested_backup: Option<Uuid>) -> Result<Plan, ApiError> {
    let (Some(earliest), Some(latest)) = (w.earliest, w.latest) else {
        return Err(ApiError::Unprocessable(format!(
            "Cannot recover to a point in time: {}.",
            w.describe()
        )));
    };
    let backup = match stop {
        StopPoint::Time(_) | StopPoint::Latest => {
            by_time(w, stop, earliest, latest, requested_backup)?
        }
        StopPoint::Lsn(lsn) => by_lsn(w, lsn, false, requested_backup)?,
        StopPoint::RestorePoint { lsn, .. } => by_lsn(w, lsn, true, requested_backup)?,
        StopPoint::Xid { .. } => by_xid(w, requested_backup)?,
    };
    let start_seg = backup.start_lsn.as_deref().and_then(lsn_segment);
    if let Some((tl, from, to)) = w.gaps.iter().find(|(_, _, to)| {
        match (start_seg, segment_number(to)) {
            (Some(s), Some(g)) => g >= s,
            // Unknown positions: any gap may matter.
            _ => true,
        }
    }) {
        return Err(ApiError::Conflict(format!(
            "The WAL archive has a gap on timeline {tl} (segments {from} to {to}) after backup {}; replay could not reach {}. {}.",
            backup.id,
            describe_stop(stop, latest),
            w.describe()
        )));
    }
    Ok(Plan {
        backup: backup.id,
        target: RecoveryTarget::new(stop, w.timeline, w.instance_id),
        point_in_time: match stop {
            StopPoint::Time(t) => Some(t),
            StopPoint::Latest => Some(latest),
            StopPoint::Lsn(_) | StopPoint::Xid { .. } | StopPoint::RestorePoint { .. } => None,
        },
    })
}

/// How a refusal names the target.
fn describe_stop(stop: StopPoint, latest: DateTime<Utc>) -> String {
    match stop {
        StopPoint::Time(t) => rfc3339(t),
        StopPoint::Latest => rfc3339(latest),
        StopPoint::Lsn(l) => format!("LSN {}", format_lsn(l)),
        StopPoint::Xid { xid, .. } => format!("transaction {xid}"),
        StopPoint::RestorePoint { name, .. } => format!("restore point {name}"),
    }
}

/// The requested backup, when it serves the window's lineage.
fn on_lineage(w: &Window, id: Uuid) -> Result<&BackupPoint, ApiError> {
    w.backups.iter().find(|b| b.id == id).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "Backup {id} is not on the lineage of timeline {} (timelines {:?}); choose another backup or omit it.",
            w.timeline, w.lineage
        ))
    })
}

/// A time or "latest": the newest backup that ends before the target time (or the last commit).
fn by_time(
    w: &Window,
    stop: StopPoint,
    earliest: DateTime<Utc>,
    latest: DateTime<Utc>,
    requested_backup: Option<Uuid>,
) -> Result<BackupPoint, ApiError> {
    let when = stop.time().unwrap_or(latest);
    if let StopPoint::Time(t) = stop {
        // A target equal to a backup's stop time is already too early (pgbackrest#1168).
        if t <= earliest {
            return Err(ApiError::Unprocessable(format!(
                "point_in_time {} is before the recoverable window: {}.",
                rfc3339(t),
                w.describe()
            )));
        }
        // PostgreSQL stops before the first commit after the target, so a target at or after the
        // last archived commit could never be reached (docs/postgres-recovery.md P2, P3).
        if t >= latest {
            return Err(ApiError::Unprocessable(format!(
                "point_in_time {} is not before the last archived commit (use \"latest\" to replay everything): {}.",
                rfc3339(t),
                w.describe()
            )));
        }
    }
    match requested_backup {
        Some(id) => {
            let b = on_lineage(w, id)?;
            if b.stop_time >= when {
                return Err(ApiError::Unprocessable(format!(
                    "Backup {id} ends at {}, which is not before the target {}; choose an older backup or omit it.",
                    rfc3339(b.stop_time),
                    rfc3339(when)
                )));
            }
            Ok(b.clone())
        }
        None => w
            .backups
            .iter()
            .rev()
            .find(|b| b.stop_time < when)
            .cloned()
            .ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "No backup ends before {}: {}.",
                    rfc3339(when),
                    w.describe()
                ))
            }),
    }
}

/// An LSN: it must lie before the end of the WAL held (replay stops after the first record at or
/// after it, so a record must start there), and a backup must end at or before it; the newest
/// such backup replays the least. For a restore point (`record_end`), `lsn` is where its record
/// ends: the store must hold up to there, and a backup must end before it (a backup ending right
/// after the record would only be consistent past the point).
fn by_lsn(
    w: &Window,
    lsn: u64,
    record_end: bool,
    requested_backup: Option<Uuid>,
) -> Result<BackupPoint, ApiError> {
    let target = format_lsn(lsn);
    let held = |end: u64| if record_end { lsn <= end } else { lsn < end };
    let after_backup = |stop: u64| if record_end { stop < lsn } else { stop <= lsn };
    match w.latest_lsn {
        Some(end) if held(end) => {}
        Some(end) => {
            return Err(ApiError::Unprocessable(format!(
                "LSN {target} is not before the end of the archived WAL at {}: {}.",
                format_lsn(end),
                w.describe()
            )));
        }
        None => {
            return Err(ApiError::Unprocessable(format!(
                "The end of the archived WAL on timeline {} is not known yet, so LSN {target} cannot be checked; retry once the WAL archive has reported.",
                w.timeline
            )));
        }
    }
    let stop_of = |b: &BackupPoint| b.stop_lsn.as_deref().and_then(parse_lsn);
    match requested_backup {
        Some(id) => {
            let b = on_lineage(w, id)?;
            match stop_of(b) {
                Some(stop) if after_backup(stop) => Ok(b.clone()),
                _ => Err(ApiError::Unprocessable(format!(
                    "Backup {id} ends at {}, which is after LSN {target}; choose an older backup or omit it.",
                    b.stop_lsn.as_deref().unwrap_or("an unknown position")
                ))),
            }
        }
        None => w
            .backups
            .iter()
            .filter(|b| stop_of(b).is_some_and(after_backup))
            .max_by_key(|b| stop_of(b))
            .cloned()
            .ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "LSN {target} is before the recoverable window: no backup ends at or before it; {}.",
                    w.describe()
                ))
            }),
    }
}

/// A transaction: where its commit lies is not known before replay finds it, so the requested
/// backup is trusted, and without one the oldest backup of the lineage is used, the only one that
/// precedes every transaction the window holds. A transaction outside the replayed WAL ends the
/// recovery with `target_not_reached`, leaving the instance as it was.
fn by_xid(w: &Window, requested_backup: Option<Uuid>) -> Result<BackupPoint, ApiError> {
    match requested_backup {
        Some(id) => on_lineage(w, id).cloned(),
        None => w.backups.first().cloned().ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "Cannot recover to a transaction: {}.",
                w.describe()
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    const INSTANCE: Uuid = Uuid::from_u128(1);

    fn tl(timeline: u32, parent: Option<u32>, latest: Option<DateTime<Utc>>) -> WalTimeline {
        WalTimeline {
            timeline,
            parent,
            latest_commit: latest,
            ..Default::default()
        }
    }

    fn backup(stop: DateTime<Utc>, timeline: u32) -> BackupPoint {
        BackupPoint {
            id: Uuid::new_v4(),
            stop_time: stop,
            timeline: Some(timeline),
            start_lsn: Some("0/3000028".into()),
            stop_lsn: Some("0/3000100".into()),
        }
    }

    #[test]
    fn a_backup_on_an_abandoned_branch_does_not_serve_the_lineage() {
        let now = Utc::now();
        // TL2 forked from TL1 at 0/5000000; TL3 forked from TL2's history back at 0/4000000,
        // i.e. inside TL1: TL2's WAL is not part of TL3's past.
        let mut t2 = tl(2, Some(1), None);
        t2.switch_lsn = Some("0/5000000".into());
        let mut t3 = tl(3, Some(2), Some(now));
        t3.switch_lsn = Some("0/4000000".into());
        let mut on_tl1 = backup(now - Duration::minutes(9), 1);
        on_tl1.stop_lsn = Some("0/3000100".into());
        let mut on_tl2 = backup(now - Duration::minutes(5), 2);
        on_tl2.stop_lsn = Some("0/5100000".into());
        let mut tl1_after_fork = backup(now - Duration::minutes(4), 1);
        tl1_after_fork.stop_lsn = Some("0/4800000".into());
        let mut at_the_fork = backup(now - Duration::minutes(8), 1);
        at_the_fork.stop_lsn = Some("0/4000000".into());
        let w = window(
            INSTANCE,
            3,
            &[tl(1, None, None), t2, t3],
            &[on_tl1.clone(), on_tl2, tl1_after_fork, at_the_fork.clone()],
        );
        assert_eq!(
            w.backups.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![on_tl1.id, at_the_fork.id]
        );
    }

    #[test]
    fn lineage_follows_parents_and_survives_loops() {
        let t = vec![
            tl(3, Some(2), None),
            tl(2, Some(1), None),
            tl(1, None, None),
        ];
        assert_eq!(lineage(3, &t), vec![3, 2, 1]);
        let looped = vec![tl(2, Some(3), None), tl(3, Some(2), None)];
        assert_eq!(lineage(2, &looped), vec![2, 3]);
    }

    #[test]
    fn plan_picks_the_newest_backup_before_the_target_and_refuses_outside_the_window() {
        let now = Utc::now();
        let b1 = backup(now - Duration::minutes(10), 1);
        let b2 = backup(now - Duration::minutes(5), 1);
        let w = window(
            INSTANCE,
            1,
            &[tl(1, None, Some(now))],
            &[b2.clone(), b1.clone()],
        );
        assert_eq!(w.earliest, Some(b1.stop_time));
        let p = plan(&w, StopPoint::Time(now - Duration::minutes(7)), None).expect("plan");
        assert_eq!(p.backup, b1.id);
        let p = plan(&w, StopPoint::Time(now - Duration::minutes(1)), None).expect("plan");
        assert_eq!(p.backup, b2.id);
        assert!(matches!(
            plan(&w, StopPoint::Time(now - Duration::minutes(11)), None),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            plan(&w, StopPoint::Time(b1.stop_time), None),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            plan(&w, StopPoint::Time(now + Duration::seconds(1)), None),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            plan(&w, StopPoint::Time(now - Duration::minutes(7)), Some(b2.id)),
            Err(ApiError::Unprocessable(_))
        ));
        let latest = plan(&w, StopPoint::Latest, None).expect("latest");
        assert_eq!(
            (latest.backup, latest.target.stop, latest.point_in_time),
            (b2.id, StopPoint::Latest, Some(now))
        );
    }

    #[test]
    fn an_lsn_target_takes_the_newest_backup_ending_at_or_before_it_inside_the_archive() {
        let now = Utc::now();
        let mut t1 = tl(1, None, Some(now));
        t1.latest_lsn = Some("0/9000000".into());
        let mut old = backup(now - Duration::minutes(10), 1);
        old.stop_lsn = Some("0/3000100".into());
        let mut new = backup(now - Duration::minutes(5), 1);
        new.stop_lsn = Some("0/6000100".into());
        let w = window(INSTANCE, 1, &[t1], &[old.clone(), new.clone()]);
        let plan_to = |lsn, b| plan(&w, StopPoint::Lsn(lsn), b);
        let p = plan_to(0x700_0000, None).expect("inside");
        assert_eq!(
            (p.backup, p.target.stop, p.point_in_time),
            (new.id, StopPoint::Lsn(0x700_0000), None)
        );
        assert_eq!(
            plan_to(0x600_0100, None).ok().map(|p| p.backup),
            Some(new.id)
        );
        assert_eq!(
            plan_to(0x500_0000, None).ok().map(|p| p.backup),
            Some(old.id)
        );
        assert_eq!(
            plan_to(0x700_0000, Some(old.id)).ok().map(|p| p.backup),
            Some(old.id)
        );
        for refused in [
            plan_to(0x300_0000, None),
            plan_to(0x900_0000, None),
            plan_to(0xA00_0000, None),
            plan_to(0x500_0000, Some(new.id)),
            plan_to(0x700_0000, Some(Uuid::new_v4())),
        ] {
            assert!(
                matches!(refused, Err(ApiError::Unprocessable(_))),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_transaction_target_replays_from_the_oldest_backup_unless_one_is_named() {
        let now = Utc::now();
        let old = backup(now - Duration::minutes(10), 1);
        let new = backup(now - Duration::minutes(5), 1);
        let w = window(
            INSTANCE,
            1,
            &[tl(1, None, Some(now))],
            &[new.clone(), old.clone()],
        );
        let xid = StopPoint::Xid {
            xid: 900,
            inclusive: false,
        };
        assert_eq!(plan(&w, xid, None).ok().map(|p| p.backup), Some(old.id));
        assert_eq!(
            plan(&w, xid, Some(new.id)).ok().map(|p| p.backup),
            Some(new.id)
        );
        let empty = window(INSTANCE, 1, &[tl(1, None, None)], &[old]);
        assert!(matches!(
            plan(&empty, xid, None),
            Err(ApiError::Unprocessable(_))
        ));
    }

    #[test]
    fn a_plan_targets_the_windows_timeline_on_the_windows_instance() {
        let now = Utc::now();
        // TL2 forked from TL1 before the backup, taken on TL2, began.
        let mut t2 = tl(2, Some(1), Some(now));
        t2.switch_lsn = Some("0/1000000".into());
        let b = backup(now - Duration::minutes(10), 2);
        let w = window(INSTANCE, 2, &[t2, tl(1, None, None)], &[b]);
        let at = now - Duration::minutes(1);
        let p = plan(&w, StopPoint::Time(at), None).expect("plan");
        assert_eq!(
            p.target,
            RecoveryTarget::new(StopPoint::Time(at), 2, INSTANCE)
        );
    }

    #[test]
    fn a_gap_after_the_backup_is_a_conflict_and_one_before_it_is_not() {
        let now = Utc::now();
        let b = backup(now - Duration::minutes(5), 1);
        let mut t = tl(1, None, Some(now));
        t.gaps = vec![(
            "000000010000000000000005".into(),
            "000000010000000000000006".into(),
        )];
        let w = window(
            INSTANCE,
            1,
            std::slice::from_ref(&t),
            std::slice::from_ref(&b),
        );
        assert!(matches!(
            plan(&w, StopPoint::Latest, None),
            Err(ApiError::Conflict(_))
        ));
        t.gaps = vec![(
            "000000010000000000000001".into(),
            "000000010000000000000002".into(),
        )];
        let w = window(INSTANCE, 1, &[t], &[b]);
        assert!(plan(&w, StopPoint::Latest, None).is_ok());
    }

    #[test]
    fn backups_of_other_lineages_do_not_count() {
        let now = Utc::now();
        let w = window(
            INSTANCE,
            2,
            &[tl(2, Some(1), Some(now)), tl(1, None, None)],
            &[backup(now - Duration::minutes(1), 3)],
        );
        assert_eq!(w.earliest, None);
        assert!(matches!(
            plan(&w, StopPoint::Latest, None),
            Err(ApiError::Unprocessable(_))
        ));
    }

    #[test]
    fn timeline_numbers_are_what_the_database_can_hold() {
        assert_eq!(timeline_number(1), Some(1));
        assert_eq!(timeline_number(i64::from(i32::MAX)), Some(0x7FFF_FFFF));
        assert_eq!(timeline_number(0), None);
        assert_eq!(timeline_number(-3), None);
        assert_eq!(timeline_number(i64::from(i32::MAX) + 1), None);
    }
}
