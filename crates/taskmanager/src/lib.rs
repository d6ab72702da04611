//! trove-taskmanager: drives instance, backup and recovery tasks, and plays Trove's conductor.

pub mod conductor;
pub mod config;
pub mod db;
mod handlers;
pub mod manage;
pub mod manager;
mod sweeper;

use std::sync::Arc;

use anyhow::Result;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use trove_common::{amqp::Bus, db as control_db, rpc::topics, schema};

use crate::{config::TaskManagerConfig, manager::TaskManager};

/// Runs the taskmanager until `shutdown` is cancelled.
pub async fn run(config: TaskManagerConfig, shutdown: CancellationToken) -> Result<()> {
    let pool = control_db::connect(&config.database).await?;
    schema::ensure_current(&pool).await?;
    let bus = Bus::connect(&config.amqp).await?;
    let tm = TaskManager {
        pool: pool.clone(),
        bus: bus.clone(),
        config: Arc::new(config),
    };
    let tracker = TaskTracker::new();
    {
        let tm = tm.clone();
        tracker.spawn(bus.clone().serve(
            topics::TASKMANAGER.to_string(),
            move |msg| {
                let tm = tm.clone();
                async move { tm.handle_task(msg).await }
            },
            shutdown.child_token(),
        ));
    }
    {
        let tm = tm.clone();
        tracker.spawn(bus.clone().serve(
            topics::CONDUCTOR.to_string(),
            move |msg| {
                let tm = tm.clone();
                async move { tm.handle_conductor(msg).await }
            },
            shutdown.child_token(),
        ));
    }
    {
        let tm = tm.clone();
        let cancel = shutdown.child_token();
        tracker.spawn(async move { tm.run_sweeper(cancel).await });
    }
    tracing::info!("trove-taskmanager running");
    tracker.close();
    shutdown.cancelled().await;
    tracker.wait().await;
    pool.close().await;
    Ok(())
}
