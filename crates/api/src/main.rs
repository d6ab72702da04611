//! trove-api binary: flags, config, telemetry, signals, then [`trove_api::run`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use trove_api::config::ApiConfig;

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("info");
    let config_path = config_flag()?;
    let config: ApiConfig = trove_common::config::load(config_path.as_deref(), "TROVE_API")?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let shutdown = trove_common::shutdown::signal_token();
    trove_api::run(config, listener, shutdown).await
}

fn config_flag() -> Result<Option<PathBuf>> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => path = Some(PathBuf::from(args.next().context("--config needs a path")?)),
            "-h" | "--help" => {
                println!(
                    "usage: trove-api [--config FILE]   (env overrides: TROVE_API__SECTION__KEY)"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}; try --help"),
        }
    }
    Ok(path)
}
