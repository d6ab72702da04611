//! `trove-manage store-usage`: what each instance's backups and WAL take in the object store,
//! from the store's own listing (the API holds no store credentials, so this is an operator
//! tool, not a route).

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use sqlx::PgPool;
use trove_common::store::{BlobStore, Entry, Usage, layout, usage_of};
use uuid::Uuid;

use crate::db::retention;

/// One instance's share of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceUsage {
    pub instance_id: Uuid,
    pub tenant_id: String,
    /// `live`, `deleted` (objects kept for its retention) or `purged`.
    pub state: &'static str,
    /// Everything under `backups/<id>/` of its backups, hidden ones included.
    pub backups: Usage,
    /// Everything under `wal/<id>/`.
    pub wal: Usage,
}

/// The report: per instance, and what no instance row accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreUsage {
    pub instances: Vec<InstanceUsage>,
    /// Objects under `backups/` or `wal/` that no backup or instance row names.
    pub unowned: Usage,
}

/// Measures the store for every instance, or for `only`.
pub async fn store_usage(
    pool: &PgPool,
    store: &BlobStore,
    only: Option<Uuid>,
) -> Result<StoreUsage> {
    let mut conn = pool.acquire().await?;
    let owners = retention::owners(&mut conn, only).await?;
    let backups = retention::backup_owners(&mut conn, only).await?;
    drop(conn);
    let (by_backup, by_wal, mut unowned) = match only {
        // One instance: its own prefixes only, not a listing of the whole store.
        Some(id) => {
            let mut by_backup = HashMap::new();
            for (backup, _) in &backups {
                let dir = layout::backup_dir(*backup);
                by_backup.insert(
                    *backup,
                    store
                        .usage(&dir)
                        .await
                        .with_context(|| format!("listing {dir}/"))?,
                );
            }
            let wal = store.usage(&layout::wal_dir(id)).await?;
            (by_backup, HashMap::from([(id, wal)]), Usage::default())
        }
        None => {
            let mut unowned = Usage::default();
            let by_backup = group(&store.list("backups").await?, &mut unowned);
            let by_wal = group(&store.list("wal").await?, &mut unowned);
            (by_backup, by_wal, unowned)
        }
    };
    let mut per_instance: HashMap<Uuid, Usage> = HashMap::new();
    let mut counted = std::collections::HashSet::new();
    for (backup, instance) in &backups {
        let Some(u) = by_backup.get(backup) else {
            continue;
        };
        counted.insert(*backup);
        match instance {
            Some(i) => add(per_instance.entry(*i).or_default(), *u),
            None => add(&mut unowned, *u),
        }
    }
    if only.is_none() {
        for (backup, u) in &by_backup {
            if !counted.contains(backup) {
                add(&mut unowned, *u);
            }
        }
        let known: std::collections::HashSet<Uuid> = owners.iter().map(|o| o.id).collect();
        for (instance, u) in &by_wal {
            if !known.contains(instance) {
                add(&mut unowned, *u);
            }
        }
    }
    let instances = owners
        .into_iter()
        .map(|o| InstanceUsage {
            state: match (o.deleted, o.purged) {
                (false, _) => "live",
                (true, false) => "deleted",
                (true, true) => "purged",
            },
            backups: per_instance.get(&o.id).copied().unwrap_or_default(),
            wal: by_wal.get(&o.id).copied().unwrap_or_default(),
            instance_id: o.id,
            tenant_id: o.tenant_id,
        })
        .collect();
    Ok(StoreUsage { instances, unowned })
}

fn add(to: &mut Usage, u: Usage) {
    to.objects += u.objects;
    to.bytes += u.bytes;
}

/// A listing of `backups/` or `wal/`, summed by the id that follows; keys with no id there go to
/// `unowned`.
fn group(entries: &[Entry], unowned: &mut Usage) -> HashMap<Uuid, Usage> {
    let mut out: HashMap<Uuid, Usage> = HashMap::new();
    for e in entries {
        let one = usage_of(std::slice::from_ref(e));
        match e
            .key
            .split('/')
            .nth(1)
            .and_then(|id| Uuid::parse_str(id).ok())
        {
            Some(id) => add(out.entry(id).or_default(), one),
            None => add(unowned, one),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_is_summed_by_the_id_after_the_kind() {
        let id = Uuid::new_v4();
        let entry = |key: String, size| Entry {
            key,
            size,
            modified: chrono::Utc::now(),
        };
        let mut unowned = Usage::default();
        let grouped = group(
            &[
                entry(format!("wal/{id}/tl1/00000001.history"), 40),
                entry(format!("wal/{id}/tl1/x/00000000-00000010"), 16),
                entry("wal/stray".into(), 5),
            ],
            &mut unowned,
        );
        assert_eq!(
            grouped[&id],
            Usage {
                objects: 2,
                bytes: 56
            }
        );
        assert_eq!(
            unowned,
            Usage {
                objects: 1,
                bytes: 5
            }
        );
    }
}
