//! Reads `pg_waldump` output line by line into committed transactions with the raw facts that
//! name what they did: row changes per file, files created and dropped, relations locked and
//! relations whose statistics were dropped (PostgreSQL 15's format; see the fixture).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};

/// A relation file or a relation oid inside one database: `(database oid, number)`.
pub(crate) type DbObject = (u32, u32);

/// Rows a transaction changed in one file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RowCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// What the records of one transaction (and its subtransactions) showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RawChanges {
    pub rows: BTreeMap<DbObject, RowCounts>,
    /// Files created (`Storage CREATE`).
    pub created_files: BTreeSet<DbObject>,
    /// Relations taken with AccessExclusiveLock (`Standby LOCK`): DDL and TRUNCATE.
    pub locked: BTreeSet<DbObject>,
}

impl RawChanges {
    fn absorb(&mut self, other: RawChanges) {
        for (k, v) in other.rows {
            let r = self.rows.entry(k).or_default();
            r.inserted += v.inserted;
            r.updated += v.updated;
            r.deleted += v.deleted;
        }
        self.created_files.extend(other.created_files);
        self.locked.extend(other.locked);
    }
}

/// A committed transaction, from its commit record and the records before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawCommit {
    pub xid: u32,
    pub lsn: u64,
    pub time: DateTime<Utc>,
    pub changes: RawChanges,
    /// Files the commit removes (`rels:`).
    pub dropped_files: BTreeSet<DbObject>,
    /// Relations whose statistics the commit drops (`dropped stats: 2/<db>/<oid>`): dropped ones.
    pub dropped_oids: BTreeSet<DbObject>,
}

/// Feeds lines in WAL order; yields each commit when its record is read.
#[derive(Default)]
pub(crate) struct Parser {
    open: HashMap<u32, RawChanges>,
}

/// The fields every `pg_waldump` record line has.
struct Line<'a> {
    rmgr: &'a str,
    xid: u32,
    lsn: u64,
    desc: &'a str,
}

fn split_line(line: &str) -> Option<Line<'_>> {
    let rest = line.strip_prefix("rmgr: ")?;
    let (rmgr, rest) = rest.split_once(' ')?;
    let (_, rest) = rest.split_once("tx:")?;
    let (xid, rest) = rest.split_once(',')?;
    let (_, rest) = rest.split_once("lsn:")?;
    let (lsn, rest) = rest.split_once(',')?;
    let (_, desc) = rest.split_once("desc: ")?;
    Some(Line {
        rmgr,
        xid: xid.trim().parse().ok()?,
        lsn: parse_lsn(lsn.trim())?,
        desc,
    })
}

pub(crate) fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// `rel 1663/16384/16385` (block references) → `(16384, 16385)`.
fn block_rel(desc: &str) -> Option<DbObject> {
    let (_, rest) = desc.split_once("blkref #0: rel ")?;
    let path = rest.split_whitespace().next()?;
    let mut parts = path.split('/');
    let (_spc, db, rel) = (parts.next()?, parts.next()?, parts.next()?);
    Some((db.parse().ok()?, rel.parse().ok()?))
}

/// A file path as the commit and storage records print it: `base/<db>/<file>` or
/// `pg_tblspc/<spc>/<version dir>/<db>/<file>`.
fn file_path(path: &str) -> Option<DbObject> {
    let mut parts = path.rsplit('/');
    let rel = parts.next()?.parse().ok()?;
    let db = parts.next()?.parse().ok()?;
    Some((db, rel))
}

impl Parser {
    pub(crate) fn feed(&mut self, line: &str) -> Option<RawCommit> {
        let l = split_line(line)?;
        match l.rmgr {
            "Heap" | "Heap2" => self.heap(&l),
            "Storage" => {
                if let Some(path) = l.desc.strip_prefix("CREATE ")
                    && l.xid != 0
                    && let Some(f) = file_path(path.trim())
                {
                    self.open.entry(l.xid).or_default().created_files.insert(f);
                }
            }
            "Standby" => {
                // `LOCK xid 734 db 16384 rel 16392 xid … db … rel …`
                if let Some(rest) = l.desc.strip_prefix("LOCK ") {
                    let words: Vec<&str> = rest.split_whitespace().collect();
                    for w in words.chunks(6) {
                        if let [_, xid, _, db, _, rel] = w
                            && let (Ok(xid), Ok(db), Ok(rel)) =
                                (xid.parse(), db.parse(), rel.parse())
                        {
                            self.open.entry(xid).or_default().locked.insert((db, rel));
                        }
                    }
                }
            }
            "Transaction" => return self.transaction(&l),
            _ => {}
        }
        None
    }

