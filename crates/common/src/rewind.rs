//! Rewind: a delayed copy of an instance kept on its host a fixed window behind the primary, so a
//! recovery to a time inside the window replays only the gap (docs/postgres-recovery.md, "Rewind").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::text_enum;

/// The longest rewind window an instance may ask for: one day. The copy holds the window's WAL
/// unapplied, so a longer window costs disk on the host for little use.
pub const MAX_WINDOW_MINUTES: u32 = 24 * 60;

text_enum! {
    /// Where an instance's delayed copy stands, as its guest last reported.
    pub enum RewindState {
        /// Being copied from the primary (`pg_basebackup`), or started after a recovery.
        Building => "BUILDING",
        /// Streaming and applying the primary's WAL `window` behind: recoveries use it.
        Ready => "READY",
        /// The last attempt to build or run it failed; the guest retries.
        Failed => "FAILED",
    }
}

/// What a guest reports of an instance's delayed copy, in each heartbeat while rewind is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewindStatus {
    /// The window the copy keeps, in seconds.
    pub window_secs: u32,
    pub state: RewindState,
    /// The newest point in time the copy has applied: a recovery to a later time (up to now)
    /// replays only the gap from here; an earlier one restores a base backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_until: Option<DateTime<Utc>>,
    /// The timeline the copy follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u32>,
    /// Bytes the copy takes on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Why the last build or start failed (state `FAILED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Bounds the text of a guest's error before it is stored: a report is not a log.
pub const MAX_ERROR_CHARS: usize = 2000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_travels_with_its_state_as_text() {
        let s = RewindStatus {
            window_secs: 600,
            state: RewindState::Ready,
            applied_until: None,
            timeline: Some(2),
            disk_bytes: None,
            error: None,
        };
        let v = serde_json::to_value(&s).expect("json");
        assert_eq!(v["state"], "READY");
        assert_eq!(serde_json::from_value::<RewindStatus>(v).expect("back"), s);
    }
}
