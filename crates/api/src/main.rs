//! trove-api binary: flags, config, telemetry, signals, then [`trove_api::run`].

use anyhow::{Context, Result};
use trove_api::config::ApiConfig;

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("info");
    let path = trove_common::config::config_flag("trove-api", "TROVE_API")?;
    let config: ApiConfig = trove_common::config::load(path.as_deref(), "TROVE_API")?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    trove_api::run(config, listener, trove_common::shutdown::signal_token()).await
}
