//! Instance rows as the API reads and writes them.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Postgres, postgres::PgArguments, query::QueryAs, types::Json};
use trove_common::status::{
    BackupState, InstanceTask, RecoveryPhase, RecoveryState, ServiceStatus,
};
use uuid::Uuid;

/// One instance with everything its views need, read in a single query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: Uuid,
    pub name: String,
    pub tenant_id: String,
    pub flavor_id: String,
    pub volume_size: Option<i32>,
    pub task_id: i32,
    pub address: Option<String>,
    pub port: Option<i32>,
    pub access: Option<Json<serde_json::Value>>,
    pub region_id: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub status_id: i32,
    pub status_updated: DateTime<Utc>,
    pub datastore_version_id: Uuid,
    pub ds_version_name: String,
    pub ds_version_number: String,
    pub ds_name: String,
    pub fault_message: Option<String>,
    pub fault_created: Option<DateTime<Utc>>,
    pub fault_details: Option<String>,
    pub fault_error_code: Option<String>,
    pub recovery_id: Option<Uuid>,
    pub recovery_phase: Option<RecoveryPhase>,
    pub recovery_progress: Option<Json<serde_json::Value>>,
    pub recovery_backup_id: Option<Uuid>,
    /// When the running recovery last reported, and the first progress of its current phase
    /// with its time: what its time left is estimated from.
    pub recovery_updated: Option<DateTime<Utc>>,
    pub recovery_first_progress: Option<Json<serde_json::Value>>,
    pub recovery_first_progress_at: Option<DateTime<Utc>>,
    /// The unfinished recovery's state; while a preview waits, its port and expiry.
    pub recovery_state: Option<String>,
    pub recovery_preview_port: Option<i32>,
    pub recovery_preview_expires_at: Option<DateTime<Utc>>,
    pub backup_running: bool,
    /// The instance's retention override (null = the operator's default for that key).
    pub retention_window_secs: Option<i64>,
    pub retention_min_backups: Option<i32>,
    /// What admins see besides (the management view).
    pub host: Option<String>,
    pub deleted: bool,
    pub deleted_at: Option<DateTime<Utc>>,
    pub task_description: String,
    /// The attached configuration group, if any.
    pub configuration_id: Option<Uuid>,
    pub configuration_name: Option<String>,
    /// Bytes the data directory uses, as the guest last measured it.
    pub volume_used_bytes: Option<i64>,
}

pub(super) const COLUMNS: &str = r#"
SELECT i.id, i.name, i.tenant_id, i.flavor_id, i.volume_size, i.task_id, i.address, i.port,
       i.access, i.region_id, i.created, i.updated,
       s.status_id, s.updated_at AS status_updated,
       dv.id AS datastore_version_id, dv.name AS ds_version_name, dv.version AS ds_version_number,
       d.name AS ds_name,
       f.message AS fault_message, f.created AS fault_created, f.details AS fault_details,
       f.error_code AS fault_error_code,
       r.id AS recovery_id, r.phase AS recovery_phase, r.progress AS recovery_progress,
       r.backup_id AS recovery_backup_id, r.updated AS recovery_updated,
       r.first_progress AS recovery_first_progress,
       r.first_progress_at AS recovery_first_progress_at,
       r.state AS recovery_state, r.preview_port AS recovery_preview_port,
       r.preview_expires_at AS recovery_preview_expires_at,
       EXISTS (SELECT 1 FROM backups b WHERE b.instance_id = i.id AND NOT b.deleted
               AND b.state = ANY($1)) AS backup_running,
       i.retention_window_secs, i.retention_min_backups,
       i.host, i.deleted, i.deleted_at, i.task_description,
       i.configuration_id, c.name AS configuration_name, i.volume_used_bytes
"#;

pub(super) const FROM: &str = r#"
FROM instances i
LEFT JOIN configurations c ON c.id = i.configuration_id
JOIN service_statuses s ON s.instance_id = i.id
JOIN datastore_versions dv ON dv.id = i.datastore_version_id
JOIN datastores d ON d.id = dv.datastore_id
LEFT JOIN LATERAL (SELECT message, created, details, error_code FROM instance_faults
                   WHERE instance_id = i.id AND NOT deleted ORDER BY created DESC LIMIT 1) f ON true
LEFT JOIN LATERAL (SELECT rc.id, rc.phase, rc.progress, rc.backup_id, rc.updated,
                          rp.first_progress, rp.first_progress_at, rc.state, rc.preview_port,
                          rc.preview_expires_at
                   FROM recoveries rc
                   LEFT JOIN recovery_phases rp ON rp.recovery_id = rc.id AND rp.phase = rc.phase
                                         AND rp.round = rc.preview_moves
                   WHERE rc.instance_id = i.id AND rc.state = ANY($2) LIMIT 1) r ON true
"#;

/// `sql` (which extends [`COLUMNS`] and [`FROM`]) with the states they read bound as `$1` and `$2`; the
/// caller's own parameters start at `$3`.
fn select(sql: &str) -> QueryAs<'_, Postgres, InstanceRow, PgArguments> {
    sqlx::query_as(sql)
        .bind(BackupState::RUNNING)
        .bind(RecoveryState::ACTIVE)
}

