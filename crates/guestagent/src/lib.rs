//! trove-guestagent: runs the managed PostgreSQL instances of one host, their backups and their
//! in-place recoveries, and reports to the conductor.

pub mod agent;
pub mod config;
mod handlers;
mod heartbeat;
pub mod hosted;
pub mod postgres;
mod relation_journal;
mod report;
mod rewind_keeper;
#[cfg(feature = "testkit")]
pub mod testkit;
mod wal_report;

use std::{collections::HashMap, sync::Arc};

use anyhow::{Context, Result};
use tokio::sync::Mutex;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use trove_common::{
    amqp::{Bus, HandlerFuture, Role},
    rpc::topics,
    secrets::SecretKey,
    store::BlobStore,
};

use crate::{
    agent::Agent,
    config::GuestConfig,
    postgres::{PgBinaries, Runner},
};

/// Runs the agent until `shutdown` is cancelled. Managed servers keep running after it stops;
/// the next start adopts them.
pub async fn run(config: GuestConfig, shutdown: CancellationToken) -> Result<()> {
    topics::check_host_id(&config.host).map_err(|e| anyhow::anyhow!("host: {e}"))?;
    let runner =
        Runner::detect(&config.os_user).context("choosing how to run PostgreSQL commands")?;
    let store = BlobStore::open(&config.store).context("opening the object store ([store])")?;
    let secret_key = SecretKey::load_or_generate(&config.secret_key_file)
        .context("loading this host's key (secret_key_file)")?;
    // The host's own broker user: it consumes queues the control plane declared for it and
    // publishes reports the broker stamps with its name.
    let bus = Bus::connect_as(&config.amqp, Role::GuestHost).await?;
    let agent = Arc::new(Agent {
        bins: PgBinaries::new(&config.pg_bin_dir),
        config,
        bus: bus.clone(),
        runner,
        instances: Mutex::new(HashMap::new()),
        tracker: TaskTracker::new(),
        shutdown: shutdown.clone(),
        secret_key,
        store,
    });
    agent.adopt().await?;
    {
        let a = agent.clone();
        agent.tracker.spawn(bus.clone().serve(
            topics::guest_host(&agent.config.host),
            move |delivered| {
                let a = a.clone();
                let fut: HandlerFuture =
                    Box::pin(async move { a.handle_host_message(delivered.message).await });
                fut
            },
            shutdown.child_token(),
        ));
    }
    agent.tracker.spawn(agent.clone().run_heartbeats());
    agent.tracker.spawn(agent.clone().run_wal_reports());
    tracing::info!(host = %agent.config.host, broker.user = %bus.user(), "trove-guestagent running");
    shutdown.cancelled().await;
    agent.tracker.close();
    agent.tracker.wait().await;
    Ok(())
}
