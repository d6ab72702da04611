//! `transactions_listed`: the guest's accident listing, checked against its bounds and stored.

use anyhow::Result;
use trove_common::{
    rpc::conductor::ConductorMethod,
    wal_activity::{Activity, ListingState, MAX_CHANGES, MAX_RELATION_LEN, MAX_TRANSACTIONS},
};

use super::check_hosted;
use crate::{
    db::{instances, wal_listings},
    manager::TaskManager,
};

/// A database name, a relation's `schema.name` and an error are bounded: a guest cannot fill the
/// control database.
fn within_bounds(a: &Activity) -> bool {
    a.transactions.len() <= MAX_TRANSACTIONS
        && a.transactions.iter().all(|t| {
            t.changes.len() <= MAX_CHANGES
                && t.lsn.len() <= 17
                && t.changes
                    .iter()
                    .all(|c| c.database.len() <= 63 && c.relation.len() <= MAX_RELATION_LEN)
        })
}

impl TaskManager {
    pub(crate) async fn transactions_listed(
        &self,
        sender: &str,
        msg: ConductorMethod,
    ) -> Result<()> {
        let ConductorMethod::TransactionsListed {
            instance_id,
            listing_id,
            activity,
            error,
        } = msg
        else {
            return Ok(());
        };
        let mut tx = self.pool.begin().await?;
        check_hosted(
            sender,
            instance_id,
            instances::lock(&mut tx, instance_id).await?,
        )?;
        // Only the instance's own SENT row moves, once: a redelivered report changes nothing.
        if !wal_listings::lock(&mut tx, listing_id)
            .await?
            .is_some_and(|r| r.instance_id == instance_id && r.state == ListingState::Sent)
        {
            return Ok(());
        }
        match (activity, error) {
            (Some(a), None) if within_bounds(&a) => {
                wal_listings::complete(&mut tx, listing_id, &serde_json::to_value(&a)?).await?;
            }
            (Some(_), None) => {
                tracing::warn!(instance.id = %instance_id, listing.id = %listing_id, "a listing over its bounds refused");
                wal_listings::fail(
                    &mut tx,
                    listing_id,
                    "the guest's listing exceeded its bounds",
                )
                .await?;
            }
            (_, error) => {
                let error = error.unwrap_or_else(|| "the guest reported no listing".into());
                let error: String = error.chars().take(2000).collect();
                wal_listings::fail(&mut tx, listing_id, &error).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
