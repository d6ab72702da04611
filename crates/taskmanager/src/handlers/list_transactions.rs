//! `list_transactions`: hand a stored accident listing to the instance's guest.

use anyhow::Result;
use trove_common::{
    rpc::{RequestContext, guest::GuestMethod},
    wal_activity::{ActivityFilter, ChangeKind, ListingState},
};
use uuid::Uuid;

use crate::{
    db::{instances, wal_listings},
    manager::TaskManager,
};

impl TaskManager {
    pub(crate) async fn list_transactions(
        &self,
        ctx: RequestContext,
        instance_id: Uuid,
        listing_id: Uuid,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Redelivered after it was sent, or a row that is gone: nothing to do.
        let Some(row) = wal_listings::lock(&mut tx, listing_id).await? else {
            return Ok(());
        };
        if row.instance_id != instance_id || row.state != ListingState::New {
            return Ok(());
        }
        let host = instances::lock(&mut tx, instance_id)
            .await?
            .filter(|i| !i.deleted)
            .and_then(|i| i.host);
        let Some(host) = host else {
            wal_listings::fail(&mut tx, listing_id, "the instance has no guest host").await?;
            tx.commit().await?;
            return Ok(());
        };
        let filter = ActivityFilter {
            kind: row.kind.as_deref().and_then(ChangeKind::parse),
            relation: row.relation,
        };
        wal_listings::mark_sent(&mut tx, listing_id).await?;
        let list = GuestMethod::ListTransactions {
            listing_id,
            since: row.since,
            until: row.until,
            filter,
        };
        self.commit_with_instance_cast(tx, instance_id, &host, &list, ctx)
            .await
    }
}
