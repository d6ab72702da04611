//! The delayed copy behind rewind: a hot standby of the instance beside its data directory
//! (`<data>.rewind`), streaming the primary's WAL through a slot of its own and applying each
//! commit `window` after it happened (`recovery_min_apply_delay`). It listens on the unix socket
//! only; tenants never see it (docs/postgres-recovery.md, "Rewind").

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use sqlx::Connection as _;

use super::cluster::{Cluster, SUPERUSER};
use super::config::{self, RECOVERY_CONF, conf_string};
use super::os_user::{remove_dir_if_exists, write_owned};
use super::runner::run_checked;
use super::sibling;
use super::spec::ClusterSpec;
use super::wal_index::parse_lsn;

/// The physical slot that keeps the primary's WAL until the copy has received it.
pub const REWIND_SLOT: &str = "trove_rewind";

/// The copy of `live` on `port`: its own data directory and log beside the instance's, the
/// instance's socket directory (the socket's name carries the port) and client rules, no TCP.
pub fn rewind_cluster(live: &Cluster, port: u16) -> Cluster {
    let spec = live.spec();
    live.with_spec(ClusterSpec {
        data_dir: sibling(&spec.data_dir, "rewind"),
        socket_dir: spec.socket_dir.clone(),
        log_file: sibling(&spec.log_file, "rewind"),
        port,
        listen_addresses: String::new(),
        hba_file: spec.hba_file.clone(),
    })
}

/// The standby settings of a copy `window_secs` behind `live`. Every setting here is reloadable
/// (PostgreSQL 13+), so a new window applies without a restart.
fn standby_settings(live: &ClusterSpec, window_secs: u32) -> String {
    let conninfo = format!(
        "host={} port={} user={SUPERUSER} application_name={REWIND_SLOT}",
        live.socket_dir.to_string_lossy(),
        live.port
    );
    format!(
        "# Written by the Trove guest agent: the instance's delayed copy for rewind.\n\
         primary_conninfo = {conninfo}\n\
         primary_slot_name = '{REWIND_SLOT}'\n\
         recovery_min_apply_delay = '{window_secs}s'\n\
         recovery_target_timeline = 'current'\n\
         hot_standby = on\n\
         timezone = 'UTC'\n\
         log_timezone = 'UTC'\n",
        conninfo = conf_string(&conninfo),
    )
}

/// Builds the copy from scratch: any old copy removed, the slot made sure of, `pg_basebackup`
/// (WAL streamed through the slot, so the copy can continue from the backup's end), the copy's
/// own configuration, then started as a delayed standby. Returns when the copy was consistent:
/// the point in time its data starts at.
pub async fn build_copy(live: &Cluster, copy: &Cluster, window_secs: u32) -> Result<DateTime<Utc>> {
    discard_copy(copy).await?;
    ensure_slot(live).await?;
    let spec = live.spec();
    let mut cmd = live.runner().command(live.bins().path("pg_basebackup"));
    cmd.arg("-h")
        .arg(&spec.socket_dir)
        .arg("-p")
        .arg(spec.port.to_string())
        .args(["-U", SUPERUSER, "-D"])
        .arg(&copy.spec().data_dir)
        .args(["-X", "stream", "-S", REWIND_SLOT, "--checkpoint=fast"]);
    run_checked(&mut cmd, "pg_basebackup (rewind copy)").await?;
    let consistent_at = Utc::now();
    copy.write_managed_config().await?;
    write_standby(copy, live, window_secs).await?;
    copy.start().await?;
    Ok(consistent_at)
}

/// Rewrites the copy's standby settings for `window_secs` and, if it runs, reloads them.
pub async fn set_window(copy: &Cluster, live: &Cluster, window_secs: u32) -> Result<()> {
    write_standby(copy, live, window_secs).await?;
    if copy.is_running().await {
        let mut conn = copy.connect().await?;
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut conn)
            .await
            .context("reloading the copy's settings")?;
        let _ = conn.close().await;
    }
    Ok(())
}

async fn write_standby(copy: &Cluster, live: &Cluster, window_secs: u32) -> Result<()> {
    let data_dir = &copy.spec().data_dir;
    let owner = copy.runner().owner();
    config::ensure_includes(data_dir, owner).await?;
    let settings = standby_settings(live.spec(), window_secs);
    write_owned(
        &data_dir.join(RECOVERY_CONF),
        settings.as_bytes(),
        0o600,
        owner,
    )
    .await?;
    write_owned(&data_dir.join("standby.signal"), b"", 0o600, owner).await
}

/// Stops the copy if it runs and removes it. The slot stays: a rebuild reuses it.
pub async fn discard_copy(copy: &Cluster) -> Result<()> {
    let dir = &copy.spec().data_dir;
    if tokio::fs::try_exists(dir)
        .await
        .with_context(|| format!("checking {}", dir.display()))?
    {
        if copy.is_running().await {
            copy.stop_immediate().await?;
        }
        remove_dir_if_exists(dir).await?;
    }
    Ok(())
}

/// Whether the copy's data directory exists.
pub async fn copy_exists(copy: &Cluster) -> bool {
    tokio::fs::try_exists(copy.spec().data_dir.join("PG_VERSION"))
        .await
        .unwrap_or(false)
}

