//! The benchmark's scratch world: a private directory tree, the servers started in it, pgbench, and
//! reading commit times out of the WAL store with `pg_waldump`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;
use trove_guestagent::postgres::{Cluster, PgBinaries, Runner, scan, timeline_dir};

/// A private directory tree. Dropping it stops the WAL streamer and every server started under it
/// (immediate shutdown), then removes the tree unless `keep` is set, so an error or Ctrl-C in the
/// middle of a run leaves nothing behind.
pub struct BenchRoot {
    pub path: PathBuf,
    pub runner: Runner,
    pub bins: PgBinaries,
    pub keep: bool,
    pub cancel: CancellationToken,
    data_dirs: Mutex<Vec<PathBuf>>,
}

impl BenchRoot {
    pub fn create(path: PathBuf, keep: bool) -> Result<BenchRoot> {
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        // The postgres OS user must traverse it when we run as root.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", path.display()))?;
        Ok(BenchRoot {
            path,
            runner: Runner::detect("postgres").context("choosing how to run PostgreSQL")?,
            bins: PgBinaries::default(),
            keep,
            cancel: CancellationToken::new(),
            data_dirs: Mutex::new(Vec::new()),
        })
    }

    /// Remembers a data directory whose server must be stopped at the end.
    pub fn track(&self, data_dir: &Path) {
        if let Ok(mut dirs) = self.data_dirs.lock() {
            dirs.push(data_dir.to_path_buf());
        }
    }

    /// Immediate stop of a server on `data_dir`, if one runs; errors are ignored.
    pub fn kill_server(&self, data_dir: &Path) {
        if !data_dir.join("postmaster.pid").exists() {
            return;
        }
        let mut cmd = self.runner.command(self.bins.path("pg_ctl"));
        cmd.arg("-D")
            .arg(data_dir)
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = cmd
            .as_std_mut()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .output();
    }
}

impl Drop for BenchRoot {
    fn drop(&mut self) {
        self.cancel.cancel();
        // Give the streamer task a moment to stop pg_receivewal (it is a runuser child).
        std::thread::sleep(Duration::from_millis(300));
        let dirs = self.data_dirs.lock().map(|d| d.clone()).unwrap_or_default();
        for dir in dirs {
            for suffix in ["", ".staging"] {
                let mut path = dir.clone().into_os_string();
                path.push(suffix);
                self.kill_server(&PathBuf::from(path));
            }
        }
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else if let Err(err) = std::fs::remove_dir_all(&self.path) {
            eprintln!("could not remove {}: {err}", self.path.display());
        }
    }
}

/// Runs pgbench as the cluster's OS user against `cluster` over its unix socket.
pub async fn pgbench(cluster: &Cluster, args: &[String]) -> Result<String> {
    let spec = cluster.spec();
    let mut cmd = cluster.runner().command(cluster.bins().path("pgbench"));
    cmd.arg("-h")
        .arg(&spec.socket_dir)
        .arg("-p")
        .arg(spec.port.to_string())
        .args(["-U", "postgres"])
        .args(args)
        .arg("postgres")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = cmd.output().await.context("running pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "pgbench {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(stdout)
}

/// `tps = 1234.5 (without initial connection time)` from pgbench's report.
pub fn parse_tps(report: &str) -> Option<f64> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Time of the last COMMIT in the store on timeline `tli`, via the product's [`scan`].
pub async fn store_latest_commit(
    root: &BenchRoot,
    wal_root: &Path,
    tli: u32,
) -> Result<Option<DateTime<Utc>>> {
    let states = scan(&root.bins, &root.runner, wal_root).await?;
    Ok(states
        .into_iter()
        .find(|s| s.timeline == tli)
        .and_then(|s| s.latest_commit))
}

/// Waits until the store holds a commit after `t` on timeline `tli`.
pub async fn wait_for_store(
    root: &BenchRoot,
    wal_root: &Path,
    tli: u32,
    t: DateTime<Utc>,
) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(c)) = store_latest_commit(root, wal_root, tli).await
            && c > t
        {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("the WAL store never got a commit after {t} on timeline {tli}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Commit times of one WAL segment file, in WAL order (`pg_waldump -r Transaction`).
async fn segment_commits(root: &BenchRoot, segment: &Path) -> Result<Vec<DateTime<Utc>>> {
    let mut cmd = root.runner.command(root.bins.path("pg_waldump"));
    cmd.env("TZ", "UTC")
        .args(["-r", "Transaction"])
        .arg(segment)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = cmd.output().await.context("running pg_waldump")?;
    let mut times = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((_, desc)) = line.split_once("desc: COMMIT ") else {
            continue;
        };
        let stamp = desc.split(';').next().unwrap_or(desc).trim();
        let Some(naive) = stamp.strip_suffix(" UTC") else {
            continue;
        };
        let parsed = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
            .with_context(|| format!("bad commit time {stamp:?}"))?;
        times.push(parsed.and_utc());
    }
    Ok(times)
}

/// A recovery target strictly between two commits near the end of the completed WAL on timeline
/// 1: at microsecond resolution (what PostgreSQL parses) equal to no commit of that segment, so the
/// server stops *before* the next commit, as the product's stop-line check expects. Returns the
/// target and the segment it was taken from.
pub async fn pick_target(root: &BenchRoot, wal_root: &Path) -> Result<(DateTime<Utc>, String)> {
    let dir = timeline_dir(wal_root, 1);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    names.sort();
    for name in names.iter().rev().take(4) {
        let commits = segment_commits(root, &dir.join(name)).await?;
        if commits.len() < 10 {
            continue;
        }
        for pair in commits.windows(2).rev() {
            let (a, b) = (pair[0], pair[1]);
            if b - a < TimeDelta::microseconds(2) {
                continue;
            }
            let mid = a + (b - a) / 2;
            let t = mid - TimeDelta::nanoseconds(i64::from(mid.timestamp_subsec_nanos() % 1000));
            if t > a && t < b && !commits.contains(&t) {
                return Ok((t, name.clone()));
            }
        }
    }
    bail!("no completed WAL segment near the end of the load holds two separable commits")
}
