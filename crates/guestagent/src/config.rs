//! trove-guestagent configuration (see `etc/trove-guestagent.toml`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use trove_common::config::AmqpConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuestConfig {
    /// This host's id in the control plane (queue `guesthost.<host>`); defaults to the hostname.
    pub host: String,
    /// Address tenants use to reach instances on this host.
    pub address: String,
    /// How many instances this host accepts.
    pub capacity: i32,
    /// Where instance directories live (`<data_root>/<instance_id>/`).
    pub data_root: PathBuf,
    /// Root of the backup store (shared with the taskmanager, and with other hosts for restores).
    pub backup_store: PathBuf,
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
    /// This host's private key (mode 0600; generated on first start when absent). The public
    /// half travels in the host heartbeat, and the taskmanager seals passwords in `prepare` for it.
    pub secret_key_file: PathBuf,
    pub amqp: AmqpConfig,
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
            capacity: 20,
            data_root: PathBuf::from("/var/lib/trove/instances"),
            backup_store: PathBuf::from("/var/lib/trove/backups"),
            pg_bin_dir: PathBuf::from("/usr/lib/postgresql/15/bin"),
            os_user: "postgres".into(),
            listen_addresses: "*".into(),
            heartbeat_interval_ms: 5000,
            wal_report_interval_ms: 1000,
            secret_key_file: PathBuf::from("/var/lib/trove/guest.key"),
            amqp: AmqpConfig::default(),
        }
    }
}