/// Creates [`REWIND_SLOT`] on the primary unless it exists, reserving WAL at once.
async fn ensure_slot(live: &Cluster) -> Result<()> {
    let mut conn = live.connect().await?;
    let created = sqlx::query(
        "SELECT pg_create_physical_replication_slot($1, true) \
         WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
    )
    .bind(REWIND_SLOT)
    .execute(&mut conn)
    .await;
    let _ = conn.close().await;
    match created {
        Ok(_) => Ok(()),
        // Created meanwhile by someone else: what we wanted.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42710") => Ok(()),
        Err(err) => Err(err).context("creating the rewind slot"),
    }
}

/// Drops [`REWIND_SLOT`] on the primary (rewind turned off), so it holds back no WAL.
pub async fn drop_slot(live: &Cluster) -> Result<()> {
    let mut conn = live.connect().await?;
    sqlx::query(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
         WHERE slot_name = $1 AND NOT active",
    )
    .bind(REWIND_SLOT)
    .execute(&mut conn)
    .await
    .context("dropping the rewind slot")?;
    let _ = conn.close().await;
    Ok(())
}

/// Where the running copy stands.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyPosition {
    /// WAL received from the primary so far.
    pub received: Option<u64>,
    /// WAL applied so far.
    pub replayed: Option<u64>,
    /// Commit time of the last transaction applied since the copy started (None before the
    /// first one).
    pub last_commit: Option<DateTime<Utc>>,
    /// The timeline the copy follows.
    pub timeline: u32,
    /// Whether its replay is paused.
    pub paused: bool,
}

/// In recovery, received, replayed, last commit time, timeline, pause state.
type ProbeRow = (
    bool,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    i32,
    String,
);

/// Reads where the copy stands; fails if it is not a server in recovery.
pub async fn probe_copy(copy: &Cluster) -> Result<CopyPosition> {
    let mut conn = copy.connect().await?;
    let row: ProbeRow = sqlx::query_as(
        "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn()::text, \
             pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(), \
             (SELECT timeline_id FROM pg_control_checkpoint()), \
             CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() \
             ELSE 'not paused' END",
    )
    .fetch_one(&mut conn)
    .await
    .context("probing the rewind copy")?;
    let _ = conn.close().await;
    let (in_recovery, received, replayed, last_commit, timeline, pause) = row;
    if !in_recovery {
        bail!("the rewind copy is not in recovery");
    }
    let lsn = |v: Option<String>| v.as_deref().and_then(|s| parse_lsn(s).ok());
    Ok(CopyPosition {
        received: lsn(received),
        replayed: lsn(replayed),
        last_commit,
        timeline: u32::try_from(timeline).unwrap_or(0),
        paused: pause != "not paused",
    })
}

/// Pauses (`true`) or resumes the copy's replay.
pub async fn pause_copy(copy: &Cluster, pause: bool) -> Result<()> {
    let mut conn = copy.connect().await?;
    let sql = if pause {
        "SELECT pg_wal_replay_pause()"
    } else {
        "SELECT pg_wal_replay_resume()"
    };
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .context("pausing or resuming the rewind copy")?;
    let _ = conn.close().await;
    Ok(())
}

/// Whether the copy has applied the end of transaction `xid` (commit or abort): Some(true) if
/// it has, Some(false) if not yet, None if the copy cannot tell (an xid of another epoch, one
/// whose status was truncated away, or a query error).
pub async fn xid_applied(copy: &Cluster, xid: u32) -> Option<bool> {
    let mut conn = copy.connect().await.ok()?;
    // A 32-bit xid read as one of the current epoch: `pg_xact_status` fails for an xid the copy
    // has not seen yet ("in the future"), which means not applied.
    let status: Result<Option<String>, sqlx::Error> =
        sqlx::query_scalar("SELECT pg_xact_status($1::text::xid8)")
            .bind(i64::from(xid))
            .fetch_one(&mut conn)
            .await;
    let _ = conn.close().await;
    match status {
        Ok(Some(s)) => Some(s != "in progress"),
        Ok(None) => None,
        Err(sqlx::Error::Database(db)) if db.message().contains("in the future") => Some(false),
        Err(_) => None,
    }
}

/// Waits until the copy has received the primary's WAL up to `lsn` (its replay may be paused:
/// receiving goes on), polling every 20 ms until `deadline`.
pub async fn wait_received(copy: &Cluster, lsn: u64, deadline: Duration) -> Result<()> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let position = probe_copy(copy).await?;
        if position.received.is_some_and(|r| r >= lsn) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= until {
            bail!(
                "the rewind copy received WAL only up to {:?}, not {} within {deadline:?}",
                position.received.map(super::wal_index::format_lsn),
                super::wal_index::format_lsn(lsn)
            );
        }
        // A bounded poll (`deadline` above): a rewind waits on this, so it polls finely.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The primary's WAL flushed so far.
pub async fn primary_flush_lsn(live: &Cluster) -> Result<u64> {
    let mut conn = live.connect().await?;
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text")
        .fetch_one(&mut conn)
        .await
        .context("reading the primary's flush position")?;
    let _ = conn.close().await;
    parse_lsn(&lsn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_streams_through_its_own_slot_a_window_behind() {
        let live = ClusterSpec::under(std::path::Path::new("/srv/i1"), 5433);
        let s = standby_settings(&live, 600);
        assert!(s.contains("primary_conninfo = 'host=/srv/i1/run port=5433 user=postgres application_name=trove_rewind'\n"));
        assert!(s.contains("primary_slot_name = 'trove_rewind'\n"));
        assert!(s.contains("recovery_min_apply_delay = '600s'\n"));
    }
}
