//! A taskmanager per test on the real services: its own control database on the local
//! PostgreSQL and its own vhost on the local RabbitMQ, both removed when the test ends, even by a
//! panic. Rows are inserted with plain SQL, as the API would have written them.
// Several test binaries include this module and each uses only part of it.
#![allow(dead_code)]

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, types::Json};
use trove_common::{
    amqp::Bus,
    recovery::{RecoveryOutcome, RecoveryProgress, TargetKind},
    rpc::{RpcMessage, guest::GuestMethod},
    secrets::SecretKey,
    status::{BackupState, InstanceTask, RecoveryPhase, RecoveryState, ServiceStatus},
    testkit::{Sandbox, insert_instance},
};
use trove_taskmanager::{config::TaskManagerConfig, manager::TaskManager};
use uuid::Uuid;

/// Every row ever put in the outbox, as written: the taskmanager publishes and deletes its rows
/// as soon as it commits, so the tests read what it sent from this copy.
const OUTBOX_LOG: &str = "
CREATE TABLE test_outbox_log (id bigint PRIMARY KEY, topic text NOT NULL, body bytea NOT NULL);
CREATE FUNCTION test_outbox_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_outbox_log (id, topic, body) VALUES (NEW.id, NEW.topic, NEW.body);
    RETURN NEW;
END $$;
CREATE TRIGGER test_outbox_log AFTER INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION test_outbox_log();
";

pub struct Harness {
    pub tm: TaskManager,
    pub pool: PgPool,
    /// The guest host the test's instances are placed on.
    pub host: String,
    _sandbox: Sandbox,
}

impl Harness {
    pub async fn start() -> Result<Harness> {
        let sandbox = Sandbox::create("trove_tm").await?;
        let pool = sandbox.pool.clone();
        trove_taskmanager::manage::bootstrap(&pool).await?;
        sqlx::raw_sql(OUTBOX_LOG).execute(&pool).await?;
        let bus = Bus::connect(&sandbox.amqp).await?;
        let id = sandbox.id.clone();

        let config = TaskManagerConfig {
            store: trove_common::testkit::store_config(
                &std::env::temp_dir().join(format!("trove-tm-{id}")),
                &id,
            ),
            database: sandbox.database.clone(),
            amqp: sandbox.amqp.clone(),
            ..Default::default()
        };
        Ok(Harness {
            tm: TaskManager {
                pool: pool.clone(),
                bus,
                config: Arc::new(config.clone()),
                secret_key: Arc::new(SecretKey::generate()),
                store: trove_common::store::BlobStore::open(&config.store)?,
            },
            pool,
            host: format!("host-{id}"),
            _sandbox: sandbox,
        })
    }

