//! The command line of `trove-bench api`.

use anyhow::{Context as _, Result, bail};

const USAGE: &str =
    "usage: trove-bench api [--clients N (32)] [--secs N (10)] [--instances N (200)]";

pub struct ApiArgs {
    /// Concurrent HTTP clients, each with one request in flight.
    pub clients: usize,
    /// Measured seconds per scenario, after a 2 s warm-up.
    pub secs: u64,
    /// Instance rows seeded in the control database (the list reads pages of 100).
    pub instances: usize,
}

/// The arguments after `api`; `None` when only the usage was asked for.
pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<ApiArgs>> {
    let mut a = ApiArgs {
        clients: 32,
        secs: 10,
        instances: 200,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => a.clients = value()?.parse().context("--clients")?,
            "--secs" => a.secs = value()?.parse().context("--secs")?,
            "--instances" => a.instances = value()?.parse().context("--instances")?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if a.clients == 0 || a.secs == 0 || a.instances < 100 {
        bail!("need --clients ≥ 1, --secs ≥ 1 and --instances ≥ 100 (a full page)");
    }
    Ok(Some(a))
}
