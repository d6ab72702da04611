//! The command line of `trove-bench overhead`.

use anyhow::{Context as _, Result, bail};

const USAGE: &str = "usage: trove-bench overhead [--scale N (10)] [--load-secs N (20)] [--runs N (3)] \
                     [--clients N (4)] [--poll-ms N (10)]";

pub struct OverheadArgs {
    /// pgbench scale factor of the data loaded before the backup.
    pub scale: u32,
    /// How long pgbench writes after the backup (the WAL every recovery replays).
    pub load_secs: u32,
    /// Recoveries each way.
    pub runs: usize,
    /// pgbench clients.
    pub clients: u32,
    /// How often the instance is polled for ACTIVE after the POST: the end overhead's resolution,
    /// and load on the API and the control database while the guest works.
    pub poll_ms: u64,
}

/// The arguments after `overhead`; `None` when only the usage was asked for.
pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<OverheadArgs>> {
    let mut a = OverheadArgs {
        scale: 10,
        load_secs: 20,
        runs: 3,
        clients: 4,
        poll_ms: 10,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--scale" => a.scale = value()?.parse().context("--scale")?,
            "--load-secs" => a.load_secs = value()?.parse().context("--load-secs")?,
            "--runs" => a.runs = value()?.parse().context("--runs")?,
            "--clients" => a.clients = value()?.parse().context("--clients")?,
            "--poll-ms" => a.poll_ms = value()?.parse().context("--poll-ms")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.scale == 0 || a.load_secs < 5 || a.runs == 0 || a.clients == 0 || a.poll_ms == 0 {
        bail!("need --scale ≥ 1, --load-secs ≥ 5, --runs ≥ 1, --clients ≥ 1, --poll-ms ≥ 1");
    }
    Ok(Some(a))
}
