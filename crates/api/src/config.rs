//! trove-api configuration (see `etc/trove-api.toml`).

use std::path::PathBuf;

use crate::quota::QuotaDefaults;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use trove_common::{
    config::{AmqpConfig, DatabaseConfig},
    secrets::PublicKey,
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address the HTTP server binds.
    pub listen: String,
    /// Base URL put in `links` (e.g. `https://db.example.com:8779`); empty = what the client
    /// dialled: `X-Forwarded-Proto` (else http), `X-Forwarded-Host` (else `Host`).
    pub public_endpoint: String,
    /// JSON file mapping tokens to `{"project_id": "...", "roles": [...]}`.
    pub token_file: PathBuf,
    /// Largest page of instances or backups a list returns.
    pub page_size: i64,
    /// Seconds after which a silent heartbeat makes an instance show ERROR.
    pub agent_heartbeat_expiry_secs: i64,
    /// Seconds a recovery may run before the taskmanager gives up on it.
    pub recovery_timeout_secs: i64,
    /// Seconds a build, restart, delete or backup may stay silent before it turns into an error.
    pub task_timeout_secs: i64,
    /// Seconds a database, user or root request waits for the guest to apply it before it is
    /// answered 202 and applied later (Trove's `agent_call_low_timeout`).
    pub guest_wait_secs: u64,
    /// Datastore used when a create names none.
    pub default_datastore: String,
    /// The taskmanager's public key (base64, printed by `trove-manage keygen`). Passwords in a
    /// create are sealed for it before they are written to the outbox. Required.
    pub taskmanager_public_key: Option<PublicKey>,
    /// The quotas of a project that has none of its own (`[quotas]`; -1 = unlimited).
    pub quotas: QuotaDefaults,
    pub database: DatabaseConfig,
    pub amqp: AmqpConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8779".into(),
            public_endpoint: String::new(),
            token_file: PathBuf::from("/etc/trove/tokens.json"),
            page_size: 20,
            agent_heartbeat_expiry_secs: 90,
            recovery_timeout_secs: 3600,
            task_timeout_secs: 1800,
            guest_wait_secs: 15,
            default_datastore: "postgresql".into(),
            taskmanager_public_key: None,
            quotas: QuotaDefaults::default(),
            database: DatabaseConfig::default(),
            amqp: AmqpConfig::default(),
        }
    }
}

impl ApiConfig {
    /// Refuses at start-up what would only fail later, naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.taskmanager_public_key.is_none() {
            bail!(
                "taskmanager_public_key is not set: give trove-api the public key printed by \
                 `trove-manage keygen` for the taskmanager (TROVE_API__TASKMANAGER_PUBLIC_KEY)"
            );
        }
        for r in crate::quota::RESOURCES {
            let v = self.quotas.get(r);
            if !(-1..=i64::from(i32::MAX)).contains(&v) {
                bail!(
                    "quotas.{r} is {v}: a quota is -1 (unlimited) or a count from 0 to {}",
                    i32::MAX
                );
            }
        }
        Ok(())
    }
}
