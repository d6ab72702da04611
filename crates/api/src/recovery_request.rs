//! What a recovery in place and a restore into a new instance both ask for, handled once for
//! both: `point_in_time` and `timeline` parsed with the same rules, the named backup checked the
//! same way, and the target planned through the same path, so the two routes cannot drift apart.

use serde_json::{Map, Value};
use sqlx::PgConnection;
use trove_common::{
    recovery::{StopPoint, parse_lsn},
    restore_point::RestorePointName,
    status::BackupState,
};
use uuid::Uuid;

use crate::{
    db::{backups, wal},
    error::{ApiError, ApiResult},
    recovery_window::{self, Plan, timeline_number},
    validate::{self, bad},
};

/// `point_in_time` and `timeline` of a request object; null counts as absent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointInTime {
    pub stop: Option<StopPoint>,
    pub timeline: Option<u32>,
}

impl PointInTime {
    /// Reads the keys of the object `what` (`recovery`, `restorePoint`), whose name the errors
    /// quote.
    pub fn parse(obj: &Map<String, Value>, what: &str) -> ApiResult<Self> {
        let present = |k: &str| obj.get(k).filter(|v| !v.is_null());
        let stop = present("point_in_time").map(parse_stop_point).transpose()?;
        let timeline = present("timeline")
            .map(|t| {
                t.as_i64().and_then(timeline_number).ok_or_else(|| {
                    bad(format!(
                        "Validation error: {what}['timeline'] must be a positive integer"
                    ))
                })
            })
            .transpose()?;
        Ok(Self { stop, timeline })
    }

    /// A timeline only says along which history to replay; alone it names no target. Separate
    /// from [`Self::parse`] because each route checks it at its own place among its other keys.
    pub fn check_timeline(&self, what: &str) -> ApiResult<()> {
        if self.timeline.is_some() && self.stop.is_none() {
            return Err(bad(format!(
                "{what}['timeline'] only applies together with point_in_time."
            )));
        }
        Ok(())
    }
}

/// Parses `point_in_time`: `"latest"` or RFC 3339 **with** a zone offset. PostgreSQL would read a
/// zoneless time in the server's zone and silently stop elsewhere (docs/postgres-recovery.md P4).
pub fn parse_stop_point(v: &Value) -> ApiResult<StopPoint> {
    let s = v.as_str().ok_or_else(|| {
        bad("point_in_time must be a string: an RFC 3339 time with a zone offset, or \"latest\".")
    })?;
    if s == "latest" {
        return Ok(StopPoint::Latest);
    }
    // The longest RFC 3339 time (nanoseconds and an offset) has 35 characters.
    validate::text(s, "point_in_time", 64)?;
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| StopPoint::Time(t.to_utc()))
        .map_err(|_| {
            bad(format!(
                "point_in_time '{s}' is not an RFC 3339 time with a zone offset (e.g. 2026-11-25T17:00:00.5Z or 2026-11-25T18:00:00+01:00)."
            ))
        })
}

/// A `target` as a request names it; a restore point is looked up by name before planning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Stop(StopPoint),
    RestorePoint(RestorePointName),
}

/// Parses `target`, the stop points besides a time: `{"lsn": "X/Y"}`,
/// `{"xid": n, "inclusive": bool}` (stop just after the transaction when `inclusive` is true, the
/// default as in PostgreSQL, or just before it), or `{"restore_point": "<name>"}`. Exactly one
/// kind per target.
pub fn parse_target(v: &Value, what: &str) -> ApiResult<Target> {
    let obj = v.as_object().ok_or_else(|| {
        bad(format!(
            "Validation error: {what}['target'] must be an object naming one of lsn, xid or restore_point"
        ))
    })?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "lsn" | "xid" | "inclusive" | "restore_point"))
    {
        return Err(bad(format!(
            "Validation error: {what}['target'] has an unknown key '{k}' (allowed: lsn, xid, inclusive, restore_point)."
        )));
    }
    let inclusive = match obj.get("inclusive") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(bad(format!(
                "Validation error: {what}['target']['inclusive'] must be true or false"
            )));
        }
    };
    let named: Vec<&str> = ["lsn", "xid", "restore_point"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    if named.len() > 1 {
        return Err(bad(format!(
            "{what}['target'] names two targets ({}); name one.",
            named.join(" and ")
        )));
    }
    if inclusive.is_some() && !obj.contains_key("xid") {
        return Err(bad(format!(
            "{what}['target']['inclusive'] applies to an xid target only."
        )));
    }
    if let Some(lsn) = obj.get("lsn") {
        return parse_lsn_text(lsn, what).map(|l| Target::Stop(StopPoint::Lsn(l)));
    }
    if let Some(xid) = obj.get("xid") {
        return Ok(Target::Stop(StopPoint::Xid {
            xid: parse_xid(xid, what)?,
            inclusive: inclusive.unwrap_or(true),
        }));
    }
    if let Some(name) = obj.get("restore_point") {
        return crate::routes::restore_points::parse_name(
            Some(name),
            &format!("{what}['target']['restore_point']"),
        )
        .map(Target::RestorePoint);
    }
    Err(bad(format!(
        "Validation error: {what}['target'] must name one of lsn, xid or restore_point"
    )))
}

