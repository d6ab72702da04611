//! `prepare`: create a new instance, empty or restored from a backup. Idempotent: a redelivered
//! prepare for an instance that is already prepared only reports its status again.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use trove_common::{
    access::Access,
    overrides::Overrides,
    recovery::RecoveryTarget,
    rpc::{
        guest::BackupLocation,
        taskmanager::{DatabaseSpec, UserSpec},
    },
    secrets::user_password_context,
};
use uuid::Uuid;

use crate::{
    agent::Agent,
    hosted::{Hosted, InstanceRecord},
    postgres::{Reporters, allocate_port, ensure_dir, restore_new},
};

/// What a `prepare` asks for.
pub(crate) struct Wanted {
    pub databases: Vec<DatabaseSpec>,
    pub users: Vec<UserSpec>,
    pub backup: Option<BackupLocation>,
    pub restore_target: Option<RecoveryTarget>,
    /// Who may connect over TCP; None for an instance created without `access` (everyone).
    pub access: Option<Access>,
    /// The flavor's RAM, from which the memory settings are derived.
    pub memory_mb: i64,
    /// The configuration group's values to start with.
    pub overrides: Overrides,
}

impl Agent {
    pub(crate) async fn prepare(
        self: &Arc<Self>,
        instance_id: Uuid,
        wanted: Wanted,
        rid: Option<String>,
    ) {
        if let Some(h) = self.get(instance_id).await {
            self.send_status(&h, None, rid, true).await;
            return;
        }
        let dir = self.config.data_root.join(instance_id.to_string());
        // A directory without instance.json is a prepare that died half-way: start over.
        if dir.exists() {
            if let Ok(Some(record)) = Hosted::load_record(&dir).await {
                let h = Arc::new(self.hosted(&record));
                if !h.cluster.is_running().await {
                    let _ = h.cluster.start().await;
                }
                self.attach(h.clone()).await;
                self.send_status(&h, None, rid, true).await;
                return;
            }
            let _ = tokio::fs::remove_dir_all(&dir).await;
        }
        let port = match allocate_port() {
            Ok(p) => p,
            Err(e) => {
                self.report_prepare_failure(
                    instance_id,
                    port_placeholder(),
                    &format!("{e:#}"),
                    rid,
                )
                .await;
                return;
            }
        };
        let h = Arc::new(self.hosted(&InstanceRecord {
            id: instance_id,
            port,
        }));
        tracing::info!(instance.id = %instance_id, port, restore = wanted.backup.is_some(), "preparing instance");
        match self.build(&h, &wanted).await {
            Ok(()) => {
                self.attach(h.clone()).await;
                self.send_status(&h, None, rid, true).await;
                tracing::info!(instance.id = %instance_id, port, "instance prepared");
            }
            Err(e) => {
                let text = format!("{e:#}");
                tracing::warn!(instance.id = %instance_id, error = %text, "prepare failed");
                let _ = h.cluster.stop().await;
                let _ = tokio::fs::remove_dir_all(&h.dir).await;
                self.report_prepare_failure(instance_id, port, &text, rid)
                    .await;
            }
        }
    }

    async fn build(&self, h: &Hosted, wanted: &Wanted) -> Result<()> {
        // Every password must open before anything is built: a prepare that cannot create its
        // users fails whole, not after the server exists.
        let passwords = wanted
            .users
            .iter()
            .map(|u| {
                self.secret_key
                    .open(&user_password_context(h.id, &u.name), &u.password)
                    .map_err(|e| anyhow!("the password of user {:?}: {e}", u.name))
            })
            .collect::<Result<Vec<_>>>()?;
        // The servers' OS user must enter it; nobody else may.
        ensure_dir(&h.dir, 0o700, self.runner.owner())
            .await
            .with_context(|| format!("creating {}", h.dir.display()))?;
        // The rules are in place before the server first listens.
        h.cluster.write_access(wanted.access.as_ref()).await?;
        // The flavor's memory and the group's values are in place before the first start too.
        h.cluster.write_memory(wanted.memory_mb).await?;
        // Revision 0: what an instance created with a group runs until the group first changes.
        h.cluster.write_overrides(&wanted.overrides, 0).await?;
        let target = wanted.restore_target.as_ref();
        match &wanted.backup {
            // From a backup, replayed on to the target when there is one: the same restore as a
            // recovery in place. The new timeline's history goes into this instance's own store,
            // where its lineage starts.
            Some(b) => {
                let source = self.recovery_source(h.id, b, target)?;
                h.cluster.prepare_aux_dirs().await?;
                let outcome = restore_new(&h.cluster, &source.request(), Reporters::SILENT).await?;
                tracing::info!(instance.id = %h.id, timeline = ?outcome.new_timeline, last_commit = ?outcome.last_replayed_commit, "restored from a backup");
            }
            None => {
                h.cluster.init().await?;
                h.cluster.start().await?;
            }
        }
        for d in &wanted.databases {
            h.cluster.create_database(&d.name).await?;
        }
        for (u, password) in wanted.users.iter().zip(&passwords) {
            let dbs: Vec<String> = u.databases.iter().map(|d| d.name.clone()).collect();
            h.cluster
                .create_user(&u.name, password.expose(), &dbs)
                .await?;
        }
        h.save_record().await
    }

    async fn report_prepare_failure(
        &self,
        instance_id: Uuid,
        port: u16,
        error: &str,
        rid: Option<String>,
    ) {
        let h = self.hosted(&InstanceRecord {
            id: instance_id,
            port,
        });
        self.send_status(&h, Some(error.to_string()), rid, true)
            .await;
    }
}

/// Reported when no port could even be allocated; the instance never listened anywhere.
fn port_placeholder() -> u16 {
    0
}
