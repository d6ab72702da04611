//! Which WAL objects a cut removes, and where each timeline's first segment moves: pure, from a
//! listing of `wal/<instance>/` (docs/object-store.md has the layout).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use trove_common::{
    recovery::segment_number,
    store::{Entry, wal_keys::StoredWal},
};

/// What pruning one instance's WAL removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruning {
    /// Every chunk and seal of the removed segments; history files always stay.
    pub keys: Vec<String>,
    pub bytes: u64,
    /// Per timeline, the lowest segment that may still be in the store after the pruning.
    pub floors: BTreeMap<u32, String>,
}

/// The name of segment number `segno` on timeline `tli` (16 MiB segments).
pub fn segment_name(tli: u32, segno: u64) -> String {
    format!("{tli:08X}{:08X}{:08X}", segno / 0x100, segno % 0x100)
}

/// Removes every segment numbered below `cut`, on every timeline of `timelines` (the ones the
/// control database knows) and of the listing.
pub fn below(wal: &StoredWal, timelines: &[u32], cut: u64) -> Pruning {
    let mut p = Pruning::default();
    for tli in timelines.iter().chain(wal.timelines.keys()) {
        p.floors.insert(*tli, segment_name(*tli, cut));
    }
    for tl in wal.timelines.values() {
        for (name, seg) in &tl.segments {
            if segment_number(name).is_some_and(|n| n < cut) {
                p.keys.extend(seg.keys.iter().cloned());
                p.bytes += seg.bytes;
            }
        }
    }
    p
}

/// Removes, per timeline and oldest first, the segments whose every object was written before
/// `before`, stopping at the first newer one, so that what stays is contiguous.
pub fn written_before(wal: &StoredWal, entries: &[Entry], before: DateTime<Utc>) -> Pruning {
    let modified: HashMap<&str, DateTime<Utc>> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.modified))
        .collect();
    let mut p = Pruning::default();
    for (tli, tl) in &wal.timelines {
        let mut last_removed = None;
        // Segment names sort in WAL order within a timeline.
        for (name, seg) in &tl.segments {
            let newest = seg
                .keys
                .iter()
                .filter_map(|k| modified.get(k.as_str()))
                .max();
            if newest.is_none_or(|m| *m >= before) {
                break;
            }
            let Some(n) = segment_number(name) else {
                break;
            };
            p.keys.extend(seg.keys.iter().cloned());
            p.bytes += seg.bytes;
            last_removed = Some(n);
        }
        if let Some(n) = last_removed {
            p.floors.insert(*tli, segment_name(*tli, n + 1));
        }
    }
    p
}

/// A timeline's gaps without those wholly below `floor`; one that straddles it starts there.
pub fn gaps_from(gaps: &[(String, String)], floor: &str) -> Vec<(String, String)> {
    let floor = floor.to_ascii_uppercase();
    gaps.iter()
        .filter(|(_, to)| to.to_ascii_uppercase() >= floor)
        .map(|(from, to)| {
            if from.to_ascii_uppercase() < floor {
                (floor.clone(), to.clone())
            } else {
                (from.clone(), to.clone())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use trove_common::store::wal_keys::{ChunkId, chunk_key, history_key, seal_key};

    use super::*;

    fn entry(key: String, age_secs: i64, now: DateTime<Utc>) -> Entry {
        Entry {
            key,
            size: 10,
            modified: now - Duration::seconds(age_secs),
        }
    }

    /// Segments 1..=4 of timeline 1 and 5..=6 of timeline 2, each a chunk and a seal, the older
    /// the lower; and both history files.
    fn listing(now: DateTime<Utc>) -> Vec<Entry> {
        let mut out = vec![
            entry(history_key("wal/i", 1), 1000, now),
            entry(history_key("wal/i", 2), 1000, now),
        ];
        for (tli, segno) in [(1, 1), (1, 2), (1, 3), (1, 4), (2, 5), (2, 6)] {
            let name = segment_name(tli, segno);
            let age = 100 * (7 - segno as i64);
            out.push(entry(
                chunk_key(
                    "wal/i",
                    tli,
                    &name,
                    ChunkId {
                        seq: 0,
                        start: 0,
                        end: 0x100,
                    },
                ),
                age,
                now,
            ));
            out.push(entry(
                seal_key("wal/i", tli, &name, &"a".repeat(64)),
                age,
                now,
            ));
        }
        out
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_name(2, 0x102), "000000020000000100000002");
        assert_eq!(segment_number(&segment_name(7, 12345)), Some(12345));
    }

    #[test]
    fn a_cut_removes_lower_segments_on_every_timeline_and_keeps_histories() {
        let now = Utc::now();
        let entries = listing(now);
        let wal = StoredWal::from_listing("wal/i", &entries);
        let p = below(&wal, &[1, 2, 3], 4);
        assert_eq!(p.keys.len(), 6, "segments 1-3 of timeline 1: {:?}", p.keys);
        assert!(p.keys.iter().all(|k| !k.ends_with(".history")));
        assert!(p.keys.iter().all(|k| k.starts_with("wal/i/tl1/")));
        assert_eq!(p.bytes, 30, "what the chunks take");
        assert_eq!(p.floors[&1], "000000010000000000000004");
        assert_eq!(p.floors[&3], "000000030000000000000004");
    }

    #[test]
    fn without_a_backup_old_segments_go_oldest_first() {
        let now = Utc::now();
        let entries = listing(now);
        let wal = StoredWal::from_listing("wal/i", &entries);
        // Ages: segment n was written 100 * (7 - n) seconds ago.
        let p = written_before(&wal, &entries, now - Duration::seconds(250));
        let removed: Vec<&String> = p.keys.iter().filter(|k| !k.contains("sealed")).collect();
        assert_eq!(removed.len(), 4, "segments 1-4: {removed:?}");
        assert_eq!(p.floors[&1], "000000010000000000000005");
        assert!(!p.floors.contains_key(&2));
    }

    #[test]
    fn gaps_below_the_floor_go_and_a_straddling_one_is_cut() {
        let g = |a: &str, b: &str| (a.to_string(), b.to_string());
        let gaps = vec![
            g("000000010000000000000002", "000000010000000000000003"),
            g("000000010000000000000005", "00000001000000000000000A"),
            g("00000001000000000000000C", "00000001000000000000000D"),
        ];
        assert_eq!(
            gaps_from(&gaps, "000000010000000000000007"),
            vec![
                g("000000010000000000000007", "00000001000000000000000A"),
                g("00000001000000000000000C", "00000001000000000000000D"),
            ]
        );
    }
}
