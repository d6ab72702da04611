//! The retention policy of backups and WAL (docs/object-store.md, "Retention"): the operator's
//! default, a tenant's per-instance override, and the bounds both must keep. The taskmanager
//! enforces it; the API shows it and takes the overrides.

use serde::{Deserialize, Serialize};

/// The longest window: 3650 days. The control database's checks use the same number.
pub const MAX_WINDOW_SECS: i64 = 3650 * 86_400;
/// The most full backups a policy may insist on keeping.
pub const MAX_MIN_BACKUPS: i32 = 100;
/// The built-in default window: 7 days.
pub const DEFAULT_WINDOW_SECS: i64 = 7 * 86_400;
/// The built-in default: keep at least the newest full backup.
pub const DEFAULT_MIN_BACKUPS: i32 = 1;

/// What is kept: every point in time of the last `window_secs` stays recoverable, and at least
/// the newest `min_backups` completed backups stay, however old.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub window_secs: i64,
    pub min_backups: i32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            window_secs: DEFAULT_WINDOW_SECS,
            min_backups: DEFAULT_MIN_BACKUPS,
        }
    }
}

impl Policy {
    /// The policy of an instance whose override columns hold `window_secs` and `min_backups`
    /// (null = this default's value).
    pub fn overridden(self, window_secs: Option<i64>, min_backups: Option<i32>) -> Self {
        Self {
            window_secs: window_secs.unwrap_or(self.window_secs),
            min_backups: min_backups.unwrap_or(self.min_backups),
        }
    }

    /// None when the policy is within bounds, else what is wrong, naming the key.
    pub fn problem(&self) -> Option<String> {
        window_problem(self.window_secs).or_else(|| min_backups_problem(self.min_backups))
    }
}

/// None when `window_secs` is a window a policy may have.
pub fn window_problem(window_secs: i64) -> Option<String> {
    (!(1..=MAX_WINDOW_SECS).contains(&window_secs))
        .then(|| format!("window_secs must be an integer from 1 to {MAX_WINDOW_SECS} (3650 days)"))
}

/// None when `min_backups` is a count a policy may have.
pub fn min_backups_problem(min_backups: i32) -> Option<String> {
    (!(0..=MAX_MIN_BACKUPS).contains(&min_backups))
        .then(|| format!("min_backups must be an integer from 0 to {MAX_MIN_BACKUPS}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_replaces_only_the_keys_it_sets() {
        let d = Policy::default();
        assert_eq!(d.overridden(None, None), d);
        assert_eq!(
            d.overridden(Some(60), None),
            Policy {
                window_secs: 60,
                min_backups: DEFAULT_MIN_BACKUPS
            }
        );
        assert_eq!(d.overridden(None, Some(0)).min_backups, 0);
    }

    #[test]
    fn bounds_name_the_key() {
        assert_eq!(Policy::default().problem(), None);
        for (w, m, key) in [
            (0, 1, "window_secs"),
            (MAX_WINDOW_SECS + 1, 1, "window_secs"),
            (1, -1, "min_backups"),
            (1, MAX_MIN_BACKUPS + 1, "min_backups"),
        ] {
            let p = Policy {
                window_secs: w,
                min_backups: m,
            };
            assert!(p.problem().is_some_and(|e| e.starts_with(key)), "{p:?}");
        }
        assert_eq!(window_problem(MAX_WINDOW_SECS), None);
        assert_eq!(min_backups_problem(0), None);
    }
}
