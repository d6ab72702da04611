//! The configuration the agent owns inside a data directory: `trove.conf`, `pg_hba.conf` and the
//! include lines in `postgresql.conf`.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use super::os_user::{OsUser, write_owned};
use super::spec::ClusterSpec;

/// Settings file the agent rewrites freely; `postgresql.conf` only includes it.
pub(crate) const MANAGED_CONF: &str = "trove.conf";
/// Recovery settings, present only between `prepare_recovery` and `finish_recovery`.
pub(crate) const RECOVERY_CONF: &str = "trove-recovery.conf";

/// Included last so our settings win over `postgresql.conf`. `include_if_exists` because the
/// recovery file is absent most of the time.
const INCLUDES: [&str; 2] = [
    "include_if_exists = 'trove.conf'",
    "include_if_exists = 'trove-recovery.conf'",
];

/// Every tenant connection arrives over TCP with a password; the local socket (mode 0700, reachable
/// only by root and postgres) is how the agent itself administers the server.
const PG_HBA: &str = "\
# Managed by the Trove guest agent; rewritten on every configuration change.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   scram-sha-256
host    all          all   0.0.0.0/0      scram-sha-256
host    all          all   ::/0           scram-sha-256
";

/// A value as a postgresql.conf string (single quotes doubled).
pub(crate) fn conf_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn render_trove_conf(spec: &ClusterSpec) -> String {
    let socket_dir = spec.socket_dir.to_string_lossy();
    format!(
        "# Managed by the Trove guest agent; rewritten on start, restore and recovery.\n\
         port = {port}\n\
         listen_addresses = {listen}\n\
         unix_socket_directories = {socket}\n\
         password_encryption = 'scram-sha-256'\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         wal_keep_size = '256MB'\n\
         # The WAL streamer's slot may hold back at most this much WAL, so a dead receiver cannot\n\
         # fill the disk; past it the slot is invalidated and the store shows a gap instead.\n\
         max_slot_wal_keep_size = '2GB'\n\
         # Notice a vanished WAL receiver soon, so its slot is free for the restarted one.\n\
         wal_sender_timeout = '30s'\n\
         shared_buffers = '32MB'\n\
         max_connections = 50\n\
         hot_standby = on\n\
         logging_collector = off\n",
        port = spec.port,
        listen = conf_string(&spec.listen_addresses),
        socket = conf_string(&socket_dir),
    )
}

/// Errors unless `data_dir` looks like a PostgreSQL data directory, so that we never sprinkle
/// configuration files into an arbitrary directory.
async fn require_data_dir(data_dir: &Path) -> Result<()> {
    let version = data_dir.join("PG_VERSION");
    if !tokio::fs::try_exists(&version)
        .await
        .with_context(|| format!("checking {}", version.display()))?
    {
        bail!(
            "{} is not a PostgreSQL data directory (no PG_VERSION)",
            data_dir.display()
        );
    }
    Ok(())
}

/// Appends the include lines to `postgresql.conf` unless they are there already.
pub(crate) async fn ensure_includes(data_dir: &Path, owner: Option<&OsUser>) -> Result<()> {
    require_data_dir(data_dir).await?;
    let path = data_dir.join("postgresql.conf");
    let current = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let present = |line: &str| current.lines().any(|l| l.trim() == line);
    let missing: Vec<&str> = INCLUDES
        .iter()
        .copied()
        .filter(|line| !present(line))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut updated = current.clone();
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push_str("\n# Added by the Trove guest agent.\n");
    for line in missing {
        updated.push_str(line);
        updated.push('\n');
    }
    write_owned(&path, updated.as_bytes(), 0o600, owner).await
}

/// (Re)writes `trove.conf` and `pg_hba.conf` and makes `postgresql.conf` include our files.
/// Idempotent. A restored data directory carries the source instance's files, so this runs again
/// after every restore to put this instance's port and socket back.
pub(crate) async fn write_managed_config(spec: &ClusterSpec, owner: Option<&OsUser>) -> Result<()> {
    let data_dir = &spec.data_dir;
    ensure_includes(data_dir, owner).await?;
    write_owned(
        &data_dir.join(MANAGED_CONF),
        render_trove_conf(spec).as_bytes(),
        0o600,
        owner,
    )
    .await?;
    write_owned(
        &data_dir.join("pg_hba.conf"),
        PG_HBA.as_bytes(),
        0o600,
        owner,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_string_doubles_quotes() {
        assert_eq!(conf_string("/tmp/o'neil"), "'/tmp/o''neil'");
        assert_eq!(conf_string(""), "''");
    }
}
