//! What the taskmanager reads and writes for configuration groups and resizes.

use sqlx::{PgConnection, types::Json};
use trove_common::{overrides::Overrides, status::ServiceStatus};
use uuid::Uuid;

/// The values of the group attached to the instance (empty without one), and the revision of
/// the instance's configuration they make up.
pub async fn current(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<(Overrides, i64)> {
    let revision: i64 =
        sqlx::query_scalar("SELECT configuration_revision FROM instances WHERE id = $1")
            .bind(instance_id)
            .fetch_one(&mut *conn)
            .await?;
    let rows: Vec<(String, Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT p.key, p.value FROM instances i \
         JOIN configuration_parameters p ON p.configuration_id = i.configuration_id \
         WHERE i.id = $1 ORDER BY p.key",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await?;
    Ok((rows.into_iter().map(|(k, v)| (k, v.0)).collect(), revision))
}

/// Records that the guest runs `revision`; false when it is not the current one (a later
/// change is on its way, and its own report settles the instance).
pub async fn set_applied(
    conn: &mut PgConnection,
    instance_id: Uuid,
    revision: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE instances SET configuration_applied = $2 \
         WHERE id = $1 AND configuration_revision = $2",
    )
    .bind(instance_id)
    .bind(revision)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn service_status(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Option<ServiceStatus>> {
    let code: Option<i32> =
        sqlx::query_scalar("SELECT status_id FROM service_statuses WHERE instance_id = $1")
            .bind(instance_id)
            .fetch_optional(conn)
            .await?;
    Ok(code.and_then(ServiceStatus::from_code))
}

/// Only stamps the heartbeat time: used while the service waits for a restart, which a
/// periodic heartbeat must not hide.
pub async fn touch_service_status(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE service_statuses SET updated_at = now() WHERE instance_id = $1")
        .bind(instance_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The flavor a resize in flight moves the instance to, with its RAM.
pub async fn resize_flavor(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Option<(String, i32)>> {
    sqlx::query_as(
        "SELECT f.id, f.ram FROM instances i JOIN flavors f ON f.id = i.resize_flavor_id \
         WHERE i.id = $1",
    )
    .bind(instance_id)
    .fetch_optional(conn)
    .await
}

/// The resize finished: the instance has its new flavor.
pub async fn finish_flavor_resize(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instances SET flavor_id = coalesce(resize_flavor_id, flavor_id), \
         resize_flavor_id = NULL, updated = now() WHERE id = $1",
    )
    .bind(instance_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The resize did not finish: the instance keeps its flavor.
pub async fn abandon_flavor_resize(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE instances SET resize_flavor_id = NULL WHERE id = $1")
        .bind(instance_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_volume_size(
    conn: &mut PgConnection,
    instance_id: Uuid,
    size: i32,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE instances SET volume_size = $2, updated = now() WHERE id = $1")
        .bind(instance_id)
        .bind(size)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_volume_used(
    conn: &mut PgConnection,
    instance_id: Uuid,
    bytes: u64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE instances SET volume_used_bytes = $2 WHERE id = $1")
        .bind(instance_id)
        .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
        .execute(conn)
        .await?;
    Ok(())
}
