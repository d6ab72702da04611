//! Instance state transitions driven by the taskmanager and its conductor role.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use trove_common::{
    access::Access,
    status::{InstanceTask, ServiceStatus},
};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Instance {
    pub id: Uuid,
    pub task_id: i32,
    pub task_start_time: Option<DateTime<Utc>>,
    pub host: Option<String>,
    pub deleted: bool,
    /// The network access the API stored (validated), or NULL.
    pub access: Option<Json<serde_json::Value>>,
    /// The rewind window the tenant asked for, in seconds (0: no delayed copy).
    pub rewind_window_secs: i32,
}

impl Instance {
    pub fn task(&self) -> InstanceTask {
        InstanceTask::from_code(self.task_id).unwrap_or(InstanceTask::None)
    }

    /// The network access to enforce; None (open to every address, as before access was
    /// enforced) for an instance created without one, or whose stored value predates validation
    /// and does not parse.
    pub fn access(&self) -> Option<Access> {
        let stored = self
            .access
            .as_ref()
            .map(|j| &j.0)
            .filter(|v| !v.is_null())?;
        match serde_json::from_value(stored.clone()) {
            Ok(access) => Some(access),
            Err(e) => {
                tracing::warn!(instance.id = %self.id, error = %e, "stored access does not parse; the instance stays open");
                None
            }
        }
    }
}

const COLUMNS: &str = "id, task_id, task_start_time, host, deleted, access, rewind_window_secs";

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Instance>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM instances WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The instance, locked, if it still exists and is in `task`: a redelivered task message for
/// an instance that has moved on finds nothing to do.
pub async fn lock_in_task(
    conn: &mut PgConnection,
    id: Uuid,
    task: InstanceTask,
) -> sqlx::Result<Option<Instance>> {
    Ok(lock(conn, id)
        .await?
        .filter(|i| !i.deleted && i.task() == task))
}

pub async fn set_task(conn: &mut PgConnection, id: Uuid, task: InstanceTask) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instances SET task_id = $2, task_description = $3, task_deadline = NULL, \
         updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(task.code())
    .bind(task.description())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_host(conn: &mut PgConnection, id: Uuid, host: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE instances SET host = $2, updated = now() WHERE id = $1")
        .bind(id)
        .bind(host)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_endpoint(
    conn: &mut PgConnection,
    id: Uuid,
    address: &str,
    port: u16,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instances SET address = $2, port = $3, updated = now() \
         WHERE id = $1 AND (address IS DISTINCT FROM $2 OR port IS DISTINCT FROM $3)",
    )
    .bind(id)
    .bind(address)
    .bind(i32::from(port))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_service_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: ServiceStatus,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE service_statuses SET status_id = $2, status_description = $3, updated_at = now() \
         WHERE instance_id = $1",
    )
    .bind(id)
    .bind(status.code())
    .bind(status.description())
    .execute(conn)
    .await?;
    Ok(())
}

/// The timeline the instance's server runs on, from which the next point-in-time recovery is
/// planned.
pub async fn set_timeline(conn: &mut PgConnection, id: Uuid, timeline: u32) -> sqlx::Result<()> {
    let Ok(timeline) = i32::try_from(timeline) else {
        tracing::warn!(instance.id = %id, timeline, "timeline out of range ignored");
        return Ok(());
    };
    sqlx::query(
        "UPDATE instances SET timeline = $2 WHERE id = $1 AND timeline IS DISTINCT FROM $2",
    )
    .bind(id)
    .bind(timeline)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_deleted(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instances SET deleted = true, deleted_at = now(), task_id = $2, task_description = $3, \
         task_deadline = NULL, updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(InstanceTask::None.code())
    .bind(InstanceTask::None.description())
    .execute(&mut *conn)
    .await?;
    set_service_status(conn, id, ServiceStatus::Deleted).await
}

/// Instances whose task outlived its deadline, locked; rows another replica holds are skipped.
pub async fn overdue(conn: &mut PgConnection) -> sqlx::Result<Vec<Instance>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM instances \
         WHERE NOT deleted AND task_deadline IS NOT NULL AND task_deadline < now() \
         AND task_id = ANY($1) ORDER BY task_deadline LIMIT 50 FOR UPDATE SKIP LOCKED"
    ))
    .bind(
        [
            InstanceTask::Deleting,
            InstanceTask::Rebooting,
            InstanceTask::Building,
            InstanceTask::Updating,
            InstanceTask::Resizing,
        ]
        .map(InstanceTask::code),
    )
    .fetch_all(conn)
    .await
}

/// Instances being deleted (or whose delete timed out) on a host that is disabled or silent for
/// `expiry_secs`, locked; rows another replica holds are skipped. Their guest's delete message
/// waits in the instance's durable queue.
pub async fn deleting_on_dead_hosts(
    conn: &mut PgConnection,
    expiry_secs: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT i.id FROM instances i JOIN guest_hosts h ON h.id = i.host \
         WHERE NOT i.deleted AND i.task_id = ANY($1) \
         AND NOT (h.enabled AND coalesce(h.last_heartbeat > now() - make_interval(secs => $2), false)) \
         ORDER BY i.id LIMIT 50 FOR UPDATE OF i SKIP LOCKED",
    )
    .bind([InstanceTask::Deleting, InstanceTask::DeletingError].map(InstanceTask::code))
    .bind(expiry_secs as f64)
    .fetch_all(conn)
    .await
}

/// Trove's `conductor_lastseen`: false when a newer message of this kind was already applied.
pub async fn message_is_fresh(
    conn: &mut PgConnection,
    instance_id: Uuid,
    method: &str,
    sent: f64,
) -> sqlx::Result<bool> {
    let applied: Option<f64> = sqlx::query_scalar(
        "INSERT INTO conductor_lastseen (instance_id, method_name, sent) VALUES ($1, $2, $3) \
         ON CONFLICT (instance_id, method_name) DO UPDATE SET sent = $3 \
         WHERE conductor_lastseen.sent < $3 RETURNING sent",
    )
    .bind(instance_id)
    .bind(method)
    .bind(sent)
    .fetch_optional(conn)
    .await?;
    Ok(applied.is_some())
}

/// Every instance placed on a host and not deleted, with its host: the instance queues that
/// must exist.
pub async fn placed(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as("SELECT id, host FROM instances WHERE NOT deleted AND host IS NOT NULL")
        .fetch_all(conn)
        .await
}

/// Stores what the guest reported of the instance's delayed copy (None: it keeps none).
pub async fn set_rewind_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: Option<&trove_common::rewind::RewindStatus>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE instances SET rewind_status = $2, rewind_reported_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(status.map(Json))
    .execute(conn)
    .await?;
    Ok(())
}
