//! Turns a transaction's raw WAL facts into named changes, with the relation journal
//! ([`RelationJournal`]) that maps files and oids to tables, dropped ones included.
//!
//! PostgreSQL 15 at `wal_level = replica` logs no TRUNCATE record and no DDL text, so statements
//! are recognised by their traces (docs/api.md, "Find the accident"):
//! - an AccessExclusiveLock on a table (`Standby LOCK`) marks DDL or TRUNCATE on it;
//! - a table whose oid the commit's `dropped stats` list: DROP;
//! - a locked table with a new file numbered as its oid: CREATE (a new relation's first file);
//! - a locked table and new files for existing relations (files nobody locked): its data was
//!   swapped, TRUNCATE, unless a transient heap (created, locked and dropped in the same
//!   transaction) shows a rewrite by ALTER TABLE;
//! - any other locked table: ALTER.

use trove_common::{
    recovery::format_lsn,
    wal_activity::{Change, ChangeKind, JournalEntry, MAX_CHANGES, RelationJournal, Transaction},
};

use super::parse::RawCommit;

/// The transaction as listed, or `None` when it changed no relation the journal names.
pub(crate) fn classify(
    c: &RawCommit,
    timeline: u32,
    journal: &RelationJournal,
) -> Option<Transaction> {
    let raw = &c.changes;
    let table = |(db, oid): (u32, u32)| journal.by_oid(db, oid);
    // Transient heaps: created, locked and dropped here, as ALTER TABLE rewrites a table.
    let transient: Vec<(u32, u32)> = raw
        .locked
        .iter()
        .filter(|o| raw.created_files.contains(o) && c.dropped_oids.contains(o))
        .copied()
        .collect();
    let swapped = raw.created_files.iter().any(|f| !raw.locked.contains(f));

    let mut changes: Vec<Change> = Vec::new();
    let mut push = |e: &JournalEntry, kind: ChangeKind, rows: Option<u64>| {
        changes.push(Change {
            database: e.database.clone(),
            relation: e.qualified(),
            kind,
            rows,
        });
    };
    for &o in &c.dropped_oids {
        // Created and dropped here: the transient heap of a rewrite, not a table of the user's.
        if raw.created_files.contains(&o) {
            continue;
        }
        if let Some(e) = table(o) {
            push(e, ChangeKind::Drop, None);
        }
    }
    for &o in &raw.locked {
        if c.dropped_oids.contains(&o) {
            continue;
        }
        let Some(e) = table(o) else { continue };
        let kind = if raw.created_files.contains(&o) {
            ChangeKind::Create
        } else if swapped && transient.is_empty() {
            ChangeKind::Truncate
        } else {
            ChangeKind::Alter
        };
        push(e, kind, None);
    }
    let mut rows: Vec<(&JournalEntry, ChangeKind, u64)> = Vec::new();
    for (&(db, file), counts) in &raw.rows {
        // A rewrite copies the rows into its transient heap: not the user's inserts.
        if transient.contains(&(db, file)) {
            continue;
        }
        let Some(e) = journal.by_file(db, file) else {
            continue;
        };
        for (kind, n) in [
            (ChangeKind::Insert, counts.inserted),
            (ChangeKind::Update, counts.updated),
            (ChangeKind::Delete, counts.deleted),
        ] {
            if n == 0 {
                continue;
            }
            // A table rewritten in the transaction has rows in two files: one entry.
            match rows
                .iter_mut()
                .find(|(r, k, _)| r.db_oid == e.db_oid && r.oid == e.oid && *k == kind)
            {
                Some(existing) => existing.2 += n,
                None => rows.push((e, kind, n)),
            }
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.2));
    for (e, kind, n) in rows {
        push(e, kind, Some(n));
    }
    if changes.is_empty() {
        return None;
    }
    let more_changes = changes.len().saturating_sub(MAX_CHANGES);
    changes.truncate(MAX_CHANGES);
    Some(Transaction {
        xid: c.xid,
        timeline,
        lsn: format_lsn(c.lsn),
        commit_time: c.time,
        changes,
        more_changes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::parse::tests::commits;
    use super::*;

    const DB: u32 = 16384;

    /// What the guest's catalog snapshots would have recorded while the fixture's statements ran.
    fn journal() -> RelationJournal {
        let e = |oid, file, schema: &str, name: &str| JournalEntry {
            db_oid: DB,
            database: "shop".into(),
            oid,
            relfilenode: file,
            schema: schema.into(),
            name: name.into(),
        };
        RelationJournal {
            entries: vec![
                e(16385, 16385, "public", "orders"),
                e(16392, 16392, "public", "items"),
                e(16392, 16397, "public", "items"),
                e(16385, 16402, "public", "orders"),
                e(16409, 16409, "public", "t2"),
                e(16413, 16413, "app", "acct"),
            ],
        }
    }

    fn listed() -> Vec<Transaction> {
        let j = journal();
        commits()
            .iter()
            .filter_map(|c| classify(c, 1, &j))
            .collect()
    }

    fn kinds(xid: u32) -> Vec<(String, ChangeKind, Option<u64>)> {
        listed()
            .into_iter()
            .find(|t| t.xid == xid)
            .map(|t| {
                t.changes
                    .into_iter()
                    .map(|c| (c.relation, c.kind, c.rows))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn one(
        rel: &str,
        kind: ChangeKind,
        rows: Option<u64>,
    ) -> Vec<(String, ChangeKind, Option<u64>)> {
        vec![(rel.to_string(), kind, rows)]
    }

    #[test]
    fn each_statement_of_the_fixture_is_named() {
        assert_eq!(kinds(725), one("public.orders", ChangeKind::Create, None));
        assert_eq!(kinds(726), one("public.items", ChangeKind::Create, None));
        assert_eq!(
            kinds(727),
            one("public.orders", ChangeKind::Insert, Some(5))
        );
        assert_eq!(kinds(729), one("public.items", ChangeKind::Insert, Some(2)));
        assert_eq!(
            kinds(730),
            one("public.orders", ChangeKind::Update, Some(2))
        );
        assert_eq!(
            kinds(731),
            one("public.orders", ChangeKind::Delete, Some(1))
        );
        assert_eq!(
            kinds(732),
            one("public.orders", ChangeKind::Insert, Some(2))
        );
        assert_eq!(kinds(734), one("public.items", ChangeKind::Truncate, None));
        assert_eq!(kinds(735), one("public.orders", ChangeKind::Alter, None));
        assert_eq!(
            kinds(736),
            one("public.orders", ChangeKind::Alter, None),
            "a rewrite"
        );
        assert_eq!(kinds(737), vec![], "CREATE INDEX locks only the new index");
        assert_eq!(kinds(738), one("public.items", ChangeKind::Drop, None));
        assert_eq!(kinds(740), one("public.t2", ChangeKind::Insert, Some(10)));
        assert_eq!(kinds(742), one("public.t2", ChangeKind::Delete, Some(4)));
        assert_eq!(kinds(744), one("app.acct", ChangeKind::Create, None));
        assert_eq!(kinds(745), one("app.acct", ChangeKind::Insert, Some(2)));
        assert_eq!(kinds(746), one("public.t2", ChangeKind::Drop, None));
    }

    #[test]
    fn relations_the_journal_never_saw_are_left_out() {
        let empty = RelationJournal::default();
        assert!(commits().iter().all(|c| classify(c, 1, &empty).is_none()));
    }

    #[test]
    fn a_listed_transaction_carries_its_commit_position_and_timeline() {
        let t = listed()
            .into_iter()
            .find(|t| t.xid == 742)
            .expect("as built");
        assert_eq!(t.lsn, "0/20015C8");
        assert_eq!(t.timeline, 1);
        assert_eq!(t.more_changes, 0);
    }
}
