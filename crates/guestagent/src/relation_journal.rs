//! Keeps each instance's relation journal: the live catalog's tables read about once a second and
//! merged in, the journal saved in the object store beside the instance's WAL whenever it grows,
//! so the accident listing names tables that are gone (docs/api.md, "Find the accident").

use std::time::{Duration, Instant};

use bytes::Bytes;
use trove_common::wal_activity::{RelationJournal, journal_key};

use crate::{agent::Agent, hosted::Hosted};

/// How often the live catalog is read at most. A table created and dropped faster than this may
/// be listed without its name (docs/api.md).
const REFRESH_EVERY: Duration = Duration::from_secs(1);

impl Agent {
    /// Reads the catalog into the journal when [`REFRESH_EVERY`] has passed; best effort.
    pub(crate) async fn refresh_relations_if_due(&self, h: &Hosted) {
        let due = h
            .relations
            .lock()
            .await
            .1
            .is_none_or(|at| at.elapsed() >= REFRESH_EVERY);
        if due && let Err(e) = self.refresh_relations(h).await {
            tracing::debug!(instance.id = %h.id, error = %format!("{e:#}"), "relation journal not refreshed");
        }
    }

    /// Reads the live catalog into the journal now and saves the journal if it grew.
    pub(crate) async fn refresh_relations(&self, h: &Hosted) -> anyhow::Result<()> {
        let seen = h.cluster.read_relations().await;
        let mut state = h.relations.lock().await;
        state.1 = Some(Instant::now());
        let seen = seen?;
        let journal = match &mut state.0 {
            Some(j) => j,
            slot => slot.insert(self.load_relations(h).await?),
        };
        if journal.merge(seen) {
            let bytes = serde_json::to_vec(&*journal)?;
            self.store
                .put(&journal_key(h.id), Bytes::from(bytes))
                .await?;
        }
        Ok(())
    }

    /// The journal as it stands (from the store when this agent has not read it yet).
    pub(crate) async fn relation_journal(&self, h: &Hosted) -> anyhow::Result<RelationJournal> {
        let mut state = h.relations.lock().await;
        if state.0.is_none() {
            state.0 = Some(self.load_relations(h).await?);
        }
        Ok(state.0.clone().unwrap_or_default())
    }

    /// The saved journal; an unreadable one is started afresh rather than blocking the listing.
    async fn load_relations(&self, h: &Hosted) -> anyhow::Result<RelationJournal> {
        let Some(bytes) = self.store.get(&journal_key(h.id)).await? else {
            return Ok(RelationJournal::default());
        };
        Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(instance.id = %h.id, error = %e, "relation journal unreadable; starting afresh");
            RelationJournal::default()
        }))
    }
}
