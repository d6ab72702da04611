//! The command line.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

const USAGE: &str = "usage: trove-bench [--scale N (10)] [--load-secs N (30)] [--runs N (3)] \
                     [--clients N (4)] [--keep] [--workdir DIR]";

pub struct Args {
    /// pgbench scale factor.
    pub scale: u32,
    /// How long pgbench writes while the RPO is sampled.
    pub load_secs: u32,
    /// Recoveries each way.
    pub runs: usize,
    /// pgbench clients.
    pub clients: u32,
    /// Leave the work directory behind.
    pub keep: bool,
    pub workdir: PathBuf,
}

/// The arguments after the program name; `None` when only the usage was asked for.
pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Args>> {
    let mut a = Args {
        scale: 10,
        load_secs: 30,
        runs: 3,
        clients: 4,
        keep: false,
        workdir: PathBuf::from(format!("/tmp/trove-bench-{}", uuid::Uuid::new_v4())),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--scale" => a.scale = value()?.parse().context("--scale")?,
            "--load-secs" => a.load_secs = value()?.parse().context("--load-secs")?,
            "--runs" => a.runs = value()?.parse().context("--runs")?,
            "--clients" => a.clients = value()?.parse().context("--clients")?,
            "--workdir" => a.workdir = PathBuf::from(value()?),
            "--keep" => a.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.scale == 0 || a.load_secs < 5 || a.runs == 0 || a.clients == 0 {
        bail!("need --scale ≥ 1, --load-secs ≥ 5, --runs ≥ 1, --clients ≥ 1");
    }
    Ok(Some(a))
}
