//! Backup state transitions driven by the taskmanager and its conductor role.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use trove_common::{rpc::guest::BackupLocation, status::BackupState};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Backup {
    pub id: Uuid,
    pub name: String,
    pub state: BackupState,
    pub instance_id: Option<Uuid>,
    pub location: Option<String>,
    pub checksum: Option<String>,
    pub backup_type: String,
    pub deleted: bool,
}

impl Backup {
    /// Where a guest finds this backup to restore it: only a completed backup with its archive
    /// and checksum recorded can be restored.
    pub fn restorable(self) -> Option<BackupLocation> {
        match (self.state, self.location, self.checksum) {
            (BackupState::Completed, Some(location), Some(checksum)) => Some(BackupLocation {
                id: self.id,
                location,
                backup_type: self.backup_type,
                checksum,
            }),
            _ => None,
        }
    }
}

pub async fn lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Backup>> {
    sqlx::query_as(
        "SELECT id, name, state, instance_id, location, checksum, backup_type, deleted \
         FROM backups WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: BackupState,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE backups SET state = $2, error = coalesce($3, error), updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct Completed<'a> {
    pub location: &'a str,
    pub checksum: &'a str,
    pub size: Option<f64>,
    pub start_lsn: Option<&'a str>,
    pub stop_lsn: Option<&'a str>,
    pub stop_time: Option<DateTime<Utc>>,
    pub timeline: Option<i32>,
}

pub async fn complete(conn: &mut PgConnection, id: Uuid, c: &Completed<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE backups SET state = $2, location = $3, checksum = $4, size = $5, \
         start_lsn = $6, stop_lsn = $7, stop_time = $8, timeline = $9, deadline = NULL, \
         updated = now() WHERE id = $1",
    )
    .bind(id)
    .bind(BackupState::Completed)
    .bind(c.location)
    .bind(c.checksum)
    .bind(c.size)
    .bind(c.start_lsn)
    .bind(c.stop_lsn)
    .bind(c.stop_time)
    .bind(c.timeline)
    .execute(conn)
    .await?;
    Ok(())
}

/// Running backups past their deadline: they fail, so the instance is free again.
pub async fn fail_overdue(conn: &mut PgConnection) -> sqlx::Result<Vec<(Uuid, Option<Uuid>)>> {
    sqlx::query_as(
        "UPDATE backups SET state = $1, error = 'the guest agent did not finish the backup in time', \
         updated = now() WHERE id IN (SELECT id FROM backups WHERE NOT deleted \
         AND state = ANY($2) AND deadline < now() FOR UPDATE SKIP LOCKED) \
         RETURNING id, instance_id",
    )
    .bind(BackupState::Failed)
    .bind(&BackupState::RUNNING[..])
    .fetch_all(conn)
    .await
}
