//! Quota rows and the usage they are checked against, counted from the live rows.

use sqlx::PgConnection;
use trove_common::status::InstanceTask;

use crate::quota::{Amounts, QuotaDefaults};

/// The advisory lock class of quota checks (ASCII "quot"), so the key space cannot meet another
/// advisory lock's.
const LOCK_CLASS: i32 = 0x7175_6f74;

/// Serialises the quota checks of one project until the transaction ends. Projects whose names
/// hash alike share a lock, which only makes them wait on each other.
pub async fn lock_project(conn: &mut PgConnection, tenant: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(LOCK_CLASS)
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(())
}

/// The project's limits: its own rows, else the defaults.
pub async fn limits(
    conn: &mut PgConnection,
    tenant: &str,
    defaults: &QuotaDefaults,
) -> sqlx::Result<QuotaDefaults> {
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT resource, hard_limit FROM quotas WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(conn)
            .await?;
    let mut out = *defaults;
    for (resource, limit) in rows {
        let limit = i64::from(limit);
        match resource.as_str() {
            "instances" => out.instances = limit,
            "backups" => out.backups = limit,
            "volumes" => out.volumes = limit,
            "ram" => out.ram = limit,
            _ => {}
        }
    }
    Ok(out)
}

/// What the project uses now. An instance being deleted no longer counts (Trove releases its
/// quota when the delete is accepted); a deleted backup is hidden at once, so it never counts.
pub async fn usage(conn: &mut PgConnection, tenant: &str) -> sqlx::Result<Amounts> {
    sqlx::query_as(
        "SELECT count(*) AS instances, \
         coalesce(sum(i.volume_size), 0)::bigint AS volumes, \
         coalesce(sum(f.ram), 0)::bigint AS ram, \
         (SELECT count(*) FROM backups b WHERE b.tenant_id = $1 AND NOT b.deleted) AS backups \
         FROM instances i JOIN flavors f ON f.id = i.flavor_id \
         WHERE i.tenant_id = $1 AND NOT i.deleted AND i.task_id <> ALL($2)",
    )
    .bind(tenant)
    .bind([
        InstanceTask::Deleting.code(),
        InstanceTask::DeletingError.code(),
    ])
    .fetch_one(conn)
    .await
}

/// Sets the project's limit for `resource` (one of [`crate::quota::RESOURCES`]).
pub async fn set(
    conn: &mut PgConnection,
    tenant: &str,
    resource: &str,
    limit: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO quotas (tenant_id, resource, hard_limit) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, resource) DO UPDATE SET hard_limit = $3, updated = now()",
    )
    .bind(tenant)
    .bind(resource)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(())
}
