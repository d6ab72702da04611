//! One timed recovery each way: the product's `recover_in_place_to` on the live instance, and the
//! floor, PostgreSQL alone replaying the same backup and WAL to the same target in a fresh directory.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use trove_guestagent::postgres::{
    BackupManifest, Cluster, ClusterSpec, PitrOutcome, RecoveryTarget, allocate_port,
    current_timeline, quote_literal, recover_in_place_to, timeline_dir,
};

use super::env::BenchRoot;

/// How often the floor polls `pg_is_in_recovery()`; the product polls at 200–250 ms.
const FLOOR_POLL: Duration = Duration::from_millis(20);

/// A timed run: total wall time and named parts that add up to it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timed {
    pub total_s: f64,
    pub parts: Vec<(String, f64)>,
    /// Where replay stopped (`pg_last_wal_replay_lsn()`), to show both runs replayed the same WAL.
    pub stop_lsn: String,
    /// Finer split of the product's phases, from its phase marks and the server logs' timestamps
    /// (millisecond resolution); empty where the logs do not show the expected lines.
    pub detail: Vec<(String, f64)>,
}

/// `recover_in_place_to(Time(target))` on the running `cluster`, along its current timeline,
/// timed as a whole and per reported phase.
pub async fn ours(
    cluster: &Cluster,
    manifest: &BackupManifest,
    archive: &Path,
    wal_root: &Path,
    target: DateTime<Utc>,
) -> Result<(Timed, PitrOutcome)> {
    let tli = current_timeline(cluster).await?;
    let marks: Mutex<Vec<(String, Instant, DateTime<Utc>)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    let outcome = recover_in_place_to(
        cluster,
        archive,
        &manifest.checksum,
        wal_root,
        RecoveryTarget::Time(target),
        tli,
        &|p| {
            if let Ok(mut m) = marks.lock() {
                m.push((p.to_owned(), Instant::now(), Utc::now()));
            }
        },
        &|_, _| {},
        &|_| {},
    )
    .await
    .with_context(|| format!("recover_in_place_to along timeline {tli}"))?;
    let ended = Instant::now();
    let marks = marks.into_inner().unwrap_or_default();
    let mut parts = Vec::new();
    // Whatever runs before the first phase is reported (staging set-up), so the parts add up.
    let mut prev = ("(before fetching)".to_owned(), started);
    for (name, at, _) in &marks {
        parts.push((prev.0, at.duration_since(prev.1).as_secs_f64()));
        prev = (name.clone(), *at);
    }
    let (prev_name, prev) = prev;
    parts.push((prev_name, ended.duration_since(prev).as_secs_f64()));
    let wall_marks: Vec<(String, DateTime<Utc>)> =
        marks.into_iter().map(|(n, _, w)| (n, w)).collect();
    let timed = Timed {
        total_s: ended.duration_since(started).as_secs_f64(),
        parts,
        stop_lsn: outcome.stop_lsn.clone(),
        detail: log_detail(cluster, &wall_marks, Utc::now()),
    };
    Ok((timed, outcome))
}

/// PostgreSQL alone: `zstd -dc | tar -x` as postgres into a new directory, `recovery.signal`,
/// `restore_command = cp` from the store's timeline 1, `recovery_target_action = 'promote'`,
/// `pg_ctl -w start`, then wait until `pg_is_in_recovery()` is false. The server is stopped
/// (immediate) and the directory removed afterwards, outside the timing.
pub async fn floor(
    root: &BenchRoot,
    archive: &Path,
    wal_root: &Path,
    target: DateTime<Utc>,
    run: usize,
) -> Result<Timed> {
    let base = root.path.join(format!("floor-{run}"));
    let data = base.join("data");
    let run_dir = base.join("run");
    let log = base.join("postgresql.log");
    let port = allocate_port()?;
    // Prepared before the clock starts: the directory the postgres user may write in, and the
    // settings text to append.
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    chown(root, &base)?;
    let tl1 = timeline_dir(wal_root, 1);
    let restore = format!(
        "cp {dir}/%f %p 2>/dev/null || cp {dir}/%f.partial %p 2>/dev/null",
        dir = shell_word(&tl1.to_string_lossy())
    );
    let settings = format!(
        "\n# trove-bench floor run\n\
         restore_command = {restore}\n\
         recovery_target_time = '{time}'\n\
         recovery_target_action = 'promote'\n\
         recovery_target_timeline = '1'\n\
         port = {port}\n\
         listen_addresses = ''\n\
         unix_socket_directories = {sock}\n",
        restore = quote_literal(&restore)?,
        time = target.format("%Y-%m-%d %H:%M:%S%.6f+00"),
        sock = quote_literal(&run_dir.to_string_lossy())?,
    );
    let settings_file = base.join("floor.conf");
    std::fs::write(&settings_file, settings)
        .with_context(|| format!("writing {}", settings_file.display()))?;
    let script = format!(
        "set -e; mkdir -m 0700 {run_dir}; mkdir -m 0700 {data}; \
         zstd -q -dc {archive} | tar -xf - -C {data}; chmod 0700 {data}; \
         cat {settings} >> {data}/postgresql.auto.conf; : > {data}/recovery.signal",
        run_dir = shell_word(&run_dir.to_string_lossy()),
        data = shell_word(&data.to_string_lossy()),
        archive = shell_word(&archive.to_string_lossy()),
        settings = shell_word(&settings_file.to_string_lossy()),
    );
    root.track(&data);
    let probe = Cluster::new(
        ClusterSpec {
            data_dir: data.clone(),
            socket_dir: run_dir.clone(),
            log_file: log.clone(),
            port,
            listen_addresses: String::new(),
        },
        root.bins.clone(),
        root.runner.clone(),
    );

    let started = Instant::now();
    let mut cmd = root.runner.command("sh");
    cmd.arg("-c").arg(&script);
    checked(&mut cmd, "unpacking the base backup").await?;
    let unpacked = Instant::now();

    let mut cmd = root.runner.command(root.bins.path("pg_ctl"));
    cmd.arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "600", "start"]);
    checked(&mut cmd, "pg_ctl start").await?;
    let ready = Instant::now();

    let deadline = ready + Duration::from_secs(1800);
    loop {
        let polled = async {
            let mut conn = probe.connect().await?;
            let r: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&mut conn)
                .await?;
            let _ = conn.close().await;
            anyhow::Ok(r)
        }
        .await;
        if let Ok(false) = polled {
            break;
        }
        if Instant::now() >= deadline {
            bail!("floor run {run}: still in recovery after 30 min");
        }
        tokio::time::sleep(FLOOR_POLL).await;
    }
    let promoted = Instant::now();

    let mut conn = probe.connect().await?;
    let stop_lsn: Option<String> = sqlx::query_scalar("SELECT pg_last_wal_replay_lsn()::text")
        .fetch_one(&mut conn)
        .await
        .context("reading the floor's replay position")?;
    let _ = conn.close().await;
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    if !server_log.contains("recovery stopping before") {
        bail!(
            "floor run {run}: no recovery stop point in {}",
            log.display()
        );
    }
    root.kill_server(&data);
    std::fs::remove_dir_all(&base).with_context(|| format!("removing {}", base.display()))?;

    Ok(Timed {
        total_s: promoted.duration_since(started).as_secs_f64(),
        parts: vec![
            ("unpack+config".to_owned(), secs(unpacked, started)),
            ("pg_ctl start -w".to_owned(), secs(ready, unpacked)),
            ("until promoted".to_owned(), secs(promoted, ready)),
        ],
        stop_lsn: stop_lsn.unwrap_or_default(),
        detail: Vec::new(),
    })
}

