//! The recovery contract, one type per idea, shared by the API's planning, the control database,
//! the RPC messages and the guest's driver: where replay stops, along which timeline, and how a
//! running recovery reports its progress and outcome. See `docs/postgres-recovery.md`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where WAL replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopPoint {
    /// The state after the last transaction that committed at or before this time.
    Time(DateTime<Utc>),
    /// Everything the store holds. Replay runs without a target, since a time of "now" fails on
    /// an idle database (`docs/postgres-recovery.md` §3.5).
    Latest,
    /// The state after the first WAL record that starts at or after this position
    /// (`recovery_target_lsn`, inclusive).
    Lsn(u64),
    /// The state just before (`inclusive: false`) or just after (`true`) the commit or abort of
    /// this transaction (`recovery_target_xid`).
    Xid { xid: u32, inclusive: bool },
    /// The named restore point (`recovery_target_name`); `lsn` is where its record ends, which
    /// planning checks against the backups and the archive.
    RestorePoint {
        name: crate::restore_point::RestorePointName,
        lsn: u64,
    },
}

impl StopPoint {
    pub fn time(self) -> Option<DateTime<Utc>> {
        match self {
            Self::Time(t) => Some(t),
            _ => None,
        }
    }

    /// The LSN of an LSN target, or where a restore point's record ends.
    pub fn lsn(self) -> Option<u64> {
        match self {
            Self::Lsn(l) | Self::RestorePoint { lsn: l, .. } => Some(l),
            _ => None,
        }
    }