/// A visible instance of `tenant` (any tenant when `tenant` is None, for admins).
pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&str>,
) -> sqlx::Result<Option<InstanceRow>> {
    let sql = format!(
        "{COLUMNS}{FROM} WHERE NOT i.deleted AND i.id = $3 AND ($4::text IS NULL OR i.tenant_id = $4)"
    );
    select(&sql)
        .bind(id)
        .bind(tenant)
        .fetch_optional(conn)
        .await
}

/// A page of a tenant's instances ordered by id, as Trove pages them (`marker` = last id seen).
pub async fn list(
    conn: &mut PgConnection,
    tenant: &str,
    marker: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<InstanceRow>> {
    let sql = format!(
        "{COLUMNS}{FROM} WHERE NOT i.deleted AND i.tenant_id = $3 AND ($4::uuid IS NULL OR i.id > $4) \
         ORDER BY i.id LIMIT $5"
    );
    select(&sql)
        .bind(tenant)
        .bind(marker)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// The management listing: every project's instances (or `project`'s), deleted ones too unless
/// `deleted` says otherwise, paged by id as [`list`] is.
pub async fn list_all(
    conn: &mut PgConnection,
    project: Option<&str>,
    deleted: Option<bool>,
    marker: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<InstanceRow>> {
    let sql = format!(
        "{COLUMNS}{FROM} WHERE ($3::text IS NULL OR i.tenant_id = $3) \
         AND ($4::boolean IS NULL OR i.deleted = $4) AND ($5::uuid IS NULL OR i.id > $5) \
         ORDER BY i.id LIMIT $6"
    );
    select(&sql)
        .bind(project)
        .bind(deleted)
        .bind(marker)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// The columns a state transition needs, locked for the rest of the transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LockedInstance {
    pub id: Uuid,
    pub tenant_id: String,
    pub task_id: i32,
    pub status_id: i32,
    pub datastore_version_id: Uuid,
    pub host: Option<String>,
    pub configuration_id: Option<Uuid>,
    pub flavor_id: String,
    pub volume_size: Option<i32>,
}

pub async fn lock(
    conn: &mut PgConnection,
    id: Uuid,
    tenant: Option<&str>,
) -> sqlx::Result<Option<LockedInstance>> {
    sqlx::query_as(
        "SELECT i.id, i.tenant_id, i.task_id, s.status_id, i.datastore_version_id, i.host, \
         i.configuration_id, i.flavor_id, i.volume_size \
         FROM instances i JOIN service_statuses s ON s.instance_id = i.id \
         WHERE i.id = $1 AND NOT i.deleted AND ($2::text IS NULL OR i.tenant_id = $2) \
         FOR UPDATE OF i",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(conn)
    .await
}

pub struct NewInstance<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub tenant_id: &'a str,
    pub flavor_id: &'a str,
    pub datastore_version_id: Uuid,
    pub volume_size: Option<i32>,
    pub access: Option<serde_json::Value>,
    pub restored_from_backup: Option<Uuid>,
    /// The point in time a restore replays to, recorded for operators.
    pub restore_target: Option<serde_json::Value>,
    pub task: InstanceTask,
    pub task_deadline: DateTime<Utc>,
    pub status: ServiceStatus,
    /// The configuration group to start with.
    pub configuration_id: Option<Uuid>,
}

pub async fn insert(conn: &mut PgConnection, n: &NewInstance<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO instances (id, name, tenant_id, flavor_id, datastore_version_id, volume_size, \
         access, restored_from_backup, restore_target, task_id, task_description, task_start_time, \
         task_deadline, configuration_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), $12, $13)",
    )
    .bind(n.id)
    .bind(n.name)
    .bind(n.tenant_id)
    .bind(n.flavor_id)
    .bind(n.datastore_version_id)
    .bind(n.volume_size)
    .bind(n.access.clone().map(Json))
    .bind(n.restored_from_backup)
    .bind(n.restore_target.clone().map(Json))
    .bind(n.task.code())
    .bind(n.task.description())
    .bind(n.task_deadline)
    .bind(n.configuration_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO service_statuses (id, instance_id, status_id, status_description) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(Uuid::new_v4())
    .bind(n.id)
    .bind(n.status.code())
    .bind(n.status.description())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_task(
    conn: &mut PgConnection,
    id: Uuid,
    task: InstanceTask,
    deadline: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instances SET task_id = $2, task_description = $3, task_start_time = now(), \
         task_deadline = $4, updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(task.code())
    .bind(task.description())
    .bind(deadline)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores validated network access; the taskmanager reads it from here to apply it.
pub async fn set_access(
    conn: &mut PgConnection,
    id: Uuid,
    access: &trove_common::access::Access,
) -> sqlx::Result<()> {
    let value = serde_json::to_value(access).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query("UPDATE instances SET access = $2, updated = now() WHERE id = $1")
        .bind(id)
        .bind(Json(value))
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn rename(conn: &mut PgConnection, id: Uuid, name: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE instances SET name = $2, updated = now() WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

/// The flavor a resize moves the instance to; it takes it when the guest reports success.
pub async fn set_resize_flavor(
    conn: &mut PgConnection,
    id: Uuid,
    flavor: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE instances SET resize_flavor_id = $2 WHERE id = $1")
        .bind(id)
        .bind(flavor)
        .execute(conn)
        .await?;
    Ok(())
}
