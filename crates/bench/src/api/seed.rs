//! The control database the API bench reads: instance rows as finished builds leave them, each
//! with a reported WAL timeline and two completed backups, so the show's window and the list's
//! running-backup check have rows to read.

use anyhow::Result;
use sqlx::PgPool;
use uuid::Uuid;

pub const TENANT: &str = "bench";

/// Seeds `n` instances of [`TENANT`]; returns their ids.
pub async fn instances(pool: &PgPool, n: usize) -> Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO instances (id, name, tenant_id, flavor_id, datastore_version_id, volume_size, \
         task_id, task_description, address, port, timeline) \
         SELECT id, 'bench-' || ord, $2, '1', (SELECT id FROM datastore_versions LIMIT 1), 1, 1, \
         'No tasks for the instance.', '127.0.0.1', 20000 + ord::int, 1 \
         FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, ord)",
    )
    .bind(&ids)
    .bind(TENANT)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO service_statuses (id, instance_id, status_id, status_description) \
         SELECT gen_random_uuid(), id, 33, 'healthy' FROM unnest($1::uuid[]) AS t(id)",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO wal_timelines (instance_id, timeline, first_segment, last_segment, \
         latest_commit, latest_lsn) SELECT id, 1, '000000010000000000000001', \
         '000000010000000000000009', now(), '0/9000060' FROM unnest($1::uuid[]) AS t(id)",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO backups (id, name, tenant_id, state, instance_id, datastore_version_id, \
         location, checksum, stop_time, timeline, start_lsn, stop_lsn) \
         SELECT gen_random_uuid(), 'b' || k, $2, 'COMPLETED', id, \
         (SELECT id FROM datastore_versions LIMIT 1), 'x/base.tar.zst', 'abc', \
         now() - make_interval(mins => 10 * k), 1, '0/2000028', '0/2000100' \
         FROM unnest($1::uuid[]) AS t(id), generate_series(1, 2) AS k",
    )
    .bind(&ids)
    .bind(TENANT)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(ids)
}
