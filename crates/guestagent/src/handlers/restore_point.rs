//! `create_restore_point`: the named point on the server, its record in the object store, and the
//! outcome to the conductor.

use std::sync::Arc;

use bytes::Bytes;
use trove_common::{
    restore_point::{RestorePointName, RestorePointRecord, record_key},
    rpc::conductor::ConductorMethod,
};
use uuid::Uuid;

use crate::{agent::Agent, hosted::Hosted, postgres::create_restore_point};

impl Agent {
    pub(crate) async fn create_restore_point(
        &self,
        h: &Arc<Hosted>,
        restore_point_id: Uuid,
        name: RestorePointName,
        rid: Option<String>,
    ) {
        // Not during a recovery or a restart, which swap the server underneath.
        let _guard = h.op.lock().await;
        let made = async {
            let c = create_restore_point(&h.cluster, name).await?;
            let record = RestorePointRecord {
                id: restore_point_id,
                name,
                lsn: c.lsn.clone(),
                timeline: c.timeline,
                time: c.time,
            };
            self.store
                .put(
                    &record_key(h.id, name),
                    Bytes::from(serde_json::to_vec(&record)?),
                )
                .await?;
            anyhow::Ok(c)
        }
        .await;
        let msg = match made {
            Ok(c) => {
                tracing::info!(instance.id = %h.id, restore_point.id = %restore_point_id, lsn = %c.lsn, "restore point created");
                ConductorMethod::UpdateRestorePoint {
                    instance_id: h.id,
                    restore_point_id,
                    lsn: Some(c.lsn),
                    timeline: Some(c.timeline),
                    time: Some(c.time),
                    error: None,
                }
            }
            Err(e) => {
                let text = format!("{e:#}");
                tracing::warn!(instance.id = %h.id, restore_point.id = %restore_point_id, error = %text, "restore point failed");
                ConductorMethod::UpdateRestorePoint {
                    instance_id: h.id,
                    restore_point_id,
                    lsn: None,
                    timeline: None,
                    time: None,
                    error: Some(text),
                }
            }
        };
        self.report(msg, rid).await;
    }
}
