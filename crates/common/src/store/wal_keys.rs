//! How WAL lives in the store, and reading a listing back into segments (docs/object-store.md).
//!
//! Under `wal/<instance>/tl<N>/` (N decimal):
//! - `<TLI:08X>.history`: the timeline's history file;
//! - `<segment>/<SEQ:08X>-<START:08X>-<END:08X>.zst`: bytes `START..END` of a segment, zstd
//!   compressed, the SEQth upload of it, sent while the segment is written so the store trails the server by a fraction
//!   of a second. Chunks overlap (the last, half-filled page is sent again with the next chunk, and
//!   a segment of many chunks is sent again whole): applied in upload order, later bytes win,
//!   which is right because WAL bytes only ever go from unwritten to written;
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

pub fn chunk_key(wal_dir: &str, tli: u32, segment: &str, chunk: ChunkId) -> String {
    format!(
        "{}/{segment}/{:08X}-{:08X}-{:08X}.zst",
        timeline_dir(wal_dir, tli),
        chunk.seq,
        chunk.start,
        chunk.end
    )
}

/// Which upload of a segment a chunk is, and which bytes it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkId {
    pub seq: u64,
    pub start: u64,
    pub end: u64,
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
        chunk: ChunkId,
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
            let mut fields = leaf.strip_suffix(".zst")?.split('-');
            let (Some(seq), Some(start), Some(end), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return None;
            };
            if !is_hex(seq, 8) || !is_hex(start, 8) || !is_hex(end, 8) {
                return None;
            }
            let chunk = ChunkId {
                seq: u64::from_str_radix(seq, 16).ok()?,
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
            };
            (chunk.start < chunk.end).then_some(WalKey::Chunk {
                tli,
                segment,
                chunk,
            })
        }
        _ => None,
    }
}

/// A chunk of a segment in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub key: String,
    pub id: ChunkId,
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
        self.chunks.iter().map(|c| c.id.end).max().unwrap_or(0)
    }

    /// The next free upload number.
    pub fn next_seq(&self) -> u64 {
        self.chunks.iter().map(|c| c.id.seq + 1).max().unwrap_or(0)
    }

    /// The chunks to apply, in upload order, starting at the last one that starts at byte 0: it
    /// was read after every earlier upload, so it holds all they held.
    pub fn read_plan(&self) -> Vec<&Chunk> {
        let mut chunks: Vec<&Chunk> = self.chunks.iter().collect();
        chunks.sort_by_key(|c| c.id.seq);
        let from = chunks.iter().rposition(|c| c.id.start == 0).unwrap_or(0);
        chunks.split_off(from)
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
    fn segment_mut(&mut self, tli: u32, segment: String) -> &mut StoredSegment {
        self.timelines
            .entry(tli)
            .or_default()
            .segments
            .entry(segment)
            .or_default()
    }

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
                    chunk,
                } => {
                    let seg = wal.segment_mut(tli, segment);
                    seg.chunks.push(Chunk {
                        key: entry.key.clone(),
                        id: chunk,
                    });
                    seg.keys.push(entry.key.clone());
                    seg.bytes += entry.size;
                }
                WalKey::Seal {
                    tli,
                    segment,
                    sha256,
                } => {
                    let seg = wal.segment_mut(tli, segment);
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

    fn id(seq: u64, start: u64, end: u64) -> ChunkId {
        ChunkId { seq, start, end }
    }

    fn listing(keys: Vec<String>) -> Vec<Entry> {
        keys.into_iter()
            .map(|key| Entry {
                key,
                size: 1,
                modified: chrono::Utc::now(),
            })
            .collect()
    }

    #[test]
    fn keys_round_trip() {
        let wal = "wal/i";
        let chunk = chunk_key(wal, 1, SEG, id(7, 0x2000, 0x6000));
        assert_eq!(
            chunk,
            format!("wal/i/tl1/{SEG}/00000007-00002000-00006000.zst")
        );
        assert_eq!(
            parse(chunk.strip_prefix("wal/i/").expect("prefix")),
            Some(WalKey::Chunk {
                tli: 1,
                segment: SEG.into(),
                chunk: id(7, 0x2000, 0x6000)
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
            "tl1/short/00000000-00000000-00000001",
            &format!("tl1/{SEG}/00000000-00000002-00000001.zst"),
            &format!("tl1/{SEG}/00000000-00000001-00000002"),
            &format!("tl1/{SEG}/00000000-00000001"),
            &format!("tl1/{SEG}/sealed-zz"),
            &format!("tl1/{SEG}/a/b"),
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_resent_whole_segment_makes_earlier_chunks_irrelevant() {
        let wal = StoredWal::from_listing(
            "wal/i",
            &listing(vec![
                chunk_key("wal/i", 1, SEG, id(0, 0, 0x4000)),
                chunk_key("wal/i", 1, SEG, id(1, 0x2000, 0x8000)),
                chunk_key("wal/i", 1, SEG, id(2, 0, 0x1000000)),
                chunk_key("wal/i", 1, SEG, id(3, 0xFFE000, 0x1000000)),
                seal_key("wal/i", 1, SEG, &"0".repeat(64)),
                "wal/i/unrelated".into(),
            ]),
        );
        let seg = &wal.timelines[&1].segments[SEG];
        assert_eq!(seg.keys.len(), 5);
        assert!(seg.sealed.is_some());
        let seqs: Vec<u64> = seg.read_plan().iter().map(|c| c.id.seq).collect();
        assert_eq!(seqs, vec![2, 3]);
        assert_eq!(seg.next_seq(), 4);
        assert_eq!(seg.end(), 0x1000000);
    }

    #[test]
    fn open_segments_apply_chunks_in_upload_order() {
        let wal = StoredWal::from_listing(
            "wal/i",
            &listing(vec![
                chunk_key("wal/i", 1, SEG, id(1, 0x2000, 0x8000)),
                chunk_key("wal/i", 1, SEG, id(0, 0, 0x4000)),
            ]),
        );
        let seg = &wal.timelines[&1].segments[SEG];
        let seqs: Vec<u64> = seg.read_plan().iter().map(|c| c.id.seq).collect();
        assert_eq!(seqs, vec![0, 1]);
        assert_eq!(seg.end(), 0x8000);
        assert_eq!(seg.sealed, None);
    }
}
