//! The configuration the agent owns inside a data directory: `trove.conf`, `pg_hba.conf` and the
//! include lines in `postgresql.conf`.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use trove_common::access::{self, Cidr};

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

/// The data directory's own `pg_hba.conf`. The server reads the instance's rules from `hba_file`
/// (set in `trove.conf`, see [`render_hba`]); this copy only counts when the data directory is
/// started without `trove.conf` (a copy or a backup unpacked by hand), and then admits nobody
/// over TCP. Backups carry this file, never an instance's access rules.
const DATA_DIR_PG_HBA: &str = "\
# Managed by the Trove guest agent. The server reads its rules from the hba_file set in
# trove.conf; this file is used only without trove.conf, and admits nobody over TCP.
# TYPE  DATABASE     USER  ADDRESS  METHOD
local   all          all            trust
local   replication  all            trust
";

/// The rules of an instance: the agent (and the WAL receiver) over the local socket, which is
/// trusted because only root and the servers' OS user can reach it (directory and socket mode
/// 0700); tenants over TCP with scram-sha-256 from each `admitted` network, and from nowhere
/// else. Every line comes from typed values, so no client text reaches the file.
pub(crate) fn render_hba(admitted: &[Cidr]) -> String {
    let mut out = String::from(
        "# Managed by the Trove guest agent from the instance's network access; rewritten on every\n\
         # change and reloaded without a restart.\n\
         # TYPE  DATABASE     USER  ADDRESS                                     METHOD\n\
         local   all          all                                               trust\n\
         local   replication  all                                               trust\n",
    );
    if admitted.is_empty() {
        out.push_str("# No network is admitted: TCP connections are refused.\n");
    }
    for cidr in admitted {
        out.push_str(&format!(
            "host    all          all   {:<43} scram-sha-256\n",
            cidr.to_string()
        ));
    }
    out
}

/// A value as a postgresql.conf string (single quotes doubled).
pub(crate) fn conf_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn render_trove_conf(spec: &ClusterSpec) -> String {
    let socket_dir = spec.socket_dir.to_string_lossy();
    let hba_file = spec.hba_file.to_string_lossy();
    format!(
        "# Managed by the Trove guest agent; rewritten on start, restore and recovery.\n\
         port = {port}\n\
         listen_addresses = {listen}\n\
         unix_socket_directories = {socket}\n\
         # Whoever reaches the socket is trusted: only root and the servers' OS user may.\n\
         unix_socket_permissions = 0700\n\
         # The instance's network access, beside the data directory (see pg_hba.conf in it).\n\
         hba_file = {hba_file}\n\
         password_encryption = 'scram-sha-256'\n\
         # Statement text never reaches the server log, not even for a failed statement: it can\n\
         # hold passwords (CREATE/ALTER ROLE) and tenant data. Messages themselves are still logged.\n\
         log_statement = 'none'\n\
         log_min_error_statement = 'panic'\n\
         log_min_duration_statement = -1\n\
         log_min_duration_sample = -1\n\
         log_transaction_sample_rate = 0\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         wal_keep_size = '256MB'\n\
         # The WAL streamer's slot may hold back at most this much WAL, so a dead receiver cannot\n\
         # fill the disk; past it the slot is invalidated and the store shows a gap instead.\n\
         max_slot_wal_keep_size = '2GB'\n\
         # Notice a vanished WAL receiver soon, so its slot is free for the restarted one.\n\
         wal_sender_timeout = '30s'\n\
         hot_standby = on\n\
         logging_collector = off\n\
         # The flavor's memory settings, then the configuration group's values, which win.\n\
         include_if_exists = {memory}\n\
         include_if_exists = {overrides}\n",
        memory = conf_string(&spec.memory_file().to_string_lossy()),
        overrides = conf_string(&spec.overrides_file().to_string_lossy()),
        port = spec.port,
        listen = conf_string(&spec.listen_addresses),
        socket = conf_string(&socket_dir),
        hba_file = conf_string(&hba_file),
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

/// (Re)writes `trove.conf` and the data directory's `pg_hba.conf` and makes `postgresql.conf`
/// include our files. Idempotent. A restored data directory carries the source instance's files,
/// so this runs again after every restore to put this instance's port and socket back. The
/// instance's own rules (`hba_file`) are kept when present; an instance that never had any gets
/// the rules of an instance created without `access`.
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
        DATA_DIR_PG_HBA.as_bytes(),
        0o600,
        owner,
    )
    .await?;
    if !tokio::fs::try_exists(&spec.hba_file)
        .await
        .with_context(|| format!("checking {}", spec.hba_file.display()))?
    {
        write_hba(&spec.hba_file, &access::admitted(None), owner).await?;
    }
    Ok(())
}

/// Writes the rules admitting `admitted` into `path`, atomically (a reload never sees half a file).
pub(crate) async fn write_hba(
    path: &Path,
    admitted: &[Cidr],
    owner: Option<&OsUser>,
) -> Result<()> {
    write_owned(path, render_hba(admitted).as_bytes(), 0o600, owner).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hba_admits_the_local_socket_and_exactly_the_admitted_networks() {
        let nets: Vec<Cidr> = ["127.0.0.2/32", "2001:db8::/32"]
            .iter()
            .map(|c| c.parse().expect("cidr"))
            .collect();
        let text = render_hba(&nets);
        let rules: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rules,
            vec![
                vec!["local", "all", "all", "trust"],
                vec!["local", "replication", "all", "trust"],
                vec!["host", "all", "all", "127.0.0.2/32", "scram-sha-256"],
                vec!["host", "all", "all", "2001:db8::/32", "scram-sha-256"],
            ]
        );
        let closed = render_hba(&[]);
        assert!(!closed.lines().any(|l| l.starts_with("host")), "{closed}");
        assert!(!DATA_DIR_PG_HBA.lines().any(|l| l.starts_with("host")));
    }

    #[test]
    fn trove_conf_points_at_the_instance_rules_and_keeps_statements_out_of_the_log() {
        let spec = ClusterSpec::under(Path::new("/srv/i'1"), 5433);
        let conf = render_trove_conf(&spec);
        assert!(
            conf.contains("hba_file = '/srv/i''1/pg_hba.conf'\n"),
            "{conf}"
        );
        assert!(conf.contains("log_min_error_statement = 'panic'\n"));
        assert!(conf.contains("log_statement = 'none'\n"));
        assert!(conf.contains("unix_socket_permissions = 0700\n"));
        let memory = conf.find("include_if_exists = '/srv/i''1/memory.conf'\n");
        let group = conf.find("include_if_exists = '/srv/i''1/overrides.conf'\n");
        assert!(memory.is_some() && group > memory, "{conf}");
    }

    #[test]
    fn conf_string_doubles_quotes() {
        assert_eq!(conf_string("/tmp/o'neil"), "'/tmp/o''neil'");
        assert_eq!(conf_string(""), "''");
    }
}
