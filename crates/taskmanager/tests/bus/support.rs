//! A running trove-taskmanager on its own control database and vhost, guest hosts registered
//! through the `host-add` code path, and raw AMQP connections made with a host's credentials.

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{
        BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trove_common::{
    amqp::{self, Bus, Role},
    config::AmqpConfig,
    rpc::{
        RequestContext, RpcMessage,
        conductor::{ConductorMethod, HeartbeatPayload},
        topics,
    },
    status::{InstanceTask, ServiceStatus},
    testkit::{Sandbox, insert_instance},
    timefmt::epoch_seconds,
};
use trove_taskmanager::{
    config::TaskManagerConfig,
    manage::{
        broker_admin::BrokerAdmin,
        hosts::{self, HostCredentials},
    },
};
use uuid::Uuid;

pub struct Stack {
    pub pool: PgPool,
    /// The control plane's own connection (the sandbox's service user), to inspect queues.
    pub control: Arc<Bus>,
    pub broker: BrokerAdmin,
    pub max_attempts: u32,
    dir: PathBuf,
    taskmanager: Option<(CancellationToken, JoinHandle<()>)>,
    sandbox: Sandbox,
}

/// A registered guest host and its credentials.
pub struct Host {
    pub name: String,
    pub creds: HostCredentials,
    /// Its broker connection settings, as its guest agent would have them.
    pub amqp: AmqpConfig,
}

impl Stack {
    /// A sandbox with the catalogue; no taskmanager runs yet.
    pub async fn new(max_attempts: u32) -> Result<Stack> {
        trove_common::telemetry::init("warn,trove_taskmanager=info,trove_common=info");
        let sandbox = Sandbox::create("trove_bus").await?;
        trove_taskmanager::manage::bootstrap(&sandbox.pool).await?;
        let dir = std::env::temp_dir().join(format!("trove-bus-{}", sandbox.id));
        std::fs::create_dir_all(&dir)?;
        let mut amqp_cfg = sandbox.amqp.clone();
        amqp_cfg.max_attempts = max_attempts;
        Ok(Stack {
            pool: sandbox.pool.clone(),
            control: Bus::connect(&amqp_cfg).await?,
            broker: BrokerAdmin {
                rabbitmqctl: "rabbitmqctl".into(),
                vhost: sandbox.vhost().to_string(),
                exchange: sandbox.amqp.exchange.clone(),
            },
            max_attempts,
            dir,
            taskmanager: None,
            sandbox,
        })
    }

    /// Registers `name` with `capacity` as `trove-manage host-add` does.
    pub async fn add_host(&self, name: &str, capacity: i32) -> Result<Host> {
        let name = format!("{name}-{}", self.sandbox.id);
        let creds = hosts::add_host(&self.pool, &self.broker, &name, capacity).await?;
        self.sandbox.delete_user_at_end(&creds.user);
        let file = self.dir.join(format!("{name}.secret"));
        hosts::write_password_file(&file, &creds)?;
        let amqp = self.sandbox.amqp.for_user(&creds.user, file)?;
        Ok(Host { name, creds, amqp })
    }

    /// A broker user with a host's permissions that no `host-add` registered.
    pub async fn rogue_user(&self) -> Result<AmqpConfig> {
        let user = format!("trove-rogue-{}", self.sandbox.id);
        let password = Uuid::new_v4().simple().to_string();
        self.broker
            .issue_host_user(&format!("rogue-{}", self.sandbox.id), &user, &password)
            .await?;
        self.sandbox.delete_user_at_end(&user);
        let file = self.dir.join("rogue.secret");
        std::fs::write(&file, &password)?;
        self.sandbox.amqp.for_user(&user, file)
    }

    /// Starts trove-taskmanager (and so the conductor) in this process.
    pub fn start_taskmanager(&mut self) {
        let mut amqp = self.sandbox.amqp.clone();
        amqp.max_attempts = self.max_attempts;
        let key_file = self.dir.join("taskmanager.key");
        if !key_file.exists() {
            trove_common::secrets::SecretKey::generate()
                .write_new(&key_file)
                .expect("a new key file in the test's own directory");
        }
        let cfg = TaskManagerConfig {
            store: trove_common::testkit::store_config(&self.dir, &self.sandbox.id),
            secret_key_file: key_file,
            sweep_interval_ms: 200,
            outbox_grace_ms: 1000,
            host_heartbeat_expiry_secs: 30,
            preview_ttl_secs: 3600,
            database: self.sandbox.database.clone(),
            amqp,
            retention: Default::default(),
        };
        let cancel = CancellationToken::new();
        let run = trove_taskmanager::run(cfg, cancel.clone());
        let handle = tokio::spawn(async move {
            if let Err(e) = run.await {
                eprintln!("trove-taskmanager stopped: {e:#}");
            }
        });
        self.taskmanager = Some((cancel, handle));
    }

    /// Waits until the taskmanager consumes its queues (the conductor's among them).
    pub async fn wait_consuming(&self) -> Result<()> {
        let conn = raw_connection(&self.sandbox.amqp).await?;
        wait_until(
            "the taskmanager to consume its queues",
            Duration::from_secs(30),
            || async {
                for queue in [topics::CONDUCTOR, topics::TASKMANAGER] {
                    let ch = conn.create_channel().await?;
                    let q = ch
                        .queue_declare(
                            queue.into(),
                            QueueDeclareOptions {
                                passive: true,
                                ..Default::default()
                            },
                            FieldTable::default(),
                        )
                        .await;
                    match q {
                        Ok(q) if q.consumer_count() > 0 => {
                            let _ = ch.close(200, "done".into()).await;
                        }
                        _ => return Ok(None),
                    }
                }
                Ok(Some(()))
            },
        )
        .await
    }

    /// An ACTIVE instance placed on `host`, whose service status is RUNNING.
    pub async fn instance_on(&self, host: &Host) -> Result<Uuid> {
        insert_instance(
            &self.pool,
            Some(&host.name),
            InstanceTask::None,
            ServiceStatus::Running,
        )
        .await
    }

    /// The instance's service status and when it was last set.
    pub async fn status(&self, id: Uuid) -> Result<(String, DateTime<Utc>)> {
        Ok(sqlx::query_as(
            "SELECT status_description, updated_at FROM service_statuses WHERE instance_id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// (capacity, last heartbeat) of a registered host.
    pub async fn host_row(&self, host: &Host) -> Result<(i32, Option<DateTime<Utc>>)> {
        Ok(
            sqlx::query_as("SELECT capacity, last_heartbeat FROM guest_hosts WHERE id = $1")
                .bind(&host.name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn dead_letters(&self) -> Result<u32> {
        self.control
            .queue_depth(&self.control.dead_letter_queue())
            .await
    }

    /// Waits until the dead-letter queue holds `n` messages, and checks it stays at `n` while
    /// the conductor's queue drains.
    pub async fn wait_dead_letters(&self, n: u32) -> Result<()> {
        wait_until(
            &format!("{n} dead-lettered messages"),
            Duration::from_secs(60),
            || async {
                let dead = self.dead_letters().await?;
                if dead > n {
                    bail!("{dead} messages dead-lettered, expected {n}");
                }
                let waiting = self.control.queue_depth(topics::CONDUCTOR).await?;
                Ok((dead == n && waiting == 0).then_some(()))
            },
        )
        .await
    }

    /// Waits until `host`'s heartbeat was applied (its `last_heartbeat` is after `after`).
    pub async fn wait_host_seen(&self, host: &Host, after: Option<DateTime<Utc>>) -> Result<()> {
        wait_until(
            &format!("a heartbeat of {}", host.name),
            Duration::from_secs(30),
            || async {
                let (_, seen) = self.host_row(host).await?;
                Ok(seen.filter(|s| Some(*s) > after).map(|_| ()))
            },
        )
        .await
    }

    pub async fn shutdown(mut self) {
        if let Some((cancel, handle)) = self.taskmanager.take() {
            cancel.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Host {
    /// The host's bus, as its guest agent connects.
    pub async fn bus(&self) -> Result<Arc<Bus>> {
        Bus::connect_as(&self.amqp, Role::GuestHost).await
    }

    /// A raw AMQP connection with the host's credentials, for what the `Bus` never does.
    pub async fn raw(&self) -> Result<Connection> {
        raw_connection(&self.amqp).await
    }
}

pub async fn raw_connection(amqp: &AmqpConfig) -> Result<Connection> {
    Ok(Connection::connect_uri(amqp.uri()?, ConnectionProperties::default()).await?)
}

/// Publishes `body` on a fresh confirmed channel and waits for the broker's verdict.
pub async fn raw_publish(
    conn: &Connection,
    exchange: &str,
    routing_key: &str,
    props: BasicProperties,
    body: &[u8],
) -> Result<()> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await?
        .await?;
    if confirm.is_nack() {
        bail!("the broker nacked the message");
    }
    // A refused publish closes the channel; make sure that had time to show.
    ch.basic_qos(1, Default::default()).await?;
    Ok(())
}

/// Starts consuming `queue` on a fresh channel.
pub async fn raw_consume(conn: &Connection, queue: &str) -> Result<()> {
    let ch = conn.create_channel().await?;
    ch.basic_consume(
        queue.into(),
        format!("probe-{}", Uuid::new_v4().simple()).as_str().into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

/// The reply code the broker refused `r` with; fails when it was not refused at all.
pub fn refusal<T>(what: &str, r: Result<T>) -> Result<u16> {
    match r {
        Ok(_) => bail!("{what} was allowed"),
        Err(e) => amqp::reply_code(&e)
            .with_context(|| format!("{what} failed without a broker refusal: {e:#}")),
    }
}

/// A status heartbeat for `instance` as a guest sends it, naming `guest_host` in its context.
pub fn heartbeat(instance: Uuid, status: ServiceStatus, sent: f64, guest_host: &str) -> RpcMessage {
    RpcMessage::new(
        &ConductorMethod::Heartbeat {
            instance_id: instance,
            payload: HeartbeatPayload {
                service_status: status.description().to_string(),
                address: None,
                port: None,
                error: None,
                completes: None,
                accounts: None,
                volume_used_bytes: None,
                rewind: None,
            },
            sent,
        },
        RequestContext {
            guest_host: Some(guest_host.to_string()),
            ..Default::default()
        },
    )
}

pub fn now() -> f64 {
    epoch_seconds(Utc::now())
}

/// Polls `probe` every 50 ms until it yields a value or `timeout` passes.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
