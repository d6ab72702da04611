//! Where a stopped server's replay starts again, from its control file (`pg_controldata`): the
//! REDO location of its latest checkpoint or restartpoint, and that checkpoint's timeline. A copy
//! whose replay went past its backup's end no longer has the `backup_label` that said where the
//! first replay started, so a replay that continues plans from here.

use std::path::Path;

use anyhow::{Context as _, Result};

use super::cluster::Cluster;
use super::runner::run_checked;
use super::wal_index::parse_lsn;

/// The point a server started on `data_dir` replays from: (REDO LSN, timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RestartPoint {
    pub(super) redo: u64,
    pub(super) timeline: u32,
}

/// Reads `cluster`'s control file. The server should be stopped: a running server rewrites it.
pub(super) async fn restart_point(cluster: &Cluster) -> Result<RestartPoint> {
    let data_dir: &Path = &cluster.spec().data_dir;
    let mut cmd = cluster
        .runner()
        .command(cluster.bins().path("pg_controldata"));
    // The labels are parsed: the C locale keeps them in English.
    cmd.env("LC_ALL", "C").arg("-D").arg(data_dir);
    let out = run_checked(&mut cmd, "pg_controldata").await?;
    parse(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("reading the control file of {}", data_dir.display()))
}

fn parse(text: &str) -> Result<RestartPoint> {
    let value = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(str::trim)
            .with_context(|| format!("pg_controldata printed no \"{label}\""))
    };
    let redo = parse_lsn(value("Latest checkpoint's REDO location:")?)?;
    let timeline = value("Latest checkpoint's TimeLineID:")?
        .parse()
        .context("a timeline that is not a number")?;
    Ok(RestartPoint { redo, timeline })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_point_is_the_latest_checkpoints_redo() {
        let text = "pg_control version number:            1300\n\
                    Database cluster state:               shut down in recovery\n\
                    Latest checkpoint location:           0/5000060\n\
                    Latest checkpoint's REDO location:    0/5000028\n\
                    Latest checkpoint's REDO WAL file:    000000020000000000000005\n\
                    Latest checkpoint's TimeLineID:       2\n\
                    Latest checkpoint's PrevTimeLineID:   2\n";
        assert_eq!(
            parse(text).ok(),
            Some(RestartPoint {
                redo: 0x500_0028,
                timeline: 2
            })
        );
        assert!(parse("Database cluster state: in production\n").is_err());
    }
}
