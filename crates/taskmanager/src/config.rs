//! trove-taskmanager configuration (see `etc/trove-taskmanager.toml`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use trove_common::{
    config::{AmqpConfig, DatabaseConfig},
    retention::{self, Policy},
    store::StoreConfig,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskManagerConfig {
    /// How often the sweeper looks for unsent messages and overdue tasks.
    pub sweep_interval_ms: u64,
    /// Age after which an unsent outbox row is considered abandoned by its writer.
    pub outbox_grace_ms: u64,
    /// A guest host whose last heartbeat is older than this gets no new instances.
    pub host_heartbeat_expiry_secs: i64,
    /// How long a recovery's preview waits for a confirm or cancel once it is ready; the
    /// sweeper cancels it then.
    pub preview_ttl_secs: i64,
    /// The taskmanager's private key (mode 0600, made by `trove-manage keygen`): it opens the
    /// passwords trove-api seals in `create_instance`. Its public half goes in trove-api's
    /// `taskmanager_public_key`.
    pub secret_key_file: PathBuf,
    pub database: DatabaseConfig,
    pub amqp: AmqpConfig,
    /// The object store the guest agents write backups and WAL to (the same bucket and prefix).
    pub store: StoreConfig,
    /// The operator's default retention of backups and WAL, and how often it is enforced.
    pub retention: RetentionConfig,
}

/// The `[retention]` section (docs/object-store.md, "Retention").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds of point-in-time window kept for an instance without its own policy.
    pub window_secs: i64,
    /// Completed backups kept, however old, for an instance without its own policy.
    pub min_backups: i32,
    /// Seconds between two retention passes.
    pub interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            window_secs: retention::DEFAULT_WINDOW_SECS,
            min_backups: retention::DEFAULT_MIN_BACKUPS,
            interval_secs: 60,
        }
    }
}

impl RetentionConfig {
    /// The default policy this section sets.
    pub fn policy(&self) -> Policy {
        Policy {
            window_secs: self.window_secs,
            min_backups: self.min_backups,
        }
    }
}

impl TaskManagerConfig {
    /// Refuses at start-up what would only fail later, naming the key.
    pub fn validate(&self) -> Result<()> {
        if let Some(problem) = self.retention.policy().problem() {
            bail!("retention.{problem}");
        }
        if self.preview_ttl_secs < 1 {
            bail!("preview_ttl_secs must be at least 1");
        }
        if self.retention.interval_secs == 0 {
            bail!("retention.interval_secs must be at least 1");
        }
        Ok(())
    }
}

impl Default for TaskManagerConfig {
    fn default() -> Self {
        Self {
            sweep_interval_ms: 1000,
            outbox_grace_ms: 2000,
            host_heartbeat_expiry_secs: 60,
            preview_ttl_secs: 3600,
            secret_key_file: PathBuf::from("/etc/trove/taskmanager.key"),
            database: DatabaseConfig::default(),
            amqp: AmqpConfig::default(),
            store: StoreConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commented_example_config_loads_and_matches_the_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../etc/trove-taskmanager.toml");
        let cfg: TaskManagerConfig =
            trove_common::config::load(Some(&path), "TROVE_TASKMANAGER_EXAMPLE_TEST")
                .expect("etc/trove-taskmanager.toml loads");
        let defaults = TaskManagerConfig::default();
        assert_eq!(cfg.amqp.max_attempts, defaults.amqp.max_attempts);
        assert_eq!(cfg.amqp.url, defaults.amqp.url);
        assert_eq!(cfg.sweep_interval_ms, defaults.sweep_interval_ms);
        assert_eq!(cfg.retention.policy(), defaults.retention.policy());
        assert_eq!(
            cfg.retention.interval_secs,
            defaults.retention.interval_secs
        );
        cfg.validate().expect("the example is valid");
    }

    #[test]
    fn a_retention_out_of_bounds_is_refused_naming_the_key() {
        let mut cfg = TaskManagerConfig::default();
        cfg.retention.window_secs = 0;
        let e = cfg.validate().expect_err("refused").to_string();
        assert!(e.starts_with("retention.window_secs"), "{e}");
        let mut cfg = TaskManagerConfig::default();
        cfg.retention.min_backups = 101;
        let e = cfg.validate().expect_err("refused").to_string();
        assert!(e.starts_with("retention.min_backups"), "{e}");
        let mut cfg = TaskManagerConfig::default();
        cfg.retention.interval_secs = 0;
        assert!(cfg.validate().is_err());
    }
}