/// The stop point of a completed restore point of `instance`: 404 when it has none of that name,
/// 422 while it is not completed (its position is not known yet, or it failed).
pub async fn resolve_restore_point(
    conn: &mut PgConnection,
    instance: Uuid,
    name: RestorePointName,
) -> ApiResult<StopPoint> {
    let row = crate::db::restore_points::find_by_name(conn, instance, name.as_str())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Instance {instance} has no restore point named '{name}'."
            ))
        })?;
    match (row.state.as_str(), row.lsn.as_deref().and_then(parse_lsn)) {
        ("COMPLETED", Some(lsn)) => Ok(StopPoint::RestorePoint { name, lsn }),
        (state, _) => Err(ApiError::Unprocessable(format!(
            "Restore point '{name}' of instance {instance} is {state}, not COMPLETED."
        ))),
    }
}

/// `X/Y` as PostgreSQL prints an LSN: two groups of 1 to 8 hex digits, nothing else.
fn parse_lsn_text(v: &Value, what: &str) -> ApiResult<u64> {
    let refuse = || {
        bad(format!(
            "Validation error: {what}['target']['lsn'] must be an LSN like \"0/3000028\" (two groups of 1 to 8 hex digits)"
        ))
    };
    let s = v.as_str().ok_or_else(refuse)?;
    let hex = |p: &str| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit());
    match s.split_once('/') {
        Some((hi, lo)) if hex(hi) && hex(lo) => {
            trove_common::recovery::parse_lsn(s).ok_or_else(refuse)
        }
        _ => Err(refuse()),
    }
}

/// A 32-bit transaction id as a JSON integer. 0 to 2 are PostgreSQL's special ids (invalid,
/// bootstrap, frozen), which no transaction commits with.
fn parse_xid(v: &Value, what: &str) -> ApiResult<u32> {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .filter(|x| *x >= 3)
        .ok_or_else(|| {
            bad(format!(
                "Validation error: {what}['target']['xid'] must be a transaction id: an integer from 3 to 4294967295"
            ))
        })
}

/// What a backup is wanted for, which words its refusal.
#[derive(Debug, Clone, Copy)]
pub enum BackupUse {
    /// Recovery of an instance in place.
    Recovery,
    /// Restore into a new instance.
    Restore,
}

/// Only a completed backup can be restored: 409 otherwise.
pub fn ensure_completed(backup: &backups::BackupRow, usage: BackupUse) -> ApiResult<()> {
    if backup.state == BackupState::Completed {
        return Ok(());
    }
    let (id, state) = (backup.id, backup.state);
    let completed = BackupState::Completed;
    Err(ApiError::Conflict(match usage {
        BackupUse::Recovery => format!(
            "Backup {id} cannot be used for a recovery: its status is {state}, not {completed}."
        ),
        BackupUse::Restore => {
            format!("Backup {id} cannot be restored: its status is {state}, not {completed}.")
        }
    }))
}

/// The backup a request names: 404 when the tenant has no such backup, 409 when it is not
/// complete.
pub async fn requested_backup(
    conn: &mut PgConnection,
    tenant: &str,
    id: Uuid,
    usage: BackupUse,
) -> ApiResult<backups::BackupRow> {
    let backup = backups::find(conn, id, Some(tenant))
        .await?
        .ok_or_else(|| ApiError::not_found(id))?;
    ensure_completed(&backup, usage)?;
    Ok(backup)
}

