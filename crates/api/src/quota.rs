//! Per-project quotas, as Trove counts them: instances, backups, volume gigabytes and RAM. The
//! check runs inside the transaction that inserts, under a per-project lock, so concurrent
//! creates cannot both slip under a limit.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::{
    db::quotas,
    error::{ApiError, ApiResult},
};

/// The resources a quota can limit, in the order the API lists them.
pub const RESOURCES: [&str; 4] = ["instances", "backups", "volumes", "ram"];

/// The limits of a project that has set none (config `[quotas]`); -1 = unlimited.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaDefaults {
    /// Instances per project (Trove's `max_instances_per_tenant`).
    pub instances: i64,
    /// Backups per project (`max_backups_per_tenant`).
    pub backups: i64,
    /// Gigabytes of volume summed over a project's instances (`max_volumes_per_tenant`).
    pub volumes: i64,
    /// Megabytes of flavor RAM summed over a project's instances (`max_ram_per_tenant`).
    pub ram: i64,
}

impl Default for QuotaDefaults {
    fn default() -> Self {
        Self {
            instances: 10,
            backups: 50,
            volumes: 40,
            ram: -1,
        }
    }
}

impl QuotaDefaults {
    pub fn get(&self, resource: &str) -> i64 {
        match resource {
            "instances" => self.instances,
            "backups" => self.backups,
            "volumes" => self.volumes,
            "ram" => self.ram,
            _ => -1,
        }
    }
}

/// One amount per resource: what a project uses, or what a create adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Amounts {
    pub instances: i64,
    pub backups: i64,
    pub volumes: i64,
    pub ram: i64,
}

impl Amounts {
    pub fn get(&self, resource: &str) -> i64 {
        match resource {
            "instances" => self.instances,
            "backups" => self.backups,
            "volumes" => self.volumes,
            "ram" => self.ram,
            _ => 0,
        }
    }
}

/// The resources `delta` would take over their limit, sorted as Trove sorts them. Only a growing
/// resource can be over: a create never fails for what the project already overuses elsewhere.
pub fn overs(limit: impl Fn(&str) -> i64, usage: &Amounts, delta: &Amounts) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = RESOURCES
        .into_iter()
        .filter(|r| {
            let (d, l) = (delta.get(r), limit(r));
            d > 0 && l >= 0 && usage.get(r).saturating_add(d) > l
        })
        .collect();
    out.sort_unstable();
    out
}

/// Trove's `QuotaExceeded` text: `Quota exceeded for resources: ['instances', 'volumes'].`
pub fn exceeded_message(overs: &[&str]) -> String {
    let names: Vec<String> = overs.iter().map(|r| format!("'{r}'")).collect();
    format!("Quota exceeded for resources: [{}].", names.join(", "))
}

/// Locks the project's quota until the caller's transaction ends, then refuses `delta` with 413
/// `overLimit` when it would take a resource over its limit. Call it in the transaction that
/// inserts, right before the insert.
pub async fn check(
    conn: &mut PgConnection,
    tenant: &str,
    defaults: &QuotaDefaults,
    delta: &Amounts,
) -> ApiResult<()> {
    quotas::lock_project(conn, tenant).await?;
    let limits = quotas::limits(conn, tenant, defaults).await?;
    let usage = quotas::usage(conn, tenant).await?;
    let over = overs(|r| limits.get(r), &usage, delta);
    if over.is_empty() {
        return Ok(());
    }
    tracing::info!(tenant, ?over, "create refused over quota");
    Err(ApiError::OverLimit(exceeded_message(&over)))
}

/// For a volume resize: refuses growing the project's volumes by `delta_gb` gigabytes beyond
/// its `volumes` quota (413). Call it in the transaction that records the new size.
pub async fn check_volume_growth(
    conn: &mut PgConnection,
    tenant: &str,
    defaults: &QuotaDefaults,
    delta_gb: i64,
) -> ApiResult<()> {
    let delta = Amounts {
        volumes: delta_gb,
        ..Amounts::default()
    };
    check(conn, tenant, defaults, &delta).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_of(l: Amounts) -> impl Fn(&str) -> i64 {
        move |r| l.get(r)
    }

    #[test]
    fn only_a_growing_resource_over_a_non_negative_limit_is_over() {
        let limits = Amounts {
            instances: 2,
            backups: 1,
            volumes: 10,
            ram: -1,
        };
        let usage = Amounts {
            instances: 1,
            backups: 5,
            volumes: 9,
            ram: 1_000_000,
        };
        let create = Amounts {
            instances: 1,
            volumes: 1,
            ram: 4096,
            ..Amounts::default()
        };
        // At the limit is allowed; backups overused already do not block an instance create.
        assert!(overs(limit_of(limits), &usage, &create).is_empty());
        let bigger = Amounts {
            volumes: 2,
            ..create
        };
        assert_eq!(overs(limit_of(limits), &usage, &bigger), vec!["volumes"]);
        let two = Amounts {
            instances: 2,
            volumes: 2,
            ..create
        };
        assert_eq!(
            overs(limit_of(limits), &usage, &two),
            vec!["instances", "volumes"]
        );
    }

    #[test]
    fn the_message_is_troves() {
        assert_eq!(
            exceeded_message(&["instances", "volumes"]),
            "Quota exceeded for resources: ['instances', 'volumes']."
        );
    }
}