fn secs(later: Instant, earlier: Instant) -> f64 {
    later.duration_since(earlier).as_secs_f64()
}

fn shell_word(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn chown(root: &BenchRoot, path: &Path) -> Result<()> {
    if let Some(owner) = root.runner.owner() {
        std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

async fn checked(cmd: &mut tokio::process::Command, what: &str) -> Result<()> {
    let output = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .await
        .with_context(|| format!("spawning {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `2026-11-25 17:39:05.439 UTC [123] LOG:  …` → the time, for logs written in UTC.
fn log_time(line: &str) -> Option<DateTime<Utc>> {
    let mut it = line.splitn(4, ' ');
    let (date, time, zone) = (it.next()?, it.next()?, it.next()?);
    if zone != "UTC" {
        return None;
    }
    let naive =
        chrono::NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f")
            .ok()?;
    Some(naive.and_utc())
}

/// Times of the first line containing each needle, in order, each searched after the previous
/// one, starting at the last line containing `from`.
fn log_events(path: &Path, from: &str, needles: &[&str]) -> Vec<Option<DateTime<Utc>>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut pos = lines
        .iter()
        .rposition(|l| l.contains(from))
        .unwrap_or(lines.len());
    let mut found = Vec::new();
    for needle in needles {
        match lines.iter().skip(pos).position(|l| l.contains(needle)) {
            Some(off) => {
                pos += off;
                found.push(lines.get(pos).and_then(|l| log_time(l)));
            }
            None => found.push(None),
        }
    }
    found
}

/// Splits the product's phases at what the staging and live servers logged.
fn log_detail(
    cluster: &Cluster,
    marks: &[(String, DateTime<Utc>)],
    ended: DateTime<Utc>,
) -> Vec<(String, f64)> {
    let mark = |name: &str| marks.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
    let live_log = &cluster.spec().log_file;
    let mut staging_log = live_log.clone().into_os_string();
    staging_log.push(".staging");
    let staging = log_events(
        Path::new(&staging_log),
        "starting PostgreSQL",
        &[
            "starting PostgreSQL",
            "recovery stopping before",
            "selected new timeline ID",
            "checkpoint complete",
            "received fast shutdown request",
            "database system is shut down",
        ],
    );
    let live = log_events(
        live_log,
        "received fast shutdown request",
        &[
            "received fast shutdown request",
            "database system is shut down",
            "database system is ready to accept connections",
        ],
    );
    let points = [
        ("verifying", mark("verifying")),
        ("replaying", mark("replaying")),
        ("staging started", staging[0]),
        ("stop point reached", staging[1]),
        ("verifying_target", mark("verifying_target")),
        ("new timeline selected", staging[2]),
        ("end-of-recovery checkpoint done", staging[3]),
        ("staging stop requested", staging[4]),
        ("staging shut down", staging[5]),
        ("cutting_over", mark("cutting_over")),
        ("live shut down", live[1]),
        ("live ready", live[2]),
        ("health_check", mark("health_check")),
        ("done", Some(ended)),
    ];
    let labels = [
        "sha256+unpack+preflight",
        "config+pg_ctl spawn",
        "PG: start, replay to target",
        "pause noticed (250 ms poll)",
        "stop line check, resume",
        "PG: end-of-recovery checkpoint",
        "post-promotion checks",
        "staging shutdown checkpoint",
        "to cut-over",
        "live stop (shutdown checkpoint)",
        "rename+config+live start",
        "until health_check",
        "health check",
    ];
    if points.iter().any(|(_, t)| t.is_none()) {
        return Vec::new();
    }
    points
        .windows(2)
        .zip(labels)
        .filter_map(|(w, label)| {
            let (a, b) = (w[0].1?, w[1].1?);
            let d = (b - a).num_microseconds()? as f64 / 1e6;
            Some((label.to_owned(), d))
        })
        .collect()
}
