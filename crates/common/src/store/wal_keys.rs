//! How WAL lives in the store, and reading a listing back into segments (docs/object-store.md).
//!
//! Under `wal/<instance>/tl<N>/` (N decimal):
//! - `<TLI:08X>.history`: the timeline's history file;
//! - `<segment>/<START:08X>-<END:08X>`: bytes `START..END` of a segment, uploaded while the
//!   segment is written, so the store trails the server by a fraction of a second. Chunks of one
//!   segment may overlap (the last, half-filled page is sent again with the next chunk); applied
//!   in order of their start they give the segment;
//! - `<segment>/sealed-<sha256>`: empty; the segment is complete and the chunks, put together,
//!   hash to `<sha256>`.
//!
//! Every object is written once under a name no other write uses, so the layout never needs a
//! conditional write (which Swift's S3 API does not offer atomically).

use std::collections::BTreeMap;

use super::Entry;

/// `tl<N>` directory of a timeline.
pub fn timeline_dir(wal_dir: &str, tli: u32) -> String {
    format!("{wal_dir}/tl{tli}")
}

pub fn history_key(wal_dir: &str, tli: u32) -> String {
    format!("{}/{tli:08X}.history", timeline_dir(wal_dir, tli))
}

pub fn chunk_key(wal_dir: &str, tli: u32, segment: &str, start: u64, end: u64) -> String {
    format!(
        "{}/{segment}/{start:08X}-{end:08X}",
        timeline_dir(wal_dir, tli)
    )
}

pub fn seal_key(wal_dir: &str, tli: u32, segment: &str, sha256: &str) -> String {
    format!("{}/{segment}/sealed-{sha256}", timeline_dir(wal_dir, tli))
}

/// One WAL object, from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalKey {
    History {
        tli: u32,
    },
    Chunk {
        tli: u32,
        segment: String,
        start: u64,
        end: u64,
    },
    Seal {
        tli: u32,
        segment: String,
        sha256: String,
    },
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads a key relative to the instance's WAL directory (`tl1/…`); None for anything else.
pub fn parse(rel: &str) -> Option<WalKey> {
    let mut parts = rel.split('/');
    let tl = parts.next()?;
    let tli: u32 = tl.strip_prefix("tl")?.parse().ok()?;
    let second = parts.next()?;
    match (parts.next(), parts.next()) {
        (None, _) => {
            let hist = second.strip_suffix(".history")?;
            (is_hex(hist, 8) && u32::from_str_radix(hist, 16).ok()? == tli)
                .then_some(WalKey::History { tli })
        }
        (Some(leaf), None) => {
            if !is_hex(second, 24) {
                return None;
            }
            let segment = second.to_owned();
            if let Some(sha) = leaf.strip_prefix("sealed-") {
                return is_hex(sha, 64).then(|| WalKey::Seal {
                    tli,
                    segment,
                    sha256: sha.to_ascii_lowercase(),
                });
            }
            let (start, end) = leaf.split_once('-')?;
            if !is_hex(start, 8) || !is_hex(end, 8) {
                return None;
            }
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            (start < end).then_some(WalKey::Chunk {
                tli,
                segment,
                start,
                end,
            })
        }
        _ => None,
    }
}

/// A chunk of a segment in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub key: String,
    pub start: u64,
    pub end: u64,
}

/// One segment as the store holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSegment {
    pub chunks: Vec<Chunk>,
    /// The sha256 of the complete segment, once sealed.
    pub sealed: Option<String>,
    /// Every key of the segment (chunks and seal), for deletion.
    pub keys: Vec<String>,
    /// Bytes the segment's objects take.
    pub bytes: u64,
}

impl StoredSegment {
    /// How far the stored bytes reach (the end of the last chunk).
    pub fn end(&self) -> u64 {
        self.chunks.iter().map(|c| c.end).max().unwrap_or(0)
    }

    /// The chunks to apply, in order: a chunk from 0 to the end alone when there is one (a
    /// compacted segment), else all of them by start.
    pub fn read_plan(&self) -> Vec<&Chunk> {
        let end = self.end();
        if let Some(whole) = self.chunks.iter().find(|c| c.start == 0 && c.end == end) {
            return vec![whole];
        }
        let mut chunks: Vec<&Chunk> = self.chunks.iter().collect();
        chunks.sort_by_key(|c| (c.start, c.end));
        chunks
    }
}

/// One timeline as the store holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredTimeline {
    pub history: Option<String>,
    /// By segment name (24 hex digits, which sort in WAL order within a timeline).
    pub segments: BTreeMap<String, StoredSegment>,
}

