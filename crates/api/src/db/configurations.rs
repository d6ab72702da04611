//! Configuration groups and their values as the API reads and writes them.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use trove_common::overrides::Overrides;
use uuid::Uuid;

/// A group with the names of its datastore and version, for the views.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConfigRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub tenant_id: String,
    pub datastore_version_id: Uuid,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub ds_name: String,
    pub ds_version_name: String,
    pub ds_version_number: String,
    pub ds_manager: String,
}

const SELECT: &str = "SELECT c.id, c.name, c.description, c.tenant_id, c.datastore_version_id, \
     c.created, c.updated, d.name AS ds_name, v.name AS ds_version_name, \
     v.version AS ds_version_number, v.manager AS ds_manager \
     FROM configurations c JOIN datastore_versions v ON v.id = c.datastore_version_id \
     JOIN datastores d ON d.id = v.datastore_id WHERE NOT c.deleted";

/// A group of `tenant` (any tenant's when None, for admins).
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&str>,
) -> sqlx::Result<Option<ConfigRow>> {
    sqlx::query_as(&format!(
        "{SELECT} AND c.id = $1 AND ($2::text IS NULL OR c.tenant_id = $2)"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

/// The group, locked against concurrent changes for the rest of the transaction.
pub async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&str>,
) -> sqlx::Result<Option<ConfigRow>> {
    sqlx::query_as(&format!(
        "{SELECT} AND c.id = $1 AND ($2::text IS NULL OR c.tenant_id = $2) FOR UPDATE OF c"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

/// A page of a tenant's groups ordered by id (`marker` = last id seen).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &str,
    marker: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<ConfigRow>> {
    sqlx::query_as(&format!(
        "{SELECT} AND c.tenant_id = $1 AND ($2::uuid IS NULL OR c.id > $2) ORDER BY c.id LIMIT $3"
    ))
    .bind(tenant)
    .bind(marker)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub struct NewConfig<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub tenant_id: &'a str,
    pub datastore_version_id: Uuid,
}

pub async fn insert(conn: &mut PgConnection, n: &NewConfig<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO configurations (id, name, description, tenant_id, datastore_version_id) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(n.id)
    .bind(n.name)
    .bind(n.description)
    .bind(n.tenant_id)
    .bind(n.datastore_version_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The group's values, keyed by lowercase name.
pub async fn values(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Overrides> {
    let rows: Vec<(String, Json<serde_json::Value>)> = sqlx::query_as(
        "SELECT key, value FROM configuration_parameters WHERE configuration_id = $1 ORDER BY key",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Sets `values` (checked, lowercase names); with `replace` the group holds exactly them.
pub async fn write_values(
    conn: &mut PgConnection,
    id: Uuid,
    values: &Overrides,
    replace: bool,
) -> sqlx::Result<()> {
    if replace {
        sqlx::query("DELETE FROM configuration_parameters WHERE configuration_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    for (k, v) in values {
        sqlx::query(
            "INSERT INTO configuration_parameters (configuration_id, key, value) \
             VALUES ($1, $2, $3) ON CONFLICT (configuration_id, key) DO UPDATE SET value = $3",
        )
        .bind(id)
        .bind(k)
        .bind(Json(v))
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE configurations SET updated = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// New name and/or description (a `None` keeps the current one).
pub async fn rename(
    conn: &mut PgConnection,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE configurations SET name = coalesce($2, name), \
         description = coalesce($3, description), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(name)
    .bind(description)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE configurations SET deleted = true, deleted_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The live instances the group is attached to (of `tenant`, or all for admins), by id, from
/// `marker` on.
pub async fn instances(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&str>,
    marker: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        "SELECT id, name FROM instances WHERE configuration_id = $1 AND NOT deleted \
         AND ($2::text IS NULL OR tenant_id = $2) AND ($3::uuid IS NULL OR id > $3) \
         ORDER BY id LIMIT $4",
    )
    .bind(id)
    .bind(tenant)
    .bind(marker)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn instance_count(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM instances WHERE configuration_id = $1 AND NOT deleted")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Attaches `config` to the instance (None detaches) and counts a new revision of what it
/// should run; returns that revision.
pub async fn set_on_instance(
    conn: &mut PgConnection,
    instance_id: Uuid,
    config: Option<Uuid>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "UPDATE instances SET configuration_id = $2, \
         configuration_revision = configuration_revision + 1, updated = now() \
         WHERE id = $1 RETURNING configuration_revision",
    )
    .bind(instance_id)
    .bind(config)
    .fetch_one(conn)
    .await
}

/// The group's values changed: every live instance it is attached to gets a new revision.
/// Returns (instance, revision) for each.
pub async fn bump_attached(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Vec<(Uuid, i64)>> {
    sqlx::query_as(
        "UPDATE instances SET configuration_revision = configuration_revision + 1 \
         WHERE configuration_id = $1 AND NOT deleted RETURNING id, configuration_revision",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}
