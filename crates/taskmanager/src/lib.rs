//! trove-taskmanager: drives instance, backup and recovery tasks, and plays Trove's conductor.

pub mod conductor;
pub mod config;
pub mod db;
mod handlers;
pub mod manage;
pub mod manager;
pub mod retention;
mod sweeper;
mod topology;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use trove_common::{
    amqp::{Bus, Delivered, HandlerFuture},
    db as control_db,
    rpc::topics,
    schema,
    secrets::SecretKey,
};

use crate::{config::TaskManagerConfig, manager::TaskManager};

/// Runs the taskmanager until `shutdown` is cancelled.
pub async fn run(config: TaskManagerConfig, shutdown: CancellationToken) -> Result<()> {
    config.validate()?;
    let secret_key = SecretKey::load(&config.secret_key_file)
        .context("loading the taskmanager's key (secret_key_file; see `trove-manage keygen`)")?;
    let store = trove_common::store::BlobStore::open(&config.store)
        .context("opening the object store ([store])")?;
    let pool = control_db::connect(&config.database).await?;
    schema::ensure_current(&pool).await?;
    let bus = Bus::connect(&config.amqp).await?;
    let tm = TaskManager {
        pool: pool.clone(),
        bus: bus.clone(),
        config: Arc::new(config),
        secret_key: Arc::new(secret_key),
        store,
    };
    // The API shows the default in force; only the taskmanager knows it.
    tm.publish_retention_default().await?;
    if let Err(e) = tm.declare_guest_queues().await {
        tracing::warn!(error = %format!("{e:#}"), "could not declare the guest queues; casts declare them again");
    }
    let tracker = TaskTracker::new();
    let consume = |topic: &str, handler: fn(TaskManager, Delivered) -> HandlerFuture| {
        let tm = tm.clone();
        tracker.spawn(bus.clone().serve(
            topic.to_string(),
            move |msg| handler(tm.clone(), msg),
            shutdown.child_token(),
        ));
    };
    consume(topics::TASKMANAGER, |tm, msg| {
        Box::pin(async move { tm.handle_task(msg).await })
    });
    consume(topics::CONDUCTOR, |tm, msg| {
        Box::pin(async move { tm.handle_conductor(msg).await })
    });
    {
        let tm = tm.clone();
        let cancel = shutdown.child_token();
        tracker.spawn(async move { tm.run_sweeper(cancel).await });
    }
    {
        let tm = tm.clone();
        let cancel = shutdown.child_token();
        tracker.spawn(async move { tm.run_retention(cancel).await });
    }
    tracing::info!("trove-taskmanager running");
    tracker.close();
    shutdown.cancelled().await;
    tracker.wait().await;
    pool.close().await;
    Ok(())
}
