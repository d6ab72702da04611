//! The recoverable window of an instance and the plan of a point-in-time recovery, computed from
//! what the WAL store holds per timeline and from the instance's backups. Pure logic: the routes
//! load the rows, this decides.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;

/// One timeline of the instance's WAL in the store (`wal_timelines`).
#[derive(Debug, Clone)]
pub struct TimelineInfo {
    pub timeline: i32,
    pub parent: Option<i32>,
    pub switch_lsn: Option<String>,
    pub first_segment: Option<String>,
    pub last_segment: Option<String>,
    pub gaps: Vec<(String, String)>,
    pub latest_commit: Option<DateTime<Utc>>,
    pub latest_lsn: Option<String>,
}

/// A completed backup of the instance.
#[derive(Debug, Clone)]
pub struct BackupPoint {
    pub id: Uuid,
    pub stop_time: DateTime<Utc>,
    pub timeline: Option<i32>,
    pub start_lsn: Option<String>,
    pub stop_lsn: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Window {
    pub timeline: i32,
    pub lineage: Vec<i32>,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    /// Backups usable on this lineage, oldest first.
    pub backups: Vec<BackupPoint>,
    /// (timeline, first missing segment, last missing segment).
    pub gaps: Vec<(i32, String, String)>,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `timeline` and its ancestors, newest first.
pub fn lineage(timeline: i32, timelines: &[TimelineInfo]) -> Vec<i32> {
    let mut out = vec![timeline];
    let mut cur = timeline;
    while let Some(parent) = timelines
        .iter()
        .find(|t| t.timeline == cur)
        .and_then(|t| t.parent)
    {
        // A corrupt history must not loop forever.
        if out.contains(&parent) {
            break;
        }
        out.push(parent);
        cur = parent;
    }
    out
}

/// The timeline whose WAL holds position `lsn` in the history of `lineage[0]`, as PostgreSQL's
/// `tliOfPointInHistory` decides: each timeline covers [its switch point, its child's switch
/// point), newest first. A timeline forked from below an earlier fork covers nothing there.
fn timeline_of_point(lsn: u64, lineage: &[i32], timelines: &[TimelineInfo]) -> Option<i32> {
    let mut end: Option<u64> = None;
    for &tl in lineage {
        let info = timelines.iter().find(|t| t.timeline == tl);
        let begin = info
            .and_then(|t| t.switch_lsn.as_deref())
            .and_then(parse_lsn);
        // A branch whose switch point is unknown cannot vouch for any position.
        if begin.is_none() && info.is_some_and(|t| t.parent.is_some()) {
            continue;
        }
        if begin.is_none_or(|b| b <= lsn) && end.is_none_or(|e| lsn < e) {
            return Some(tl);
        }
        end = begin;
    }
    None
}

pub fn window(timeline: i32, timelines: &[TimelineInfo], backups: &[BackupPoint]) -> Window {
    let lineage = lineage(timeline, timelines);
    // A backup serves this lineage only if the WAL it ends with lies on the lineage's history,
    // not on a branch that a later recovery abandoned. Its last byte (stop - 1) decides: a
    // backup ending exactly at a fork point is the forked state itself.
    let mut usable: Vec<BackupPoint> = backups
        .iter()
        .filter(
            |b| match (b.timeline, b.stop_lsn.as_deref().and_then(parse_lsn)) {
                (Some(t), Some(stop)) => {
                    timeline_of_point(stop.saturating_sub(1), &lineage, timelines) == Some(t)
                }
                (Some(t), None) => t == timeline,
                (None, _) => false,
            },
        )
        .cloned()
        .collect();
    usable.sort_by_key(|b| b.stop_time);
    let latest = timelines
        .iter()
        .find(|t| t.timeline == timeline)
        .and_then(|t| t.latest_commit);
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
        timeline,
        earliest: usable
            .first()
            .map(|b| b.stop_time)
            .filter(|_| latest.is_some()),
        latest,
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

/// What a recovery asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Time(DateTime<Utc>),
    Latest,
}

/// Parses `point_in_time`: `"latest"` or RFC 3339 **with** a zone offset. PostgreSQL would read a
/// zoneless time in the server's zone and silently stop elsewhere (postgres-pitr.md P4).
pub fn parse_target(v: &Value) -> Result<Target, ApiError> {
    let s = v.as_str().ok_or_else(|| {
        ApiError::BadRequest(
            "point_in_time must be a string: an RFC 3339 time with a zone offset, or \"latest\"."
                .into(),
        )
    })?;
    if s == "latest" {
        return Ok(Target::Latest);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| Target::Time(t.with_timezone(&Utc)))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "point_in_time '{s}' is not an RFC 3339 time with a zone offset (e.g. 2026-11-25T17:00:00.5Z or 2026-11-25T18:00:00+01:00)."
            ))
        })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub backup: Uuid,
    /// None for "latest".
    pub time: Option<DateTime<Utc>>,
    /// What the response calls the point in time: the target, or the latest commit for "latest".
    pub point_in_time: DateTime<Utc>,
    pub timeline: i32,
}

