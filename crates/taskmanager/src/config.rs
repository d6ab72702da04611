//! trove-taskmanager configuration (see `etc/trove-taskmanager.toml`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use trove_common::{
    config::{AmqpConfig, DatabaseConfig},
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
    /// The taskmanager's private key (mode 0600, made by `trove-manage keygen`): it opens the
    /// passwords trove-api seals in `create_instance`. Its public half goes in trove-api's
    /// `taskmanager_public_key`.
    pub secret_key_file: PathBuf,
    pub database: DatabaseConfig,
    pub amqp: AmqpConfig,
    /// The object store the guest agents write backups and WAL to (the same bucket and prefix).
    pub store: StoreConfig,
}

impl Default for TaskManagerConfig {
    fn default() -> Self {
        Self {
            sweep_interval_ms: 1000,
            outbox_grace_ms: 2000,
            host_heartbeat_expiry_secs: 60,
            secret_key_file: PathBuf::from("/etc/trove/taskmanager.key"),
            database: DatabaseConfig::default(),
            amqp: AmqpConfig::default(),
            store: StoreConfig::default(),
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
    }
}
