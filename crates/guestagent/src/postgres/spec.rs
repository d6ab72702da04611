//! Where one managed instance lives on disk and where it listens.

use std::path::{Path, PathBuf};

/// Everything the driver needs to run one managed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// e.g. `<root>/<instance_id>/data`
    pub data_dir: PathBuf,
    /// Unix socket directory, e.g. `<root>/<instance_id>/run`; the agent connects here.
    pub socket_dir: PathBuf,
    /// Server log (`pg_ctl -l`).
    pub log_file: PathBuf,
    pub port: u16,
    /// `*` by default; tenants connect over TCP with scram-sha-256.
    pub listen_addresses: String,
    /// The client authentication rules the server reads (`hba_file` in `trove.conf`), kept
    /// beside the data directory: a restored or recovered copy of the data keeps obeying the
    /// instance's current network access, and no backup carries it.
    pub hba_file: PathBuf,
}

impl ClusterSpec {
    /// The memory settings for the instance's flavor, beside the data directory (so a restored
    /// copy of the data runs with this instance's memory, and no backup carries them).
    pub fn memory_file(&self) -> PathBuf {
        self.beside_data("memory.conf")
    }

    /// The instance's configuration-group values, beside the data directory like the memory
    /// file, and read after it so a group's value wins.
    pub fn overrides_file(&self) -> PathBuf {
        self.beside_data("overrides.conf")
    }

    fn beside_data(&self, name: &str) -> PathBuf {
        self.hba_file
            .parent()
            .map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
    }

    /// The standard layout under one instance directory: `data/`, `run/`, `log/postgresql.log`,
    /// `pg_hba.conf`.
    pub fn under(instance_dir: &Path, port: u16) -> ClusterSpec {
        ClusterSpec {
            data_dir: instance_dir.join("data"),
            socket_dir: instance_dir.join("run"),
            log_file: instance_dir.join("log").join("postgresql.log"),
            port,
            listen_addresses: "*".to_owned(),
            hba_file: instance_dir.join("pg_hba.conf"),
        }
    }
}
