//! Proof, from the server log, that replay stopped where the target says and for that reason
//! (docs/postgres-recovery.md §3.6): PostgreSQL names the record it stopped at, and without such a
//! line no target was applied at all.

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{DateTime, Utc};
use trove_common::recovery::{StopPoint, format_lsn, parse_lsn};

/// Checks the last `recovery stopping …` line of `log` against `stop`. `Latest` has no target and
/// so no line to check.
pub(super) fn verify(log: &str, stop: StopPoint) -> Result<()> {
    if log.contains("recovery ended before configured recovery target was reached") {
        bail!("recovery ended before the target was reached: the WAL store ends too early");
    }
    if stop == StopPoint::Latest {
        return Ok(());
    }
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("recovery stopping "))
        .context("the server log shows no recovery stop point, so no target was applied")?;
    match stop {
        StopPoint::Latest => Ok(()),
        StopPoint::Time(target) => verify_time(line, target),
        StopPoint::Lsn(target) => verify_lsn(line, target),
        StopPoint::Xid { xid, inclusive } => verify_xid(line, xid, inclusive),
        StopPoint::RestorePoint { name, .. } => {
            let want = format!("recovery stopping at restore point \"{name}\",");
            ensure!(
                line.contains(&want),
                "replay did not stop at restore point {name}: {line:?}"
            );
            Ok(())
        }
    }
}

/// `recovery stopping before commit of transaction 735, time 2026-11-25 17:04:57.209137+00`, with
/// that time after the target.
fn verify_time(line: &str, target: DateTime<Utc>) -> Result<()> {
    ensure!(
        line.contains("recovery stopping before "),
        "replay stopped for another reason than the target time: {line:?}"
    );
    let stamp = line
        .rsplit_once(", time ")
        .map(|(_, s)| s.trim())
        .with_context(|| format!("no time in stop line {line:?}"))?;
    let stopped = DateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f%#z")
        .with_context(|| format!("bad time in stop line {line:?}"))?
        .with_timezone(&Utc);
    ensure!(
        stopped > target,
        "recovery stopped before a transaction at {stopped}, which is not after the target {target}"
    );
    Ok(())
}

/// `recovery stopping after WAL location (LSN) "0/3000060"`: the first record at or after the
/// target, replayed (the target is inclusive).
fn verify_lsn(line: &str, target: u64) -> Result<()> {
    let at = line
        .split_once("recovery stopping after WAL location (LSN) \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(lsn, _)| lsn)
        .with_context(|| {
            format!("replay stopped for another reason than the target LSN: {line:?}")
        })?;
    let at = parse_lsn(at).with_context(|| format!("bad LSN in stop line {line:?}"))?;
    ensure!(
        at >= target,
        "recovery stopped at {}, before the target {}",
        format_lsn(at),
        format_lsn(target)
    );
    Ok(())
}

/// `recovery stopping before commit of transaction 735, time …` (or `after`, or `abort`): exactly
/// this transaction, on the side the request asked for.
fn verify_xid(line: &str, xid: u32, inclusive: bool) -> Result<()> {
    let side = if inclusive { "after" } else { "before" };
    let ends_here = [
        format!("recovery stopping {side} commit of transaction {xid},"),
        format!("recovery stopping {side} abort of transaction {xid},"),
    ];
    ensure!(
        ends_here.iter().any(|p| line.contains(p.as_str())),
        "replay did not stop {side} transaction {xid}: {line:?}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid time")
            .with_timezone(&Utc)
    }

    #[test]
    fn a_time_stop_must_be_after_the_target() {
        let log = "2026-11-25 17:06:20.698 UTC [1] LOG:  recovery stopping before commit of transaction 735, time 2026-11-25 17:04:57.209137+00\n";
        assert!(verify(log, StopPoint::Time(at("2026-11-25T17:04:57.2+00:00"))).is_ok());
        assert!(verify(log, StopPoint::Time(at("2026-11-25T17:04:57.3+00:00"))).is_err());
    }

    #[test]
    fn a_log_without_a_stop_point_proves_nothing() {
        let log =
            "LOG:  consistent recovery state reached at 0/5000100\nLOG:  redo done at 0/5000100\n";
        let err = verify(log, StopPoint::Time(at("2026-11-25T17:04:57+00:00")))
            .expect_err("no stop line");
        assert!(format!("{err:#}").contains("no recovery stop point"));
        assert!(verify(log, StopPoint::Lsn(1)).is_err());
        assert!(verify(log, StopPoint::Latest).is_ok());
    }

    #[test]
    fn an_lsn_stop_is_at_or_after_the_target() {
        let log = "LOG:  recovery stopping after WAL location (LSN) \"0/3000060\"\n";
        assert!(verify(log, StopPoint::Lsn(0x300_0060)).is_ok());
        assert!(verify(log, StopPoint::Lsn(0x300_0028)).is_ok());
        assert!(verify(log, StopPoint::Lsn(0x300_0061)).is_err());
    }

    #[test]
    fn an_xid_stop_names_that_transaction_on_the_asked_side() {
        let before = "LOG:  recovery stopping before commit of transaction 735, time 2026-11-25 17:04:57.209137+00\n";
        let xid = |xid, inclusive| StopPoint::Xid { xid, inclusive };
        assert!(verify(before, xid(735, false)).is_ok());
        assert!(verify(before, xid(735, true)).is_err());
        assert!(verify(before, xid(73, false)).is_err());
        let after =
            "LOG:  recovery stopping after abort of transaction 736, time 2026-11-25 17:04:58+00\n";
        assert!(verify(after, xid(736, true)).is_ok());
        let name = trove_common::restore_point::RestorePointName::parse("p1").expect("a name");
        let at_point =
            "LOG:  recovery stopping at restore point \"p1\", time 2026-11-25 17:04:58+00\n";
        assert!(verify(at_point, StopPoint::RestorePoint { name, lsn: 1 }).is_ok());
        assert!(verify(before, StopPoint::RestorePoint { name, lsn: 1 }).is_err());
    }
}