    /// An instance placed on the test's guest host, in `task`, on timeline 1.
    pub async fn instance(&self, task: InstanceTask) -> Result<Uuid> {
        sqlx::query(
            "INSERT INTO guest_hosts (id, address, capacity, last_heartbeat) \
             VALUES ($1, '127.0.0.1', 10, now()) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&self.host)
        .execute(&self.pool)
        .await?;
        // Not HEALTHY, so a test sees the completed recovery set it.
        let id =
            insert_instance(&self.pool, Some(&self.host), task, ServiceStatus::Running).await?;
        Ok(id)
    }

    /// A completed backup of `instance`, taken on timeline 1.
    pub async fn backup(&self, instance: Uuid) -> Result<Uuid> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO backups (id, name, tenant_id, state, instance_id, location, checksum, \
             size, start_lsn, stop_lsn, stop_time, timeline) \
             VALUES ($1, 'b1', 'tenant-a', $2, $3, $4, 'ab12', 1.5, '0/2000028', '0/2000100', \
             now() - interval '1 hour', 1)",
        )
        .bind(id)
        .bind(BackupState::Completed)
        .bind(instance)
        .bind(format!("{id}/base.tar.zst"))
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// A queued recovery as the API writes it, with the stored target given as raw columns.
    pub async fn recovery(&self, instance: Uuid, backup: Uuid, target: Stored<'_>) -> Result<Uuid> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO recoveries (id, instance_id, backup_id, target_kind, target_time, \
             target_timeline, state, phase, deadline) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))",
        )
        .bind(id)
        .bind(instance)
        .bind(backup)
        .bind(target.kind)
        .bind(target.time)
        .bind(target.timeline)
        .bind(RecoveryState::New)
        .bind(RecoveryPhase::Queued)
        .bind(target.deadline_secs)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// Every guest message the taskmanager put in the outbox, oldest first, with its topic.
    pub async fn sent(&self) -> Result<Vec<(String, GuestMethod)>> {
        let rows: Vec<(String, Vec<u8>)> =
            sqlx::query_as("SELECT topic, body FROM test_outbox_log ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(topic, body)| {
                let method = RpcMessage::decode(&body)?.parse::<GuestMethod>()?;
                Ok((topic, method))
            })
            .collect()
    }

    /// Outbox rows not published yet.
    pub async fn unsent(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn recovery_row(&self, id: Uuid) -> Result<RecoveryRow> {
        Ok(sqlx::query_as(
            "SELECT state, phase, error, outcome, finished IS NOT NULL AS finished \
             FROM recoveries WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn instance_row(&self, id: Uuid) -> Result<InstanceRow> {
        Ok(sqlx::query_as(
            "SELECT i.task_id, i.timeline, s.status_description \
             FROM instances i JOIN service_statuses s ON s.instance_id = i.id WHERE i.id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The progress the recovery's row shows.
    pub async fn progress(&self, recovery: Uuid) -> Result<Option<RecoveryProgress>> {
        let stored: Option<Json<RecoveryProgress>> =
            sqlx::query_scalar("SELECT progress FROM recoveries WHERE id = $1")
                .bind(recovery)
                .fetch_one(&self.pool)
                .await?;
        Ok(stored.map(|p| p.0))
    }

    /// The faults a user reads on the instance, newest first: (message, details).
    /// The instance's visible faults, newest first: (error code, message, details).
    pub async fn faults(&self, instance: Uuid) -> Result<Vec<(Option<String>, String, String)>> {
        Ok(sqlx::query_as(
            "SELECT error_code, message, details FROM instance_faults \
             WHERE instance_id = $1 AND NOT deleted ORDER BY created DESC",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// A recovery's target as the `recoveries` row stores it, and its deadline.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub kind: &'a str,
    pub time: Option<DateTime<Utc>>,
    pub timeline: Option<i32>,
    /// Seconds from now to the recovery's deadline; negative for one already overdue.
    pub deadline_secs: f64,
}

impl Stored<'static> {
    /// To the end of the backup, due in an hour.
    pub fn backup() -> Self {
        Stored::raw(TargetKind::Backup.as_str(), None, None)
    }

    pub fn time(at: DateTime<Utc>, timeline: i32) -> Self {
        Stored::raw(TargetKind::Time.as_str(), Some(at), Some(timeline))
    }

    pub fn latest(timeline: i32) -> Self {
        Stored::raw(TargetKind::Latest.as_str(), None, Some(timeline))
    }
}

impl<'a> Stored<'a> {
    /// Any columns, even ones no API would write.
    pub fn raw(kind: &'a str, time: Option<DateTime<Utc>>, timeline: Option<i32>) -> Self {
        Stored {
            kind,
            time,
            timeline,
            deadline_secs: 3600.0,
        }
    }

    /// The same target with its deadline already passed.
    pub fn overdue(self) -> Self {
        Stored {
            deadline_secs: -1.0,
            ..self
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct RecoveryRow {
    pub state: RecoveryState,
    pub phase: RecoveryPhase,
    pub error: Option<String>,
    pub outcome: Option<Json<RecoveryOutcome>>,
    pub finished: bool,
}

#[derive(Debug, sqlx::FromRow)]
pub struct InstanceRow {
    pub task_id: i32,
    pub timeline: Option<i32>,
    pub status_description: String,
}

impl InstanceRow {
    pub fn task(&self) -> Option<InstanceTask> {
        InstanceTask::from_code(self.task_id)
    }
}
