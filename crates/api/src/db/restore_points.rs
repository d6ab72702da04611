//! Restore point rows as the API records and lists them.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RestorePointRow {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub name: String,
    pub state: String,
    pub lsn: Option<String>,
    pub timeline: Option<i32>,
    pub point_time: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub created: DateTime<Utc>,
}

const COLUMNS: &str = "id, instance_id, name, state, lsn, timeline, point_time, error, created";

/// Records a restore point as asked for (`NEW`); the guest's report completes it.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    instance_id: Uuid,
    tenant: &str,
    name: &str,
) -> sqlx::Result<RestorePointRow> {
    sqlx::query_as(&format!(
        "INSERT INTO restore_points (id, instance_id, tenant_id, name) VALUES ($1, $2, $3, $4) \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(instance_id)
    .bind(tenant)
    .bind(name)
    .fetch_one(conn)
    .await
}

pub async fn find_by_name(
    conn: &mut PgConnection,
    instance_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<RestorePointRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM restore_points WHERE instance_id = $1 AND name = $2"
    ))
    .bind(instance_id)
    .bind(name)
    .fetch_optional(conn)
    .await
}

/// The instance's restore points, oldest first.
pub async fn list(
    conn: &mut PgConnection,
    instance_id: Uuid,
) -> sqlx::Result<Vec<RestorePointRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM restore_points WHERE instance_id = $1 ORDER BY created, name"
    ))
    .bind(instance_id)
    .fetch_all(conn)
    .await
}