/// Chooses the backup and checks the target against the window, refusing before anything is
/// touched: outside the window (422), a WAL gap after the backup (409), a backup that stops
/// after the target or is not on the lineage (422).
pub fn plan(w: &Window, target: Target, requested_backup: Option<Uuid>) -> Result<Plan, ApiError> {
    let (Some(earliest), Some(latest)) = (w.earliest, w.latest) else {
        return Err(ApiError::Unprocessable(format!(
            "Cannot recover to a point in time: {}.",
            w.describe()
        )));
    };
    let when = match target {
        Target::Latest => latest,
        Target::Time(t) => t,
    };
    if let Target::Time(t) = target {
        // A target equal to a backup's stop time is already too early (pgbackrest#1168).
        if t <= earliest {
            return Err(ApiError::Unprocessable(format!(
                "point_in_time {} is before the recoverable window: {}.",
                rfc3339(t),
                w.describe()
            )));
        }
        // PostgreSQL stops before the first commit after the target, so a target at or after the
        // last archived commit could never be reached (postgres-pitr.md P2, P3).
        if t >= latest {
            return Err(ApiError::Unprocessable(format!(
                "point_in_time {} is not before the last archived commit (use \"latest\" to replay everything): {}.",
                rfc3339(t),
                w.describe()
            )));
        }
    }
    let backup = match requested_backup {
        Some(id) => {
            let b = w.backups.iter().find(|b| b.id == id).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "Backup {id} is not on the lineage of timeline {} (timelines {:?}); choose another backup or omit it.",
                    w.timeline, w.lineage
                ))
            })?;
            if b.stop_time >= when {
                return Err(ApiError::Unprocessable(format!(
                    "Backup {id} ends at {}, which is not before the target {}; choose an older backup or omit it.",
                    rfc3339(b.stop_time),
                    rfc3339(when)
                )));
            }
            b.clone()
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
            })?,
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
            rfc3339(when),
            w.describe()
        )));
    }
    Ok(Plan {
        backup: backup.id,
        time: match target {
            Target::Time(t) => Some(t),
            Target::Latest => None,
        },
        point_in_time: when,
        timeline: w.timeline,
    })
}

/// An LSN `X/Y` as a number.
pub fn parse_lsn(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Segment number of an LSN `X/Y` (16 MiB segments).
pub fn lsn_segment(lsn: &str) -> Option<u64> {
    parse_lsn(lsn).map(|v| v >> 24)
}

/// Segment number of a WAL file name `TTTTTTTTXXXXXXXXYYYYYYYY`.
pub fn segment_number(name: &str) -> Option<u64> {
    if name.len() < 24 {
        return None;
    }
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some(log * 0x100 + seg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn tl(timeline: i32, parent: Option<i32>, latest: Option<DateTime<Utc>>) -> TimelineInfo {
        TimelineInfo {
            timeline,
            parent,
            switch_lsn: None,
            first_segment: None,
            last_segment: None,
            gaps: vec![],
            latest_commit: latest,
            latest_lsn: None,
        }
    }

    fn backup(stop: DateTime<Utc>, timeline: i32) -> BackupPoint {
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
        let w = window(1, &[tl(1, None, Some(now))], &[b2.clone(), b1.clone()]);
        assert_eq!(w.earliest, Some(b1.stop_time));
        let p = plan(&w, Target::Time(now - Duration::minutes(7)), None).expect("plan");
        assert_eq!(p.backup, b1.id);
        let p = plan(&w, Target::Time(now - Duration::minutes(1)), None).expect("plan");
        assert_eq!(p.backup, b2.id);
        assert!(matches!(
            plan(&w, Target::Time(now - Duration::minutes(11)), None),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            plan(&w, Target::Time(b1.stop_time), None),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            plan(&w, Target::Time(now + Duration::seconds(1)), None),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            plan(&w, Target::Time(now - Duration::minutes(7)), Some(b2.id)),
            Err(ApiError::Unprocessable(_))
        ));
        let latest = plan(&w, Target::Latest, None).expect("latest");
        assert_eq!(
            (latest.backup, latest.time, latest.point_in_time),
            (b2.id, None, now)
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
        let w = window(1, std::slice::from_ref(&t), std::slice::from_ref(&b));
        assert!(matches!(
            plan(&w, Target::Latest, None),
            Err(ApiError::Conflict(_))
        ));
        t.gaps = vec![(
            "000000010000000000000001".into(),
            "000000010000000000000002".into(),
        )];
        let w = window(1, &[t], &[b]);
        assert!(plan(&w, Target::Latest, None).is_ok());
    }

    #[test]
    fn backups_of_other_lineages_do_not_count() {
        let now = Utc::now();
        let w = window(
            2,
            &[tl(2, Some(1), Some(now)), tl(1, None, None)],
            &[backup(now - Duration::minutes(1), 3)],
        );
        assert_eq!(w.earliest, None);
        assert!(matches!(
            plan(&w, Target::Latest, None),
            Err(ApiError::Unprocessable(_))
        ));
    }

    #[test]
    fn targets_need_a_zone() {
        assert!(parse_target(&json!("2026-11-25T17:00:00")).is_err());
        assert!(parse_target(&json!("2026-11-25 17:00:00")).is_err());
        assert_eq!(parse_target(&json!("latest")).ok(), Some(Target::Latest));
        assert!(matches!(
            parse_target(&json!("2026-11-25T17:00:00.25+01:00")),
            Ok(Target::Time(_))
        ));
    }

    #[test]
    fn segment_arithmetic() {
        assert_eq!(lsn_segment("0/3000028"), Some(3));
        assert_eq!(lsn_segment("1/0"), Some(256));
        assert_eq!(segment_number("000000020000000100000002"), Some(258));
    }
}
