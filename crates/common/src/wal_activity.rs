//! The accident listing: what each committed transaction between two times did per relation, as
//! the guest reads it from the WAL store, with the filter a request narrows it by and the relation
//! journal that names tables, dropped ones included (docs/api.md, "Find the accident").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::text_enum;

/// At most this many transactions are listed, the newest kept: a wider range must be narrowed.
pub const MAX_TRANSACTIONS: usize = 500;
/// At most this many changes are listed per transaction (its largest first).
pub const MAX_CHANGES: usize = 32;
/// A relation filter is a name or `schema.name`, at most this long (two identifiers and a dot).
pub const MAX_RELATION_LEN: usize = 127;

text_enum! {
    /// Where one listing request stands (`wal_listings.state`): stored, sent to the guest, answered.
    pub enum ListingState {
        New => "NEW",
        Sent => "SENT",
        Completed => "COMPLETED",
        Failed => "FAILED",
    }
}

text_enum! {
    /// What a transaction did to one relation.
    pub enum ChangeKind {
        Insert => "INSERT",
        Update => "UPDATE",
        Delete => "DELETE",
        Truncate => "TRUNCATE",
        Create => "CREATE",
        Drop => "DROP",
        Alter => "ALTER",
    }
}

impl ChangeKind {
    /// Row changes carry a count; the others are whole-relation statements.
    pub fn counts_rows(self) -> bool {
        matches!(self, Self::Insert | Self::Update | Self::Delete)
    }
}

/// One kind of change to one relation within a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub database: String,
    /// `schema.name`.
    pub relation: String,
    pub kind: ChangeKind,
    /// Rows inserted, updated or deleted; `None` for the other kinds.
    pub rows: Option<u64>,
}

/// One committed transaction that changed at least one named relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub xid: u32,
    pub timeline: u32,
    /// Where its commit record starts.
    pub lsn: String,
    pub commit_time: DateTime<Utc>,
    pub changes: Vec<Change>,
    /// Changes left out beyond [`MAX_CHANGES`].
    #[serde(default)]
    pub more_changes: usize,
}

/// What a listing keeps: a kind, and a relation by name (`orders`, any schema) or by
/// `schema.name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ChangeKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

impl ActivityFilter {
    pub fn keeps(&self, c: &Change) -> bool {
        let kind_ok = self.kind.is_none_or(|k| k == c.kind);
        let relation_ok = self.relation.as_deref().is_none_or(|r| {
            c.relation == r
                || c.relation
                    .split_once('.')
                    .is_some_and(|(_, name)| name == r)
        });
        kind_ok && relation_ok
    }
}

/// The guest's answer: the transactions (oldest first) and how the listing was bounded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub transactions: Vec<Transaction>,
    /// More transactions matched than [`MAX_TRANSACTIONS`]; the oldest were left out.
    #[serde(default)]
    pub truncated: bool,
    /// WAL segments read.
    #[serde(default)]
    pub segments: usize,
}

/// A relation the guest saw in the live catalog: enough to name it by its file or its oid after
/// it is gone. Tables, partitioned tables and materialized views only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub db_oid: u32,
    pub database: String,
    pub oid: u32,
    pub relfilenode: u32,
    pub schema: String,
    pub name: String,
}

impl JournalEntry {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Every relation (and every file it ever had) seen in the live catalog, kept after a drop so
/// that the listing names what is gone. Only grows; entries are few (one per table and rewrite).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationJournal {
    pub entries: Vec<JournalEntry>,
}

impl RelationJournal {
    /// Adds what is new in `seen`; true when the journal changed.
    pub fn merge(&mut self, seen: impl IntoIterator<Item = JournalEntry>) -> bool {
        let mut changed = false;
        for e in seen {
            if !self.entries.contains(&e) {
                // A renamed relation keeps its file: the newest name wins for that file.
                self.entries
                    .retain(|o| !(o.db_oid == e.db_oid && o.relfilenode == e.relfilenode));
                self.entries.push(e);
                changed = true;
            }
        }
        changed
    }

    /// The relation whose file this was (the newest entry).
    pub fn by_file(&self, db_oid: u32, relfilenode: u32) -> Option<&JournalEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.db_oid == db_oid && e.relfilenode == relfilenode)
    }

    /// The relation of this oid (the newest entry).
    pub fn by_oid(&self, db_oid: u32, oid: u32) -> Option<&JournalEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.db_oid == db_oid && e.oid == oid)
    }
}

/// Where the journal of an instance is kept in the object store.
pub fn journal_key(instance_id: uuid::Uuid) -> String {
    format!("wal/{instance_id}/relations.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(oid: u32, file: u32, name: &str) -> JournalEntry {
        JournalEntry {
            db_oid: 5,
            database: "shop".into(),
            oid,
            relfilenode: file,
            schema: "public".into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_journal_keeps_old_files_and_the_newest_name() {
        let mut j = RelationJournal::default();
        assert!(j.merge([entry(100, 100, "orders")]));
        assert!(!j.merge([entry(100, 100, "orders")]));
        // Truncated: a new file, the old one still names the table.
        assert!(j.merge([entry(100, 120, "orders")]));
        assert_eq!(j.by_file(5, 100).expect("as built").name, "orders");
        assert_eq!(j.by_file(5, 120).expect("as built").oid, 100);
        // Renamed: the same file, the new name.
        assert!(j.merge([entry(100, 120, "orders_old")]));
        assert_eq!(j.by_file(5, 120).expect("as built").name, "orders_old");
        assert_eq!(j.by_oid(5, 100).expect("as built").name, "orders_old");
        assert!(j.by_file(6, 120).is_none());
    }

    #[test]
    fn a_filter_matches_a_kind_and_a_bare_or_qualified_name() {
        let c = Change {
            database: "shop".into(),
            relation: "app.orders".into(),
            kind: ChangeKind::Delete,
            rows: Some(3),
        };
        let f = |kind: Option<ChangeKind>, rel: Option<&str>| ActivityFilter {
            kind,
            relation: rel.map(str::to_string),
        };
        assert!(f(None, None).keeps(&c));
        assert!(f(Some(ChangeKind::Delete), Some("orders")).keeps(&c));
        assert!(f(None, Some("app.orders")).keeps(&c));
        assert!(!f(None, Some("public.orders")).keeps(&c));
        assert!(!f(Some(ChangeKind::Drop), None).keeps(&c));
        assert!(!f(None, Some("order")).keeps(&c));
    }
}