    fn heap(&mut self, l: &Line<'_>) {
        let verb = l.desc.split_whitespace().next().unwrap_or("");
        let verb = verb.strip_suffix("+INIT").unwrap_or(verb);
        let (field, n): (fn(&mut RowCounts) -> &mut u64, u64) = match (l.rmgr, verb) {
            ("Heap", "INSERT") => (|r| &mut r.inserted, 1),
            ("Heap", "UPDATE" | "HOT_UPDATE") => (|r| &mut r.updated, 1),
            ("Heap", "DELETE") => (|r| &mut r.deleted, 1),
            // `MULTI_INSERT 2 tuples flags 0x02` (COPY and multi-row inserts into some tables)
            ("Heap2", "MULTI_INSERT") => {
                let n = l
                    .desc
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                (|r| &mut r.inserted, n)
            }
            _ => return,
        };
        if l.xid == 0 {
            return;
        }
        if let Some(rel) = block_rel(l.desc) {
            let counts = self
                .open
                .entry(l.xid)
                .or_default()
                .rows
                .entry(rel)
                .or_default();
            *field(counts) += n;
        }
    }

    fn transaction(&mut self, l: &Line<'_>) -> Option<RawCommit> {
        let (verb, rest) = l.desc.split_once(' ').unwrap_or((l.desc, ""));
        let mut parts = rest.split("; ");
        let stamp = parts.next().unwrap_or("");
        let mut subxacts = Vec::new();
        let mut dropped_files = BTreeSet::new();
        let mut dropped_oids = BTreeSet::new();
        for part in parts {
            if let Some(list) = part.strip_prefix("subxacts: ") {
                subxacts.extend(
                    list.split_whitespace()
                        .filter_map(|x| x.parse::<u32>().ok()),
                );
            } else if let Some(list) = part.strip_prefix("rels: ") {
                dropped_files.extend(list.split_whitespace().filter_map(file_path));
            } else if let Some(list) = part.strip_prefix("dropped stats: ") {
                // `<kind>/<db>/<oid>`; kind 2 is a relation.
                for item in list.split_whitespace() {
                    let f: Vec<&str> = item.split('/').collect();
                    if let [kind, db, oid] = f[..]
                        && kind == "2"
                        && let (Ok(db), Ok(oid)) = (db.parse(), oid.parse())
                    {
                        dropped_oids.insert((db, oid));
                    }
                }
            }
        }
        let mut changes = self.open.remove(&l.xid).unwrap_or_default();
        for sub in &subxacts {
            if let Some(c) = self.open.remove(sub) {
                changes.absorb(c);
            }
        }
        if verb != "COMMIT" {
            // ABORT (and the two-phase records, which trove-rs's servers do not enable).
            return None;
        }
        Some(RawCommit {
            xid: l.xid,
            lsn: l.lsn,
            time: parse_time(stamp)?,
            changes,
            dropped_files,
            dropped_oids,
        })
    }
}

/// `2026-11-29 23:10:46.820841 UTC` (pg_waldump run with `TZ=UTC`).
fn parse_time(stamp: &str) -> Option<DateTime<Utc>> {
    let naive = stamp.trim().strip_suffix(" UTC")?;
    NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const FIXTURE: &str = include_str!("fixture_waldump.txt");

    pub(crate) fn commits() -> Vec<RawCommit> {
        let mut p = Parser::default();
        FIXTURE.lines().filter_map(|l| p.feed(l)).collect()
    }

    fn by_xid(xid: u32) -> RawCommit {
        commits()
            .into_iter()
            .find(|c| c.xid == xid)
            .expect("committed")
    }

    const DB: u32 = 16384;

    #[test]
    fn row_changes_are_counted_per_file() {
        let c = by_xid(727);
        assert_eq!(c.changes.rows[&(DB, 16385)].inserted, 5);
        assert_eq!(
            by_xid(729).changes.rows[&(DB, 16392)].inserted,
            2,
            "COPY's multi-insert"
        );
        assert_eq!(by_xid(730).changes.rows[&(DB, 16385)].updated, 2);
        assert_eq!(by_xid(742).changes.rows[&(DB, 16409)].deleted, 4);
        assert_eq!(
            by_xid(742).time.to_rfc3339(),
            "2026-11-29T23:11:56.653417+00:00"
        );
        assert_eq!(by_xid(742).lsn, parse_lsn("0/020015C8").expect("as built"));
    }

    #[test]
    fn subtransactions_count_for_their_top_transaction_and_aborts_for_nothing() {
        let c = by_xid(732);
        assert_eq!(c.changes.rows[&(DB, 16385)].inserted, 2);
        let all = commits();
        assert!(all.iter().all(|c| c.xid != 733 && c.xid != 741));
    }

    #[test]
    fn ddl_leaves_locks_new_files_and_dropped_relations() {
        let truncate = by_xid(734);
        assert!(truncate.changes.locked.contains(&(DB, 16392)));
        assert!(truncate.changes.created_files.contains(&(DB, 16397)));
        assert!(truncate.dropped_files.contains(&(DB, 16392)));
        assert!(truncate.dropped_oids.is_empty());
        let drop = by_xid(746);
        assert!(drop.dropped_oids.contains(&(DB, 16409)));
        assert!(drop.dropped_files.contains(&(DB, 16409)));
    }

    #[test]
    fn lines_that_are_not_records_are_skipped() {
        let mut p = Parser::default();
        assert!(p.feed("").is_none());
        assert!(
            p.feed("pg_waldump: error: error in WAL record at 0/1")
                .is_none()
        );
        assert!(
            p.feed("rmgr: Heap len (rec/tot): 1/1, tx: x, lsn: 0/1, prev 0/0, desc: INSERT")
                .is_none()
        );
    }
}
