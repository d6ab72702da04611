//! Datastores, datastore versions and flavors: the read-only catalogue.

use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DatastoreRow {
    pub id: Uuid,
    pub name: String,
    pub default_version_id: Option<Uuid>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VersionRow {
    pub id: Uuid,
    pub datastore_id: Uuid,
    pub datastore_name: String,
    pub name: String,
    pub version: String,
    pub manager: String,
    pub active: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FlavorRow {
    pub id: String,
    pub name: String,
    pub ram: i32,
    pub vcpus: i32,
    pub disk: i32,
    pub ephemeral: i32,
}

const VERSION_SELECT: &str = "SELECT v.id, v.datastore_id, d.name AS datastore_name, v.name, \
     v.version, v.manager, v.active FROM datastore_versions v JOIN datastores d ON d.id = v.datastore_id";

pub async fn datastores(conn: &mut PgConnection) -> sqlx::Result<Vec<DatastoreRow>> {
    sqlx::query_as("SELECT id, name, default_version_id FROM datastores ORDER BY name")
        .fetch_all(conn)
        .await
}

/// By id or by name, as Trove resolves them.
pub async fn datastore(conn: &mut PgConnection, key: &str) -> sqlx::Result<Option<DatastoreRow>> {
    let id = Uuid::parse_str(key).ok();
    sqlx::query_as(
        "SELECT id, name, default_version_id FROM datastores WHERE id = $1 OR name = $2 \
         ORDER BY (id = $1) DESC NULLS LAST LIMIT 1",
    )
    .bind(id)
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub async fn versions_of(
    conn: &mut PgConnection,
    datastore_id: Uuid,
) -> sqlx::Result<Vec<VersionRow>> {
    sqlx::query_as(&format!(
        "{VERSION_SELECT} WHERE v.datastore_id = $1 ORDER BY v.name"
    ))
    .bind(datastore_id)
    .fetch_all(conn)
    .await
}

pub async fn version_by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<VersionRow>> {
    sqlx::query_as(&format!("{VERSION_SELECT} WHERE v.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A version of `datastore_id` by id or name, and by version `number` when one is given.
pub async fn version_of(
    conn: &mut PgConnection,
    datastore_id: Uuid,
    key: &str,
    number: Option<&str>,
) -> sqlx::Result<Option<VersionRow>> {
    let id = Uuid::parse_str(key).ok();
    sqlx::query_as(&format!(
        "{VERSION_SELECT} WHERE v.datastore_id = $1 AND (v.id = $2 OR v.name = $3) \
         AND ($4::text IS NULL OR v.version = $4) \
         ORDER BY (v.id = $2) DESC NULLS LAST LIMIT 1"
    ))
    .bind(datastore_id)
    .bind(id)
    .bind(key)
    .bind(number)
    .fetch_optional(conn)
    .await
}

pub async fn flavors(conn: &mut PgConnection) -> sqlx::Result<Vec<FlavorRow>> {
    sqlx::query_as("SELECT id, name, ram, vcpus, disk, ephemeral FROM flavors ORDER BY ram, id")
        .fetch_all(conn)
        .await
}

/// By id or by name (the CLI sends what the user typed).
pub async fn flavor(conn: &mut PgConnection, key: &str) -> sqlx::Result<Option<FlavorRow>> {
    sqlx::query_as(
        "SELECT id, name, ram, vcpus, disk, ephemeral FROM flavors WHERE id = $1 OR name = $1 \
         ORDER BY (id = $1) DESC LIMIT 1",
    )
    .bind(key)
    .fetch_optional(conn)
    .await
}
