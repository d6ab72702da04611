//! trove-guestagent configuration (see `etc/trove-guestagent.toml`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use trove_common::{config::AmqpConfig, store::StoreConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuestConfig {
    /// This host's id in the control plane (queue `guesthost.<host>`); defaults to the hostname.
    /// It must be the host the operator registered for this host's broker user (`amqp.url`).
    pub host: String,
    /// Address tenants use to reach instances on this host.
    pub address: String,
    /// Where instance directories live (`<data_root>/<instance_id>/`).
    pub data_root: PathBuf,
    /// PostgreSQL server binaries.
    pub pg_bin_dir: PathBuf,
    /// OS user the PostgreSQL servers run as when the agent runs as root.
    pub os_user: String,
    /// `listen_addresses` of managed servers.
    pub listen_addresses: String,
    /// Period of status heartbeats to the conductor.
    pub heartbeat_interval_ms: u64,
    /// Period of WAL archive reports (what the store holds; the recoverable window's `latest`).
    pub wal_report_interval_ms: u64,
    /// How often the WAL written since the last upload is sent to the store: the most a host's
    /// death can lose of committed work is about this much.
    pub wal_ship_interval_ms: u64,
    /// WAL segments a replay fetches from the store at once, ahead of the replay position.
    pub wal_prefetch: usize,
    /// This host's private key (mode 0600; generated on first start when absent). The public
    /// half travels in the host heartbeat, and the taskmanager seals passwords in `prepare` for it.
    pub secret_key_file: PathBuf,
    pub amqp: AmqpConfig,
    /// The object store backups and WAL go to; the same one the taskmanager and the other hosts
    /// name.
    pub store: StoreConfig,
}

impl Default for GuestConfig {
    fn default() -> Self {
        Self {
            host: std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
            address: "127.0.0.1".into(),
            data_root: PathBuf::from("/var/lib/trove/instances"),
            pg_bin_dir: PathBuf::from("/usr/lib/postgresql/15/bin"),
            os_user: "postgres".into(),
            listen_addresses: "*".into(),
            heartbeat_interval_ms: 5000,
            wal_report_interval_ms: 1000,
            wal_ship_interval_ms: 200,
            wal_prefetch: 4,
            secret_key_file: PathBuf::from("/var/lib/trove/guest.key"),
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
            .join("../../etc/trove-guestagent.toml");
        let cfg: GuestConfig = trove_common::config::load(Some(&path), "TROVE_GUEST_EXAMPLE_TEST")
            .expect("etc/trove-guestagent.toml loads");
        let defaults = GuestConfig::default();
        assert_eq!(cfg.amqp.url, defaults.amqp.url);
        assert_eq!(cfg.amqp.password_file, None);
        assert_eq!(cfg.heartbeat_interval_ms, defaults.heartbeat_interval_ms);
    }

    #[test]
    fn an_old_config_with_a_capacity_is_refused_naming_the_key() {
        let dir = std::env::temp_dir().join(format!("trove-guest-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("guest.toml");
        std::fs::write(&file, "capacity = 20\n").expect("write");
        let err = trove_common::config::load::<GuestConfig>(Some(&file), "TROVE_GUEST_OLD_TEST")
            .expect_err("capacity is no guest setting any more");
        assert!(format!("{err:#}").contains("capacity"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
