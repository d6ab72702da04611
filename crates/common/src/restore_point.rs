//! Named restore points (`pg_create_restore_point`): the strict name every daemon checks, and
//! the JSON object kept per point under the instance's WAL prefix, so the points can be listed
//! from the object store alone.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// PostgreSQL keeps a restore point's name in `MAXFNAMELEN` (64) bytes with its terminator.
pub const MAX_NAME_LEN: usize = 63;

/// A restore point name: 1 to 63 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit.
/// Narrow on purpose: the name is written into `recovery_target_name` and into an object key, so
/// it never needs escaping. Fixed-size so that a stop point naming it stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RestorePointName {
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
}

impl RestorePointName {
    /// The name, or None when it breaks the rules above.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let ok_first = b.first().is_some_and(u8::is_ascii_alphanumeric);
        let ok_rest = b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !(ok_first && ok_rest && b.len() <= MAX_NAME_LEN) {
            return None;
        }
        let mut bytes = [0; MAX_NAME_LEN];
        bytes[..b.len()].copy_from_slice(b);
        Some(Self {
            bytes,
            len: u8::try_from(b.len()).expect("at most 63 bytes"),
        })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("checked ASCII")
    }
}

impl fmt::Display for RestorePointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RestorePointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for RestorePointName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RestorePointName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("bad restore point name {s:?}")))
    }
}

/// What the store keeps of one restore point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePointRecord {
    pub id: Uuid,
    pub name: RestorePointName,
    /// `X/Y`, as `pg_create_restore_point` returned it (the end of its WAL record).
    pub lsn: String,
    pub timeline: u32,
    pub time: DateTime<Utc>,
}

/// `wal/<instance>/restore-points/<name>.json`: beside the WAL that holds the point's record, so
/// retention removes both together. The WAL key parser ignores this folder.
pub fn record_key(instance_id: Uuid, name: RestorePointName) -> String {
    format!(
        "{}/restore-points/{name}.json",
        crate::store::layout::wal_dir(instance_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_narrow_enough_to_need_no_quoting() {
        for good in ["before-migration", "v1.2_release", "A", &"x".repeat(63)] {
            assert_eq!(
                RestorePointName::parse(good).map(|n| n.to_string()),
                Some(good.to_string())
            );
        }
        for bad in [
            "",
            "-x",
            "_x",
            "a b",
            "a'b",
            "a/b",
            "é",
            "a\n",
            &"x".repeat(64),
        ] {
            assert!(RestorePointName::parse(bad).is_none(), "{bad:?}");
        }
        let n = RestorePointName::parse("p1").expect("name");
        assert_eq!(
            record_key(Uuid::from_u128(1), n),
            "wal/00000000-0000-0000-0000-000000000001/restore-points/p1.json"
        );
        assert!(crate::store::wal_keys::parse("restore-points/p1.json").is_none());
    }
}
