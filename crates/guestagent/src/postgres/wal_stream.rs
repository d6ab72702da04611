//! Continuous WAL shipping: a supervised `pg_receivewal` streams the live server's WAL into the
//! instance's local spool, flushing every record (`--synchronous`), and a [`Shipper`] sends what
//! it wrote to the object store every few hundred milliseconds, so the store lags the server by
//! well under a second (docs/postgres-recovery.md §3.1, docs/object-store.md).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;

use super::cluster::Cluster;
use super::os_user::ensure_dir;
use super::runner::{join_stderr, spawn_read_to_string};
use super::wal_index::timeline_dir;
use super::wal_ship::Shipper;

/// The physical slot that keeps the server from recycling WAL the store has not received yet.
/// `max_slot_wal_keep_size` in `trove.conf` bounds what a dead receiver can hold back.
pub const WAL_SLOT: &str = "trove_wal";
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A receiver that ran this long was healthy; the next failure starts the backoff afresh.
const STABLE_RUN: Duration = Duration::from_secs(30);
/// A store that keeps failing is logged at this period, not at every pass.
const SHIP_WARN_EVERY: Duration = Duration::from_secs(30);
/// How long the receiver may take to exit after its group was killed before we kill it directly.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The timeline the server writes on now, from the name of the current WAL file. Right even just
/// after a promotion, when `pg_control_checkpoint()` still shows the old timeline until the first
/// checkpoint on the new one. Fails while the server is in recovery.
pub async fn current_timeline(cluster: &Cluster) -> Result<u32> {
    let mut conn = cluster.connect().await?;
    let file: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .fetch_one(&mut conn)
        .await
        .context("reading the current WAL file name")?;
    let _ = conn.close().await;
    let tli = file
        .get(0..8)
        .with_context(|| format!("bad WAL file name {file:?}"))?;
    u32::from_str_radix(tli, 16).with_context(|| format!("bad WAL file name {file:?}"))
}

/// Creates the physical slot [`WAL_SLOT`] unless it exists, reserving WAL from this moment on
/// (`immediately_reserve`), so the receiver started next misses nothing written in between.
pub async fn ensure_wal_slot(cluster: &Cluster) -> Result<()> {
    let mut conn = cluster.connect().await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
    )
    .bind(WAL_SLOT)
    .fetch_one(&mut conn)
    .await
    .context("looking up the WAL slot")?;
    if !exists {
        let created = sqlx::query("SELECT pg_create_physical_replication_slot($1, true)")
            .bind(WAL_SLOT)
            .execute(&mut conn)
            .await;
        match created {
            Ok(_) => {}
            // Someone else created it between our check and now; that is what we wanted.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42710") => {}
            Err(err) => return Err(err).context("creating the WAL slot"),
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// Streams the WAL of `cluster` into `spool/tl<N>/` and ships it to the store with `shipper`
/// every `ship_every`, until `cancel` fires.
///
/// Each (re)start re-reads the server's timeline, so after an in-place recovery the receiver writes
/// the new timeline into its own directory. When the receiver exits (server restarting, slot busy,
/// network) it is restarted with a backoff capped at 5 s. On cancel the receiver is stopped and
/// awaited, then one last pass ships everything it wrote, before the task ends: whoever stops the
/// streamer (a recovery, a delete) finds the store complete.
pub fn spawn_wal_streamer(
    cluster: Cluster,
    spool: PathBuf,
    shipper: Shipper,
    ship_every: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let stop_shipping = CancellationToken::new();
        let shipping = tokio::spawn(ship_loop(shipper, ship_every, stop_shipping.clone()));
        supervise(&cluster, &spool, &cancel).await;
        stop_shipping.cancel();
        if let Err(err) = shipping.await {
            tracing::warn!(error = %err, "WAL shipper task failed");
        }
    })
}

async fn ship_loop(mut shipper: Shipper, every: Duration, stop: CancellationToken) {
    let mut last_warned: Option<tokio::time::Instant> = None;
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(every) => false,
        };
        match shipper.ship_once().await {
            Ok(_) => last_warned = None,
            Err(err) => {
                let due = last_warned.is_none_or(|at| at.elapsed() >= SHIP_WARN_EVERY);
                if due {
                    tracing::warn!(error = %format!("{err:#}"), "cannot ship WAL to the store; retrying");
                    last_warned = Some(tokio::time::Instant::now());
                }
            }
        }
        if stopping {
            return;
        }
    }
}

async fn supervise(cluster: &Cluster, spool: &Path, cancel: &CancellationToken) {
    let mut backoff = FIRST_BACKOFF;
    while !cancel.is_cancelled() {
        let started = tokio::time::Instant::now();
        match stream_once(cluster, spool, cancel).await {
            Ok(Ended::Cancelled) => break,
            Ok(Ended::Exited { status, stderr }) => tracing::warn!(
                %status,
                stderr = %stderr.trim(),
                spool = %spool.display(),
                "pg_receivewal exited; restarting"
            ),
            Err(err) => tracing::warn!(
                error = %format!("{err:#}"),
                spool = %spool.display(),
                "cannot stream WAL; retrying"
            ),
        }
        if started.elapsed() >= STABLE_RUN {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Ended {
    Cancelled,
    Exited { status: ExitStatus, stderr: String },
}

async fn stream_once(cluster: &Cluster, spool: &Path, cancel: &CancellationToken) -> Result<Ended> {
    let timeline = current_timeline(cluster).await?;
    ensure_wal_slot(cluster).await?;
    let owner = cluster.runner().owner();
    ensure_dir(spool, 0o700, owner).await?;
    let dir = timeline_dir(spool, timeline);
    ensure_dir(&dir, 0o700, owner).await?;

    let spec = cluster.spec();
    let mut cmd = cluster
        .runner()
        .command(cluster.bins().path("pg_receivewal"));
    cmd.arg("-D")
        .arg(&dir)
        .arg("-h")
        .arg(&spec.socket_dir)
        .arg("-p")
        .arg(spec.port.to_string())
        .args(["-U", "postgres"])
        .arg(format!("--slot={WAL_SLOT}"))
        // Flush (and report the flush) after every write, not only when a segment completes:
        // this is what makes the store's RPO seconds-or-better.
        .arg("--synchronous")
        // Exit on connection loss; we restart it ourselves after re-reading the timeline.
        .arg("-n")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so a stop reaches pg_receivewal behind `runuser` too.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawning pg_receivewal")?;
    let stderr = spawn_read_to_string(child.stderr.take());
    tracing::info!(timeline, dir = %dir.display(), "streaming WAL");

    tokio::select! {
        status = child.wait() => {
            let status = status.context("waiting for pg_receivewal")?;
            Ok(Ended::Exited { status, stderr: join_stderr(stderr).await })
        }
        () = cancel.cancelled() => {
            stop_child(&mut child).await;
            Ok(Ended::Cancelled)
        }
    }
}

/// Kills the receiver's whole process group (`runuser` and pg_receivewal behind it) at once.
/// Every record received is already flushed (`--synchronous`), and a restart re-streams the
/// partial segment from its start, so nothing is lost; a SIGTERM took pg_receivewal seconds to
/// honour, and every recovery waits for this stop.
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let sent = tokio::process::Command::new("kill")
            .args(["-KILL", "--"])
            .arg(format!("-{pid}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Err(err) = sent {
            tracing::warn!(error = %err, "could not signal pg_receivewal");
        }
    }
    if tokio::time::timeout(STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "pg_receivewal did not exit after SIGKILL of its group; killing it directly"
        );
        let _ = child.kill().await;
    }
}