/// Plans a replay of `source`'s WAL to `stop`, along `timeline` (the source's current one when
/// None), from `backup` or the best one. The one path from a request to a `RecoveryTarget`, for a
/// recovery in place and a restore into a new instance alike; refuses before anything is written.
pub async fn plan(
    conn: &mut PgConnection,
    source: Uuid,
    stop: StopPoint,
    timeline: Option<u32>,
    backup: Option<Uuid>,
) -> ApiResult<Plan> {
    let w = wal::planning_window(conn, source, timeline).await?;
    recovery_window::plan(&w, stop, backup)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn targets_need_a_zone() {
        assert!(parse_stop_point(&json!("2026-11-25T17:00:00")).is_err());
        assert!(parse_stop_point(&json!("2026-11-25 17:00:00")).is_err());
        assert_eq!(
            parse_stop_point(&json!("latest")).ok(),
            Some(StopPoint::Latest)
        );
        assert!(matches!(
            parse_stop_point(&json!("2026-11-25T17:00:00.25+01:00")),
            Ok(StopPoint::Time(_))
        ));
    }

    #[test]
    fn a_target_names_exactly_one_lsn_or_xid() {
        let t = |v: Value| {
            parse_target(&v, "recovery").map(|t| match t {
                Target::Stop(s) => s,
                Target::RestorePoint(_) => StopPoint::Latest,
            })
        };
        assert_eq!(
            t(json!({"lsn": "0/3000028"})).ok(),
            Some(StopPoint::Lsn(0x300_0028))
        );
        assert_eq!(
            t(json!({"lsn": "1/FFFFFFFF"})).ok(),
            Some(StopPoint::Lsn(0x1_FFFF_FFFF))
        );
        assert_eq!(
            t(json!({"xid": 735})).ok(),
            Some(StopPoint::Xid {
                xid: 735,
                inclusive: true
            })
        );
        assert_eq!(
            t(json!({"xid": 735, "inclusive": false})).ok(),
            Some(StopPoint::Xid {
                xid: 735,
                inclusive: false
            })
        );
        for refused in [
            json!({"lsn": "0/3000028", "xid": 735}),
            json!({}),
            json!("0/3000028"),
            json!({"lsn": "3000028"}),
            json!({"lsn": " 0/1"}),
            json!({"lsn": "0/123456789"}),
            json!({"lsn": "0/xyz"}),
            json!({"lsn": "/1"}),
            json!({"lsn": 5}),
            json!({"lsn": "0/1", "inclusive": false}),
            json!({"xid": 2}),
            json!({"xid": -1}),
            json!({"xid": 4_294_967_296_i64}),
            json!({"xid": "735"}),
            json!({"xid": 1.5}),
            json!({"xid": 735, "inclusive": "no"}),
            json!({"time": "2026-11-25T17:00:00Z"}),
            json!({"restore_point": "a'b"}),
            json!({"restore_point": "p1", "lsn": "0/1"}),
            json!({"restore_point": "p1", "inclusive": true}),
        ] {
            assert!(
                matches!(t(refused.clone()), Err(ApiError::BadRequest(_))),
                "{refused}"
            );
        }
    }

    #[test]
    fn a_restore_point_target_is_a_strict_name() {
        assert_eq!(
            parse_target(&json!({"restore_point": "before-v2"}), "recovery").ok(),
            RestorePointName::parse("before-v2").map(Target::RestorePoint)
        );
    }

    #[test]
    fn a_timeline_must_be_positive_and_needs_a_point_in_time() {
        let p = PointInTime::parse(&object(json!({"point_in_time": null, "timeline": 2})), "x")
            .expect("parses");
        assert_eq!((p.stop, p.timeline), (None, Some(2)));
        assert!(matches!(
            p.check_timeline("recovery"),
            Err(ApiError::BadRequest(m)) if m == "recovery['timeline'] only applies together with point_in_time."
        ));
        for bad_timeline in [
            json!(0),
            json!(-1),
            json!("2"),
            json!(1.5),
            json!(2_147_483_648_i64),
        ] {
            assert!(matches!(
                PointInTime::parse(&object(json!({"timeline": bad_timeline})), "restorePoint"),
                Err(ApiError::BadRequest(m)) if m == "Validation error: restorePoint['timeline'] must be a positive integer"
            ));
        }
    }
}
