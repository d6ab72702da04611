//! `list_transactions`: the accident listing read from the instance's WAL in the store, reported
//! to the conductor.

use std::sync::Arc;

use trove_common::{rpc::conductor::ConductorMethod, store::layout::wal_dir};
use uuid::Uuid;

use crate::{
    agent::Agent,
    hosted::Hosted,
    postgres::{ActivityRequest, list_activity},
};

impl Agent {
    pub(crate) async fn list_transactions(
        &self,
        h: &Arc<Hosted>,
        listing_id: Uuid,
        req: ActivityRequest,
        rid: Option<String>,
    ) {
        let listed = async {
            // Names as they are now, for tables created since the last periodic read.
            if let Err(e) = self.refresh_relations(h).await {
                tracing::debug!(instance.id = %h.id, error = %format!("{e:#}"), "listing with the saved relation journal");
            }
            let journal = self.relation_journal(h).await?;
            list_activity(
                &self.store,
                &wal_dir(h.id),
                &self.bins,
                &self.runner,
                &h.dir,
                &req,
                &journal,
            )
            .await
        }
        .await;
        let msg = match listed {
            Ok(activity) => {
                tracing::info!(instance.id = %h.id, listing.id = %listing_id, transactions = activity.transactions.len(), segments = activity.segments, "transactions listed");
                ConductorMethod::TransactionsListed {
                    instance_id: h.id,
                    listing_id,
                    activity: Some(activity),
                    error: None,
                }
            }
            Err(e) => {
                let text = format!("{e:#}");
                tracing::warn!(instance.id = %h.id, listing.id = %listing_id, error = %text, "transaction listing failed");
                ConductorMethod::TransactionsListed {
                    instance_id: h.id,
                    listing_id,
                    activity: None,
                    error: Some(text),
                }
            }
        };
        self.report(msg, rid).await;
    }
}
