//! Trove's timestamp format: naive UTC `YYYY-MM-DDTHH:MM:SS`, no zone suffix.

use chrono::{DateTime, Utc};

pub fn trove_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Seconds since the epoch with microseconds, as Trove's guests send `sent`.
pub fn epoch_seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_without_zone_or_fraction() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 24, 22, 17, 41)
            .single()
            .expect("valid date");
        assert_eq!(trove_time(t), "2026-11-24T22:17:41");
    }
}