/// An instance's WAL in the store, by timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredWal {
    pub timelines: BTreeMap<u32, StoredTimeline>,
}

impl StoredWal {
    /// Reads a listing of `wal_dir` (keys relative to the store). Unknown keys are ignored.
    pub fn from_listing(wal_dir: &str, entries: &[Entry]) -> StoredWal {
        let mut wal = StoredWal::default();
        let base = format!("{wal_dir}/");
        for entry in entries {
            let Some(rel) = entry.key.strip_prefix(&base) else {
                continue;
            };
            let Some(parsed) = parse(rel) else {
                continue;
            };
            match parsed {
                WalKey::History { tli } => {
                    wal.timelines.entry(tli).or_default().history = Some(entry.key.clone());
                }
                WalKey::Chunk {
                    tli,
                    segment,
                    start,
                    end,
                } => {
                    let seg = wal
                        .timelines
                        .entry(tli)
                        .or_default()
                        .segments
                        .entry(segment)
                        .or_default();
                    seg.chunks.push(Chunk {
                        key: entry.key.clone(),
                        start,
                        end,
                    });
                    seg.keys.push(entry.key.clone());
                    seg.bytes += entry.size;
                }
                WalKey::Seal {
                    tli,
                    segment,
                    sha256,
                } => {
                    let seg = wal
                        .timelines
                        .entry(tli)
                        .or_default()
                        .segments
                        .entry(segment)
                        .or_default();
                    seg.sealed = Some(sha256);
                    seg.keys.push(entry.key.clone());
                }
            }
        }
        wal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: &str = "000000010000000000000003";

    #[test]
    fn keys_round_trip() {
        let wal = "wal/i";
        let chunk = chunk_key(wal, 1, SEG, 0x2000, 0x6000);
        assert_eq!(chunk, format!("wal/i/tl1/{SEG}/00002000-00006000"));
        assert_eq!(
            parse(chunk.strip_prefix("wal/i/").expect("prefix")),
            Some(WalKey::Chunk {
                tli: 1,
                segment: SEG.into(),
                start: 0x2000,
                end: 0x6000
            })
        );
        let sha = "ab".repeat(32);
        let seal = seal_key(wal, 1, SEG, &sha);
        assert_eq!(
            parse(seal.strip_prefix("wal/i/").expect("prefix")),
            Some(WalKey::Seal {
                tli: 1,
                segment: SEG.into(),
                sha256: sha
            })
        );
        assert_eq!(history_key(wal, 10), "wal/i/tl10/0000000A.history");
        assert_eq!(
            parse("tl10/0000000A.history"),
            Some(WalKey::History { tli: 10 })
        );
        for bad in [
            "tl1/0000000A.history",
            "tlx/x",
            "tl1/short/00000000-00000001",
            &format!("tl1/{SEG}/00000002-00000001"),
            &format!("tl1/{SEG}/sealed-zz"),
            &format!("tl1/{SEG}/a/b"),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_compacted_segment_reads_from_its_whole_chunk_alone() {
        let entry = |key: String| Entry {
            key,
            size: 1,
            modified: chrono::Utc::now(),
        };
        let listing = vec![
            entry(chunk_key("wal/i", 1, SEG, 0x2000, 0x1000000)),
            entry(chunk_key("wal/i", 1, SEG, 0, 0x4000)),
            entry(chunk_key("wal/i", 1, SEG, 0, 0x1000000)),
            entry(seal_key("wal/i", 1, SEG, &"0".repeat(64))),
            entry("wal/i/unrelated".into()),
        ];
        let wal = StoredWal::from_listing("wal/i", &listing);
        let seg = &wal.timelines[&1].segments[SEG];
        assert_eq!(seg.keys.len(), 4);
        assert!(seg.sealed.is_some());
        let plan = seg.read_plan();
        assert_eq!(plan.len(), 1);
        assert_eq!((plan[0].start, plan[0].end), (0, 0x1000000));
    }

    #[test]
    fn open_segments_apply_chunks_by_start() {
        let entry = |key: String| Entry {
            key,
            size: 1,
            modified: chrono::Utc::now(),
        };
        let listing = vec![
            entry(chunk_key("wal/i", 1, SEG, 0x2000, 0x8000)),
            entry(chunk_key("wal/i", 1, SEG, 0, 0x4000)),
        ];
        let wal = StoredWal::from_listing("wal/i", &listing);
        let seg = &wal.timelines[&1].segments[SEG];
        let starts: Vec<u64> = seg.read_plan().iter().map(|c| c.start).collect();
        assert_eq!(starts, vec![0, 0x2000]);
        assert_eq!(seg.end(), 0x8000);
        assert_eq!(seg.sealed, None);
    }
}
