//! trove-taskmanager binary: flags, config, telemetry, signals, then [`trove_taskmanager::run`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use trove_taskmanager::config::TaskManagerConfig;

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("info");
    let mut args = std::env::args().skip(1);
    let mut path: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => path = Some(PathBuf::from(args.next().context("--config needs a path")?)),
            "-h" | "--help" => {
                println!(
                    "usage: trove-taskmanager [--config FILE]   (env overrides: TROVE_TASKMANAGER__SECTION__KEY)"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}; try --help"),
        }
    }
    let config: TaskManagerConfig =
        trove_common::config::load(path.as_deref(), "TROVE_TASKMANAGER")?;
    trove_taskmanager::run(config, trove_common::shutdown::signal_token()).await
}
