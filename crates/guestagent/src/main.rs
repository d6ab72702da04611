//! trove-guestagent binary: flags, config, telemetry, signals, then [`trove_guestagent::run`].

use anyhow::Result;
use trove_guestagent::config::GuestConfig;

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("info");
    let path = trove_common::config::config_flag("trove-guestagent", "TROVE_GUEST")?;
    let config: GuestConfig = trove_common::config::load(path.as_deref(), "TROVE_GUEST")?;
    trove_guestagent::run(config, trove_common::shutdown::signal_token()).await
}
