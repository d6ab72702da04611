//! Guest host registration: `host-add`, `host-capacity`, `host-remove` and `host-list`. A host
//! exists for the control plane only once an operator registered it here; its heartbeats keep it
//! live but never register it or change its capacity.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use anyhow::{Context, Result, anyhow, bail};
use sqlx::PgPool;
use trove_common::rpc::topics;

use super::broker_admin::{BrokerAdmin, host_user};
use crate::db::hosts;
pub use crate::db::hosts::Host;

/// What a guest agent needs to connect as its host. The password is shown once and stored
/// nowhere by trove-rs (the broker keeps only its hash).
#[derive(Clone)]
pub struct HostCredentials {
    pub host: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for HostCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCredentials")
            .field("host", &self.host)
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// Registers `host` with the operator's `capacity`, and issues its broker user with a new
/// password. Refused for a host that is registered already: re-issuing credentials would cut off
/// its running agent, so that takes an explicit `host-remove` first.
pub async fn add_host(
    pool: &PgPool,
    broker: &BrokerAdmin,
    host: &str,
    capacity: i32,
) -> Result<HostCredentials> {
    topics::check_host_id(host).map_err(|e| anyhow!(e))?;
    if capacity < 0 {
        bail!("--capacity must be 0 or more");
    }
    let mut conn = pool.acquire().await?;
    if let Some(h) = hosts::get(&mut conn, host).await?
        && h.enabled
        && h.broker_user.is_some()
    {
        bail!(
            "host {host} is registered already; change its capacity with host-capacity, or run host-remove first to issue new credentials"
        );
    }
    drop(conn);
    let user = host_user(host);
    let password = new_password();
    // The broker user first: a registration whose broker step failed can simply be run again.
    broker.issue_host_user(host, &user, &password).await?;
    let mut conn = pool.acquire().await?;
    hosts::register(&mut conn, host, &user, capacity)
        .await
        .with_context(|| format!("registering host {host}"))?;
    Ok(HostCredentials {
        host: host.to_string(),
        user,
        password,
    })
}

/// Sets how many instances `host` accepts (0 drains it: no new instances, the existing ones stay).
pub async fn set_capacity(pool: &PgPool, host: &str, capacity: i32) -> Result<()> {
    if capacity < 0 {
        bail!("the capacity must be 0 or more");
    }
    let mut conn = pool.acquire().await?;
    if !hosts::set_capacity(&mut conn, host, capacity).await? {
        bail!("no registered host {host}");
    }
    Ok(())
}

/// Revokes `host`'s broker user (its connections close) and takes it out of placement. Refused
/// while instances still run there, unless `force`: they would stop reporting.
pub async fn remove_host(
    pool: &PgPool,
    broker: &BrokerAdmin,
    host: &str,
    force: bool,
) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let Some(h) = hosts::get(&mut conn, host).await? else {
        bail!("no host {host}");
    };
    drop(conn);
    if h.used > 0 && !force {
        bail!(
            "host {host} still has {} instances; delete them first, or pass --force (they then stop reporting and show ERROR)",
            h.used
        );
    }
    if let Some(user) = &h.broker_user {
        broker.delete_user(user).await?;
    }
    let mut conn = pool.acquire().await?;
    hosts::remove(&mut conn, host).await?;
    Ok(())
}

pub async fn list_hosts(pool: &PgPool) -> Result<Vec<Host>> {
    let mut conn = pool.acquire().await?;
    Ok(hosts::list(&mut conn).await?)
}

/// Writes the password alone to `path`, readable by its owner only (`amqp.password_file` of the
/// guest agent). Written to a new file and renamed, so it is never readable by others, not even
/// for a moment, and an existing file's looser mode is not kept.
pub fn write_password_file(path: &Path, creds: &HostCredentials) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let tmp = dir.unwrap_or(Path::new(".")).join(format!(
        ".{}.{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = file
        .write_all(format!("{}\n", creds.password).as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

/// 244 random bits from the system's generator (two v4 UUIDs), as 64 hex digits: safe in a URL.
fn new_password() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
