//! Control-database rows as a finished build, a backup or a guest's reports leave them, for tests
//! that run the API alone.

use anyhow::Result;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Stack;

/// The id of PostgreSQL's datastore version `version`, or of any of its versions.
pub async fn pg_version(stack: &Stack, version: Option<&str>) -> Result<Uuid> {
    Ok(sqlx::query_scalar(
        "SELECT v.id FROM datastore_versions v JOIN datastores d ON d.id = v.datastore_id \
         WHERE d.name = 'postgresql' AND ($1::text IS NULL OR v.name = $1)",
    )
    .bind(version)
    .fetch_one(&stack.pool)
    .await?)
}

/// Inserts a healthy, idle PostgreSQL instance of `tenant` on `timeline`.
pub async fn idle_instance(stack: &Stack, tenant: &str, timeline: Option<i32>) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let dsv = pg_version(stack, None).await?;
    sqlx::query(
        "INSERT INTO instances (id, name, tenant_id, flavor_id, datastore_version_id, task_id, \
         task_description, address, port, timeline) \
         VALUES ($1, 'fixture', $2, '1', $3, 1, 'No tasks for the instance.', '127.0.0.1', 1, $4)",
    )
    .bind(id)
    .bind(tenant)
    .bind(dsv)
    .bind(timeline)
    .execute(&stack.pool)
    .await?;
    sqlx::query(
        "INSERT INTO service_statuses (id, instance_id, status_id, status_description) \
         VALUES ($1, $2, 33, 'healthy')",
    )
    .bind(Uuid::new_v4())
    .bind(id)
    .execute(&stack.pool)
    .await?;
    Ok(id)
}

/// Inserts a backup of `tenant`'s `instance` in `state`, of datastore version `dsv`, that stopped
/// at `stop_time`; `wal` is its timeline and start and stop LSN, where the test needs them.
pub async fn backup_row(
    stack: &Stack,
    tenant: &str,
    instance: Uuid,
    state: &str,
    dsv: Uuid,
    stop_time: DateTime<Utc>,
    wal: Option<(i32, &str, &str)>,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO backups (id, name, tenant_id, state, instance_id, datastore_version_id, \
         location, checksum, stop_time, timeline, start_lsn, stop_lsn) \
         VALUES ($1, 'fixture', $2, $3, $4, $5, 'x/base.tar.zst', 'abc', $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(tenant)
    .bind(state)
    .bind(instance)
    .bind(dsv)
    .bind(stop_time)
    .bind(wal.map(|w| w.0))
    .bind(wal.map(|w| w.1))
    .bind(wal.map(|w| w.2))
    .execute(&stack.pool)
    .await?;
    Ok(id)
}
