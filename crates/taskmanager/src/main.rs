//! trove-taskmanager binary: flags, config, telemetry, signals, then [`trove_taskmanager::run`].

use anyhow::Result;
use trove_taskmanager::config::TaskManagerConfig;

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("info");
    let path = trove_common::config::config_flag("trove-taskmanager", "TROVE_TASKMANAGER")?;
    let config: TaskManagerConfig =
        trove_common::config::load(path.as_deref(), "TROVE_TASKMANAGER")?;
    trove_taskmanager::run(config, trove_common::shutdown::signal_token()).await
}
