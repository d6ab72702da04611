//! Retention as the API reads and writes it: the operator's default (written by the
//! taskmanager, which enforces it) and each instance's override.

use sqlx::PgConnection;
use trove_common::retention::Policy;
use uuid::Uuid;

/// The default in force; the built-in one if the row is missing.
pub async fn default_policy(conn: &mut PgConnection) -> sqlx::Result<Policy> {
    let row: Option<(i64, i32)> =
        sqlx::query_as("SELECT window_secs, min_backups FROM retention_default")
            .fetch_optional(conn)
            .await?;
    Ok(
        row.map_or_else(Policy::default, |(window_secs, min_backups)| Policy {
            window_secs,
            min_backups,
        }),
    )
}

/// Stores the instance's override (None for a key = the default's value).
pub async fn set_override(
    conn: &mut PgConnection,
    id: Uuid,
    window_secs: Option<i64>,
    min_backups: Option<i32>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instances SET retention_window_secs = $2, retention_min_backups = $3, \
         updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(window_secs)
    .bind(min_backups)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `tenant` may replay `id`'s WAL: a live instance, or a deleted one whose backups and
/// WAL its retention still keeps (the taskmanager has not removed them, and its window since
/// the delete has not passed).
pub async fn restore_source_exists(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM instances i WHERE i.id = $1 AND i.tenant_id = $2 AND ( \
         NOT i.deleted OR (i.store_purged_at IS NULL AND coalesce(i.deleted_at, i.updated) \
         + make_interval(secs => coalesce(i.retention_window_secs, \
             (SELECT window_secs FROM retention_default), $3)::double precision) > now())))",
    )
    .bind(id)
    .bind(tenant)
    .bind(Policy::default().window_secs)
    .fetch_one(conn)
    .await
}