    /// The name of a restore point target.
    pub fn restore_point(self) -> Option<crate::restore_point::RestorePointName> {
        match self {
            Self::RestorePoint { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The transaction id and inclusiveness of a transaction target.
    pub fn xid(self) -> Option<(u32, bool)> {
        match self {
            Self::Xid { xid, inclusive } => Some((xid, inclusive)),
            _ => None,
        }
    }

    /// Whether replay pauses at a target that must be proven before promotion (everything but
    /// "latest", which replays to the end and promotes by itself).
    pub fn pauses(self) -> bool {
        !matches!(self, Self::Latest)
    }

    /// The kind a `recoveries` row records for this stop point.
    pub fn kind(self) -> TargetKind {
        match self {
            Self::Time(_) => TargetKind::Time,
            Self::Latest => TargetKind::Latest,
            Self::Lsn(_) => TargetKind::Lsn,
            Self::Xid { .. } => TargetKind::Xid,
            Self::RestorePoint { .. } => TargetKind::RestorePoint,
        }
    }
}

/// A point-in-time target: restore a backup, then replay an instance's archived WAL along the
/// history of `timeline` until `stop`. Both recovery in place (`do_recovery`) and restore into a
/// new instance (`prepare`) carry exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryTarget {
    /// On the wire: `time` (null for "latest" and the other kinds), plus `lsn` (`X/Y`) or `xid`
    /// and `inclusive` when the target is one of those; absent keys keep older messages valid.
    #[serde(flatten, with = "stop_on_wire")]
    pub stop: StopPoint,
    /// The timeline whose history replay follows (the source instance's current one, or one the
    /// user named).
    pub timeline: u32,
    /// The WAL directory of the instance whose history is replayed, relative to the backup store.
    pub wal_location: String,
}

impl RecoveryTarget {
    /// A target on the history of `source`'s archived WAL.
    pub fn new(stop: StopPoint, timeline: u32, source: Uuid) -> Self {
        Self {
            stop,
            timeline,
            wal_location: wal_location(source),
        }
    }
}

/// The stop point as wire fields: `time` as the messages have always carried it (null for
/// "latest"), and `lsn` or `xid` + `inclusive` only for those targets.
mod stop_on_wire {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Wire {
        time: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lsn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        xid: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inclusive: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restore_point: Option<crate::restore_point::RestorePointName>,
    }

    pub fn serialize<S: serde::Serializer>(stop: &StopPoint, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            time: stop.time(),
            lsn: stop.lsn().map(format_lsn),
            xid: stop.xid().map(|(x, _)| x),
            inclusive: stop.xid().map(|(_, i)| i),
            restore_point: stop.restore_point(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<StopPoint, D::Error> {
        use serde::de::Error as _;
        let w = Wire::deserialize(d)?;
        let lsn = w
            .lsn
            .map(|l| parse_lsn(&l).ok_or_else(|| D::Error::custom(format!("bad lsn {l:?}"))))
            .transpose()?;
        Ok(match (w.time, lsn, w.xid, w.restore_point) {
            (Some(t), None, None, None) => StopPoint::Time(t),
            (None, None, None, None) => StopPoint::Latest,
            (None, Some(l), None, None) => StopPoint::Lsn(l),
            (None, Some(lsn), None, Some(name)) => StopPoint::RestorePoint { name, lsn },
            (None, None, Some(xid), None) => StopPoint::Xid {
                xid,
                inclusive: w.inclusive.unwrap_or(true),
            },
            _ => return Err(D::Error::custom("a target names one of time, lsn and xid")),
        })
    }
}

/// Where an instance's continuous WAL archive lives, relative to the backup store root.
pub fn wal_location(instance_id: Uuid) -> String {
    format!("wal/{instance_id}")
}

crate::text_enum! {
    /// What a recovery restores to, as `recoveries.target_kind` records it.
    pub enum TargetKind {
        /// The end of a backup: no WAL replay beyond it.
        Backup => "backup",
        /// A point in time (`target_time`) on the lineage of `target_timeline`.
        Time => "time",
        /// Everything archived on the lineage of `target_timeline`.
        Latest => "latest",
        /// A WAL position (`target_lsn`) on the lineage of `target_timeline`.
        Lsn => "lsn",
        /// Before or after a transaction (`target_xid`, `target_inclusive`).
        Xid => "xid",
        /// A named restore point (`target_name`, whose record ends at `target_lsn`).
        RestorePoint => "restore_point",
    }
}

/// A `recoveries` row whose target cannot be rebuilt. The recovery must fail with a fault: a
/// point-in-time request silently run as a plain restore would bring back the wrong data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredTargetError {
    #[error("the recovery's stored target kind '{0}' is unknown")]
    UnknownKind(String),
    #[error("the recovery's {0} target has no {1} recorded")]
    Missing(TargetKind, &'static str),
    #[error("the recovery's stored timeline {0} is not a valid timeline")]
    BadTimeline(i32),
}

/// The target columns of a `recoveries` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredTarget<'a> {
    pub kind: &'a str,
    pub time: Option<DateTime<Utc>>,
    pub timeline: Option<i32>,
    /// `X/Y`.
    pub lsn: Option<&'a str>,
    /// `xid` (a `bigint` column holding a 32-bit transaction id).
    pub xid: Option<i64>,
    pub inclusive: Option<bool>,
    /// A restore point's name.
    pub name: Option<&'a str>,
}

/// Rebuilds the target a `recoveries` row describes, replaying `source`'s WAL: `None` for a plain
/// recovery to the end of a backup.
pub fn stored_target(
    row: &StoredTarget<'_>,
    source: Uuid,
) -> Result<Option<RecoveryTarget>, StoredTargetError> {
    let StoredTarget {
        kind,
        time,
        timeline,
        lsn,
        xid,
        inclusive,
        name,
    } = *row;
    let kind =
        TargetKind::parse(kind).ok_or_else(|| StoredTargetError::UnknownKind(kind.into()))?;
    let stop = match kind {
        TargetKind::Backup => return Ok(None),
        TargetKind::Time => StopPoint::Time(time.ok_or(StoredTargetError::Missing(kind, "time"))?),
        TargetKind::Latest => StopPoint::Latest,
        TargetKind::Lsn => StopPoint::Lsn(
            lsn.and_then(parse_lsn)
                .ok_or(StoredTargetError::Missing(kind, "lsn"))?,
        ),
        TargetKind::Xid => StopPoint::Xid {
            xid: xid
                .and_then(|x| u32::try_from(x).ok())
                .ok_or(StoredTargetError::Missing(kind, "xid"))?,
            inclusive: inclusive.ok_or(StoredTargetError::Missing(kind, "inclusive"))?,
        },
        TargetKind::RestorePoint => StopPoint::RestorePoint {
            name: name
                .and_then(crate::restore_point::RestorePointName::parse)
                .ok_or(StoredTargetError::Missing(kind, "name"))?,
            lsn: lsn
                .and_then(parse_lsn)
                .ok_or(StoredTargetError::Missing(kind, "lsn"))?,
        },
    };
    let timeline = timeline.ok_or(StoredTargetError::Missing(kind, "timeline"))?;
    let timeline = u32::try_from(timeline)
        .ok()
        .filter(|t| *t >= 1)
        .ok_or(StoredTargetError::BadTimeline(timeline))?;
    Ok(Some(RecoveryTarget::new(stop, timeline, source)))
}

/// What the store holds of one timeline of an instance's WAL: reported by the guest's scan,
/// carried in `update_wal`, kept in `wal_timelines`, and planned against by the API.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WalTimeline {
    pub timeline: u32,
    /// The timeline this one branched from, from its `.history` file.
    pub parent: Option<u32>,
    /// Where it branched (`X/Y`), from its `.history` file.
    pub switch_lsn: Option<String>,
    /// Oldest segment held (completed or partial), as a plain segment name.
    pub first_segment: Option<String>,
    /// Newest segment held (completed or partial), as a plain segment name.
    pub last_segment: Option<String>,
    /// Inclusive ranges of missing segments: between first and last, and between the branch point
    /// and the first segment held, since recovery along this timeline needs those too.
    #[serde(default)]
    pub gaps: Vec<(String, String)>,
    /// Time of the last COMMIT record held on this timeline, the `.partial` included: the latest
    /// point a time-targeted recovery can reach.
    pub latest_commit: Option<DateTime<Utc>>,
    /// End of the WAL held on this timeline (`X/Y`): end of valid WAL in the `.partial`, or the
    /// end of the newest completed segment.
    pub latest_lsn: Option<String>,
}

/// `timeline` and its ancestors, newest first, from the `parent` of each of `timelines`.
pub fn lineage(timeline: u32, timelines: &[WalTimeline]) -> Vec<u32> {
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
fn timeline_of_point(lsn: u64, lineage: &[u32], timelines: &[WalTimeline]) -> Option<u32> {
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

/// Whether a backup taken on `backup_timeline` that stopped at `stop_lsn` is a base for replay
/// along `lineage` (from [`lineage`]): the WAL it ends with must lie on the lineage's history,
/// not on a branch that a later recovery abandoned. Its last byte (stop - 1) decides: a backup
/// ending exactly at a fork point is the forked state itself. Without a stop LSN, only a backup
/// on the lineage's own timeline counts.
pub fn serves_lineage(
    backup_timeline: Option<u32>,
    stop_lsn: Option<&str>,
    lineage: &[u32],
    timelines: &[WalTimeline],
) -> bool {
    match (backup_timeline, stop_lsn.and_then(parse_lsn)) {
        (Some(t), Some(stop)) => {
            timeline_of_point(stop.saturating_sub(1), lineage, timelines) == Some(t)
        }
        (Some(t), None) => lineage.first() == Some(&t),
        (None, _) => false,
    }
}

/// How far a running recovery has come; every field is optional because each phase knows only
/// some of them. `update_recovery` carries it while the recovery runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecoveryProgress {
    /// Bytes of the backup archive checked against its checksum so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<u64>,
    /// Size of the backup archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
    /// Where WAL replay is (`X/Y`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_lsn: Option<String>,
    /// Where replay will stop, when known before it gets there (the end of the store for
    /// "latest").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_lsn: Option<String>,
    /// End of the store when replay started: a time target stops at or before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_end_lsn: Option<String>,
}

impl RecoveryProgress {
    /// Takes every field `newer` knows, keeping the rest.
    pub fn merge(&mut self, newer: RecoveryProgress) {
        fn take<T>(old: &mut Option<T>, new: Option<T>) {
            if new.is_some() {
                *old = new;
            }
        }
        take(&mut self.bytes_done, newer.bytes_done);
        take(&mut self.bytes_total, newer.bytes_total);
        take(&mut self.replayed_lsn, newer.replayed_lsn);
        take(&mut self.target_lsn, newer.target_lsn);
        take(&mut self.store_end_lsn, newer.store_end_lsn);
    }
}

/// What a finished recovery reached, carried by the final `update_recovery`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecoveryOutcome {
    /// The timeline the instance writes on now; the next point-in-time recovery is planned on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_timeline: Option<u32>,
    /// Commit time of the last transaction replayed (point in time only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_replayed_commit: Option<DateTime<Utc>>,
    /// Where replay stopped (`X/Y`, point in time only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_lsn: Option<String>,
    /// Wall time of the whole recovery on the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The cut-over's downtime: from stopping the live server to the instance's port answering
    /// again on the recovered data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// Where the recovered data came from: `rewind` (the delayed copy, only the gap replayed) or
    /// `backup` (a base backup restored, then WAL replayed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Why a recovery that could not use the delayed copy restored a backup instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewind_skipped: Option<String>,
}

/// Size of a WAL segment: PostgreSQL's default, which the managed servers use.
pub const WAL_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// An LSN `X/Y` (each half at most 32 bits of hex) as a number.
pub fn parse_lsn(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// A number as an LSN `X/Y`, as PostgreSQL prints it.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Segment number of an LSN `X/Y` (16 MiB segments).
pub fn lsn_segment(lsn: &str) -> Option<u64> {
    parse_lsn(lsn).map(|v| v / WAL_SEGMENT_SIZE)
}

/// Segment number of a WAL file name `TTTTTTTTXXXXXXXXYYYYYYYY` (16 MiB segments).
pub fn segment_number(name: &str) -> Option<u64> {
    // Names come from guests: anything but 24 hex digits is no segment.
    let name = name
        .get(..24)
        .filter(|n| n.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
    Some(log * 0x100 + seg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_target_keeps_its_wire_shape() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 25, 17, 0, 0)
            .single()
            .expect("date");
        let t = RecoveryTarget::new(StopPoint::Time(at), 1, Uuid::from_u128(1));
        let v = serde_json::to_value(&t).expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({"time": "2026-11-25T17:00:00Z", "timeline": 1,
                "wal_location": "wal/00000000-0000-0000-0000-000000000001"})
        );
        let latest: RecoveryTarget = serde_json::from_value(
            serde_json::json!({"time": null, "timeline": 2, "wal_location": "wal/x"}),
        )
        .expect("parses");
        assert_eq!(latest.stop, StopPoint::Latest);
    }

    #[test]
    fn stored_targets_are_rebuilt_or_refused_never_downgraded() {
        let src = Uuid::from_u128(7);
        let at = Utc::now();
        let row = |kind, time, timeline| StoredTarget {
            kind,
            time,
            timeline,
            ..Default::default()
        };
        assert_eq!(stored_target(&row("backup", Some(at), None), src), Ok(None));
        assert_eq!(
            stored_target(&row("time", Some(at), Some(2)), src),
            Ok(Some(RecoveryTarget::new(StopPoint::Time(at), 2, src)))
        );
        assert_eq!(
            stored_target(&row("latest", None, Some(1)), src),
            Ok(Some(RecoveryTarget::new(StopPoint::Latest, 1, src)))
        );
        assert_eq!(
            stored_target(&row("name", None, Some(1)), src),
            Err(StoredTargetError::UnknownKind("name".into()))
        );
        assert_eq!(
            stored_target(&row("lsn", None, Some(1)), src),
            Err(StoredTargetError::Missing(TargetKind::Lsn, "lsn"))
        );
        let lsn = StoredTarget {
            lsn: Some("0/3000028"),
            ..row("lsn", None, Some(1))
        };
        assert_eq!(
            stored_target(&lsn, src),
            Ok(Some(RecoveryTarget::new(
                StopPoint::Lsn(0x300_0028),
                1,
                src
            )))
        );
        let xid = StoredTarget {
            xid: Some(735),
            inclusive: Some(false),
            ..row("xid", None, Some(3))
        };
        assert_eq!(
            stored_target(&xid, src),
            Ok(Some(RecoveryTarget::new(
                StopPoint::Xid {
                    xid: 735,
                    inclusive: false
                },
                3,
                src
            )))
        );
        assert_eq!(
            stored_target(
                &StoredTarget {
                    inclusive: None,
                    ..xid
                },
                src
            ),
            Err(StoredTargetError::Missing(TargetKind::Xid, "inclusive"))
        );
        let named = StoredTarget {
            name: Some("before-upgrade"),
            lsn: Some("0/3000100"),
            ..row("restore_point", None, Some(1))
        };
        let name = crate::restore_point::RestorePointName::parse("before-upgrade").expect("name");
        assert_eq!(
            stored_target(&named, src),
            Ok(Some(RecoveryTarget::new(
                StopPoint::RestorePoint {
                    name,
                    lsn: 0x300_0100
                },
                1,
                src
            )))
        );
        assert_eq!(
            stored_target(
                &StoredTarget {
                    name: None,
                    ..named
                },
                src
            ),
            Err(StoredTargetError::Missing(TargetKind::RestorePoint, "name"))
        );
        assert_eq!(
            stored_target(&row("time", None, Some(1)), src),
            Err(StoredTargetError::Missing(TargetKind::Time, "time"))
        );
        assert_eq!(
            stored_target(&row("latest", None, None), src),
            Err(StoredTargetError::Missing(TargetKind::Latest, "timeline"))
        );
        assert_eq!(
            stored_target(&row("latest", None, Some(0)), src),
            Err(StoredTargetError::BadTimeline(0))
        );
    }

    #[test]
    fn lsn_and_xid_targets_travel_as_extra_keys() {
        let src = Uuid::from_u128(1);
        let t = RecoveryTarget::new(StopPoint::Lsn(0x1_0000_0028), 2, src);
        let v = serde_json::to_value(&t).expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({"time": null, "lsn": "1/28", "timeline": 2,
                "wal_location": "wal/00000000-0000-0000-0000-000000000001"})
        );
        assert_eq!(
            serde_json::from_value::<RecoveryTarget>(v).expect("parses"),
            t
        );
        let x = RecoveryTarget::new(
            StopPoint::Xid {
                xid: 735,
                inclusive: false,
            },
            1,
            src,
        );
        let v = serde_json::to_value(&x).expect("serializes");
        assert_eq!(
            (v["xid"].clone(), v["inclusive"].clone()),
            (serde_json::json!(735), serde_json::json!(false))
        );
        assert_eq!(
            serde_json::from_value::<RecoveryTarget>(v).expect("parses"),
            x
        );
        let named = RecoveryTarget::new(
            StopPoint::RestorePoint {
                name: crate::restore_point::RestorePointName::parse("p1").expect("name"),
                lsn: 0x28,
            },
            1,
            src,
        );
        let v = serde_json::to_value(&named).expect("serializes");
        assert_eq!(
            (v["restore_point"].clone(), v["lsn"].clone()),
            (serde_json::json!("p1"), serde_json::json!("0/28"))
        );
        assert_eq!(
            serde_json::from_value::<RecoveryTarget>(v).expect("parses"),
            named
        );
        assert!(
            serde_json::from_value::<RecoveryTarget>(serde_json::json!(
                {"time": "2026-11-25T17:00:00Z", "lsn": "0/1", "timeline": 1, "wal_location": "w"}
            ))
            .is_err()
        );
    }

    #[test]
    fn progress_and_outcome_omit_what_is_unknown() {
        let p = RecoveryProgress {
            bytes_done: Some(5),
            bytes_total: Some(10),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&p).expect("serializes"),
            serde_json::json!({"bytes_done": 5, "bytes_total": 10})
        );
        let mut merged = p.clone();
        merged.merge(RecoveryProgress {
            bytes_done: Some(10),
            replayed_lsn: Some("0/1".into()),
            ..Default::default()
        });
        assert_eq!(
            (
                merged.bytes_done,
                merged.bytes_total,
                merged.replayed_lsn.as_deref()
            ),
            (Some(10), Some(10), Some("0/1"))
        );
        let o: RecoveryOutcome =
            serde_json::from_value(serde_json::json!({"new_timeline": 3})).expect("parses");
        assert_eq!(o.new_timeline, Some(3));
    }

    #[test]
    fn lsn_and_segment_arithmetic() {
        assert_eq!(parse_lsn("0/3000028"), Some(0x300_0028));
        assert_eq!(format_lsn(0x1_0000_0028), "1/28");
        assert_eq!(parse_lsn("1/100000000"), None);
        assert_eq!(parse_lsn("nope"), None);
        assert_eq!(lsn_segment("0/3000028"), Some(3));
        assert_eq!(lsn_segment("1/0"), Some(256));
        assert_eq!(segment_number("000000020000000100000002"), Some(258));
        assert_eq!(segment_number("short"), None);
        assert_eq!(segment_number("0000000200000001000000é02"), None);
    }
}
