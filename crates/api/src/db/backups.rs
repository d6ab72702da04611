//! Backup rows as the API reads and writes them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use trove_common::status::{BackupState, InstanceTask, RecoveryState};
use uuid::Uuid;

/// The only kind of backup taken: incremental ones are refused.
pub const FULL: &str = "full";

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
    pub state: BackupState,
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

/// The instance's completed backups that recorded where they stop, oldest first.
pub async fn completed_of(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<BackupRow>> {
    sqlx::query_as(&format!(
        "{SELECT} AND b.instance_id = $1 AND b.state = $2 AND b.stop_time IS NOT NULL \
         ORDER BY b.stop_time"
    ))
    .bind(instance_id)
    .bind(BackupState::Completed)
    .fetch_all(conn)
    .await
}

/// True while a backup of the instance is being taken.
pub async fn running_exists(conn: &mut PgConnection, instance_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM backups WHERE instance_id = $1 AND NOT deleted \
         AND state = ANY($2))",
    )
    .bind(instance_id)
    .bind(BackupState::RUNNING)
    .fetch_one(conn)
    .await
}

/// Locks a backup row for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<BackupState>> {
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
         datastore_version_id, backup_type, deadline) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(b.id)
    .bind(b.name)
    .bind(b.description)
    .bind(b.tenant_id)
    .bind(BackupState::New)
    .bind(b.instance_id)
    .bind(b.datastore_version_id)
    .bind(FULL)
    .bind(b.deadline)
    .execute(conn)
    .await?;
    Ok(())
}

/// True while an unfinished recovery, or an instance still being built, restores this backup.
pub async fn in_use(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM recoveries WHERE backup_id = $1 AND state = ANY($2)) \
         OR EXISTS (SELECT 1 FROM instances WHERE restored_from_backup = $1 AND NOT deleted \
                    AND task_id = $3)",
    )
    .bind(id)
    .bind(RecoveryState::ACTIVE)
    .bind(InstanceTask::Building.code())
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
