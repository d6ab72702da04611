//! Backup rows as the API reads and writes them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BackupRow {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub backup_type: String,
    pub size: Option<f64>,
    pub checksum: Option<String>,
    pub tenant_id: String,
    pub state: String,
    pub instance_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub datastore_version_id: Option<Uuid>,
    pub ds_name: Option<String>,
    pub ds_version_name: Option<String>,
    pub stop_time: Option<DateTime<Utc>>,
    pub start_lsn: Option<String>,
    pub stop_lsn: Option<String>,
    pub timeline: Option<i32>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

const SELECT: &str = "SELECT b.id, b.name, b.description, b.location, b.backup_type, b.size, \
     b.checksum, b.tenant_id, b.state, b.instance_id, b.parent_id, b.datastore_version_id, \
     d.name AS ds_name, v.name AS ds_version_name, b.stop_time, b.start_lsn, b.stop_lsn, \
     b.timeline, b.created, b.updated \
     FROM backups b LEFT JOIN datastore_versions v ON v.id = b.datastore_version_id \
     LEFT JOIN datastores d ON d.id = v.datastore_id WHERE NOT b.deleted";

pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&str>,
) -> sqlx::Result<Option<BackupRow>> {
    sqlx::query_as(&format!(
        "{SELECT} AND b.id = $1 AND ($2::text IS NULL OR b.tenant_id = $2)"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

/// Locks a backup row for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT state FROM backups WHERE id = $1 AND NOT deleted FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub struct ListFilter<'a> {
    pub tenant: Option<&'a str>,
    pub instance_id: Option<Uuid>,
    pub datastore: Option<&'a str>,
}

/// Newest first; `offset` is the integer marker Trove uses for backups.
pub async fn list(
    conn: &mut PgConnection,
    f: &ListFilter<'_>,
    offset: i64,
    limit: i64,
) -> sqlx::Result<Vec<BackupRow>> {
    sqlx::query_as(&format!(
        "{SELECT} AND ($1::text IS NULL OR b.tenant_id = $1) \
         AND ($2::uuid IS NULL OR b.instance_id = $2) \
         AND ($3::text IS NULL OR d.name = $3 OR d.id::text = $3) \
         ORDER BY b.updated DESC, b.id OFFSET $4 LIMIT $5"
    ))
    .bind(f.tenant)
    .bind(f.instance_id)
    .bind(f.datastore)
    .bind(offset)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub struct NewBackup<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub tenant_id: &'a str,
    pub instance_id: Uuid,
    pub datastore_version_id: Uuid,
    pub deadline: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, b: &NewBackup<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO backups (id, name, description, tenant_id, state, instance_id, \
         datastore_version_id, backup_type, deadline) VALUES ($1, $2, $3, $4, 'NEW', $5, $6, 'full', $7)",
    )
    .bind(b.id)
    .bind(b.name)
    .bind(b.description)
    .bind(b.tenant_id)
    .bind(b.instance_id)
    .bind(b.datastore_version_id)
    .bind(b.deadline)
    .execute(conn)
    .await?;
    Ok(())
}

/// True when an unfinished recovery reads this backup.
pub async fn in_use_by_recovery(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM recoveries WHERE backup_id = $1 AND state IN ('NEW', 'RUNNING'))",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// True when an instance that is still being built restores from this backup.
pub async fn in_use_by_restore(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM instances WHERE restored_from_backup = $1 AND NOT deleted AND task_id = 5)",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Hides the backup at once; the taskmanager removes its files from the store.
pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE backups SET deleted = true, deleted_at = now(), updated = now() WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
