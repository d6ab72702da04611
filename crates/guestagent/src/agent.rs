//! The agent: the instances this host runs, their queue consumers, and adoption after a restart.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use tokio::sync::Mutex;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use trove_common::{
    amqp::{Bus, Delivered, HandlerFuture},
    rpc::{guest::wal_location, topics},
    secrets::SecretKey,
    store::BlobStore,
};
use uuid::Uuid;

use crate::{
    config::GuestConfig,
    hosted::{Hosted, InstanceRecord},
    postgres::{PgBinaries, Runner, Shipper, ensure_private_dir, spawn_wal_streamer},
};

pub struct Agent {
    pub config: GuestConfig,
    pub bus: Arc<Bus>,
    pub bins: PgBinaries,
    pub runner: Runner,
    pub instances: Mutex<HashMap<Uuid, Arc<Hosted>>>,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
    /// Opens the secrets sealed for this host (`config.secret_key_file`).
    pub secret_key: SecretKey,
    /// Where backups and WAL go (`config.store`).
    pub store: BlobStore,
}

impl Agent {
    pub fn hosted(&self, record: &InstanceRecord) -> Hosted {
        Hosted::new(
            record,
            &self.config.data_root,
            &self.config.listen_addresses,
            self.bins.clone(),
            self.runner.clone(),
            self.shutdown.child_token(),
        )
    }

    /// This instance's local WAL spool: `pg_receivewal` writes here, the shipper sends it on to
    /// the store (`wal/<id>/`) and keeps only the newest segments.
    pub fn wal_spool(&self, id: Uuid) -> PathBuf {
        self.config.data_root.join(id.to_string()).join("wal")
    }

    /// Starts streaming the instance's WAL and shipping it to the store (no-op when running).
    pub async fn start_streaming(&self, h: &Hosted) {
        let mut slot = h.streamer.lock().await;
        if slot.is_some() {
            return;
        }
        let cancel = h.cancel.child_token();
        let shipper = Shipper::new(
            self.store.clone(),
            self.wal_spool(h.id),
            wal_location(h.id),
            h.shipped.clone(),
            self.bins.clone(),
            self.runner.clone(),
        );
        let handle = spawn_wal_streamer(
            h.cluster.clone(),
            self.wal_spool(h.id),
            shipper,
            Duration::from_millis(self.config.wal_ship_interval_ms.max(10)),
            cancel.clone(),
        );
        *slot = Some((cancel, handle));
    }

    /// Stops the WAL receiver and waits for it, e.g. before the server changes timeline.
    pub async fn stop_streaming(&self, h: &Hosted) {
        let running = h.streamer.lock().await.take();
        if let Some((cancel, handle)) = running {
            cancel.cancel();
            if let Err(e) = handle.await {
                tracing::warn!(instance.id = %h.id, error = %e, "WAL streamer task failed");
            }
        }
    }

    /// Registers a prepared instance, starts shipping its WAL and consuming its queue
    /// (`guesthost.<host>.<id>`, which the taskmanager declared when it placed the instance).
    pub async fn attach(self: &Arc<Self>, hosted: Arc<Hosted>) {
        self.instances
            .lock()
            .await
            .insert(hosted.id, hosted.clone());
        self.start_streaming(&hosted).await;
        self.tracker
            .spawn(crate::rewind_keeper::keep_rewind(hosted.clone()));
        let agent = self.clone();
        let id = hosted.id;
        let cancel = hosted.cancel.clone();
        self.tracker.spawn(async move {
            let handler_agent = agent.clone();
            let r = agent
                .bus
                .clone()
                .serve(
                    topics::guest_instance_queue(&agent.config.host, id),
                    move |delivered: Delivered| {
                        let agent = handler_agent.clone();
                        let fut: HandlerFuture = Box::pin(async move {
                            agent.handle_instance_message(id, delivered.message).await
                        });
                        fut
                    },
                    cancel,
                )
                .await;
            if let Err(e) = r {
                tracing::error!(instance.id = %id, error = %format!("{e:#}"), "instance consumer stopped");
            }
        });
    }

    pub async fn get(&self, id: Uuid) -> Option<Arc<Hosted>> {
        self.instances.lock().await.get(&id).cloned()
    }

    /// Adopts the instances found on disk after an agent restart: running servers are left
    /// alone, stopped ones are started, and a recovery cut short mid-swap is undone.
    pub async fn adopt(self: &Arc<Self>) -> Result<()> {
        // The servers' OS user owns the instance tree (it must reach its data directories);
        // nobody else may list or enter it.
        ensure_private_dir(&self.config.data_root, self.runner.owner())
            .await
            .with_context(|| format!("securing {}", self.config.data_root.display()))?;
        let mut entries = tokio::fs::read_dir(&self.config.data_root).await?;
        while let Some(entry) = entries.next_entry().await? {
            let dir = entry.path();
            let Some(record) = Hosted::load_record(&dir).await? else {
                continue;
            };
            let hosted = Arc::new(self.hosted(&record));
            let data = &hosted.cluster.spec().data_dir;
            let old = data.with_extension("old");
            if !data.exists() && old.exists() {
                tracing::warn!(instance.id = %record.id, "data directory missing after an interrupted recovery; restoring the previous one");
                tokio::fs::rename(&old, data).await?;
            }
            if !hosted.cluster.is_running().await
                && let Err(e) = hosted.cluster.start().await
            {
                tracing::error!(instance.id = %record.id, error = %format!("{e:#}"), "could not start adopted instance");
            }
            tracing::info!(instance.id = %record.id, port = record.port, "instance adopted");
            self.attach(hosted).await;
        }
        Ok(())
    }
}
