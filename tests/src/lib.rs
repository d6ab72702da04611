//! End-to-end test support: a whole trove-rs stack per test, on the real RabbitMQ (own vhost),
//! the real control PostgreSQL (own database) and real managed PostgreSQL servers, torn down
//! even when the test panics.

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool, postgres::PgConnectOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use trove_common::{
    config::{AmqpConfig, DatabaseConfig},
    secrets::SecretKey,
    testkit::{Sandbox, run},
};
use uuid::Uuid;

pub mod capture;
pub mod cli;
pub mod envelope;
pub mod fixtures;
pub mod logs;
pub mod pg_probe;

pub const TENANT_A: &str = "tenant-a";
pub const TOKEN_A: &str = "token-a";
pub const TENANT_B: &str = "tenant-b";
pub const TOKEN_B: &str = "token-b";
pub const TOKEN_ADMIN: &str = "token-admin";
/// A project whose id looks like Keystone's (32 hex digits): the CLI's quota commands take
/// such an id as it is, and look any other name up in Keystone.
pub const TENANT_K: &str = "6f1d3a2b9c8e4f7a8b1c2d3e4f5a6b7c";
pub const TOKEN_K: &str = "token-k";

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const TASKMANAGER_KEY: &str = "taskmanager.key";

/// Which daemons a test runs (refusal tests need only the API), and the API's task deadline.
#[derive(Debug, Clone, Copy)]
pub struct Daemons {
    pub taskmanager: bool,
    pub guest: bool,
    pub task_timeout_secs: i64,
}

pub const ALL: Daemons = Daemons {
    taskmanager: true,
    guest: true,
    task_timeout_secs: 1800,
};
pub const API_ONLY: Daemons = Daemons {
    taskmanager: false,
    guest: false,
    task_timeout_secs: 1800,
};

pub struct Stack {
    pub id: String,
    pub root: PathBuf,
    pub pool: PgPool,
    pub api_url: String,
    pub http: reqwest::Client,
    pub db: DatabaseConfig,
    pub amqp: AmqpConfig,
    pub host: String,
    /// The guest's broker connection: the host's own user, registered as `trove-manage host-add`
    /// does, with its password in a 0600 file.
    pub guest_amqp: AmqpConfig,
    /// The taskmanager's `preview_ttl_secs` from its next start (`start_taskmanager`).
    pub preview_ttl_secs: i64,
    daemons: HashMap<&'static str, (CancellationToken, JoinHandle<()>)>,
    cleanup: Cleanup,
    /// Dropped last: the control database and the vhost outlive the managed servers' teardown.
    _sandbox: Sandbox,
}

/// Synchronous teardown that also runs when a test panics.
struct Cleanup {
    root: PathBuf,
    /// The stack's object store, emptied at the end (an S3 prefix outlives the directory).
    store: trove_common::store::StoreConfig,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Managed servers outlive the agent by design, so stop them here, on every host's tree.
        let roots = std::fs::read_dir(&self.root)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("instances"))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for entries in roots.iter().filter_map(|r| std::fs::read_dir(r).ok()) {
            for e in entries.flatten() {
                for data in ["data", "data.staging", "data.old", "data.rewind"] {
                    let dir = e.path().join(data);
                    if dir.join("postmaster.pid").exists() {
                        let _ = Command::new("runuser")
                            .args(["-u", "postgres", "--"])
                            .arg(format!("{PG_BIN}/pg_ctl"))
                            .args(["-D"])
                            .arg(&dir)
                            .args(["-m", "immediate", "-w", "stop"])
                            .output();
                    }
                }
            }
        }
        if trove_common::testkit::s3_endpoint_configured() {
            trove_common::testkit::clear_store_blocking(self.store.clone());
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Where [`Stack::start_capturing_logs`] writes the daemons' tracing output, under the root.
const DAEMON_LOG: &str = "daemons.log";

impl Stack {
    pub async fn start(daemons: Daemons) -> Result<Stack> {
        Self::start_with(daemons, false).await
    }

    /// As [`Stack::start`], with every daemon's tracing output, at TRACE for trove's crates and
    /// DEBUG for the rest, captured for [`Stack::daemon_log`].
    pub async fn start_capturing_logs(daemons: Daemons) -> Result<Stack> {
        Self::start_with(daemons, true).await
    }

    async fn start_with(daemons: Daemons, capture_logs: bool) -> Result<Stack> {
        let sandbox = Sandbox::create("trove_e2e").await?;
        let id = sandbox.id.clone();
        let root = std::env::temp_dir().join(format!("trove-e2e-{id}"));
        let cleanup = Cleanup {
            root: root.clone(),
            store: trove_common::testkit::store_config(&root, &id),
        };
        std::fs::create_dir_all(root.join("instances"))?;
        if capture_logs {
            logs::capture(&root.join(DAEMON_LOG))?;
        } else {
            trove_common::telemetry::init(
                "warn,trove_api=info,trove_taskmanager=info,trove_guestagent=info",
            );
        }
        // The managed servers run as `postgres` and must traverse into their directories.
        run(Command::new("chmod").args(["0755"]).arg(&root))?;
        let pool = sandbox.pool.clone();
        trove_taskmanager::manage::bootstrap(&pool).await?;
        let (db, amqp) = (sandbox.database.clone(), sandbox.amqp.clone());
        let host = format!("host-{id}");
        let guest_amqp = if daemons.guest {
            register_host(&sandbox, &root, &host, "guest-amqp.secret").await?
        } else {
            amqp.clone()
        };

        // The taskmanager's key pair, made as an operator would with `trove-manage keygen`; the
        // guest makes its own on first start.
        let taskmanager_key = SecretKey::generate();
        taskmanager_key.write_new(&root.join(TASKMANAGER_KEY))?;

        let token_file = root.join("tokens.json");
        std::fs::write(
            &token_file,
            serde_json::to_vec(&json!({
                TOKEN_A: {"project_id": TENANT_A, "roles": ["member"], "user": "alice"},
                TOKEN_B: {"project_id": TENANT_B, "roles": ["member"], "user": "bob"},
                TOKEN_ADMIN: {"project_id": "admin", "roles": ["admin"], "user": "admin"},
                TOKEN_K: {"project_id": TENANT_K, "roles": ["member"], "user": "kate"},
            }))?,
        )?;

        let mut stack = Stack {
            host,
            guest_amqp,
            id,
            root,
            pool,
            api_url: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            db,
            amqp,
            preview_ttl_secs: 3600,
            daemons: HashMap::new(),
            cleanup,
            _sandbox: sandbox,
        };

        let api_cfg = trove_api::config::ApiConfig {
            listen: "127.0.0.1:0".into(),
            token_file,
            database: stack.db.clone(),
            amqp: stack.amqp.clone(),
            task_timeout_secs: daemons.task_timeout_secs,
            taskmanager_public_key: Some(taskmanager_key.public_key()),
            // Without a guest nothing settles a database, user or root change: answer 202 after
            // a second instead of holding every such request (and the fuzzer) for 15 s.
            guest_wait_secs: if daemons.guest { 15 } else { 1 },
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        stack.api_url = format!("http://{}", listener.local_addr()?);
        stack.spawn("api", |c| trove_api::run(api_cfg, listener, c));
        if daemons.taskmanager {
            stack.start_taskmanager();
        }
        if daemons.guest {
            stack.start_guest();
            let host = stack.host.clone();
            let pool = stack.pool.clone();
            wait_until(
                "the registered guest host's first heartbeat",
                Duration::from_secs(30),
                || async {
                    let n: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM guest_hosts WHERE id = $1 AND last_heartbeat IS NOT NULL",
                    )
                    .bind(&host)
                    .fetch_one(&pool)
                    .await?;
                    Ok((n == 1).then_some(()))
                },
            )
            .await?;
        }
        wait_until("the API answers", Duration::from_secs(30), || async {
            Ok(stack
                .http
                .get(format!("{}/", stack.api_url))
                .send()
                .await
                .ok()
                .map(|_| ()))
        })
        .await?;
        Ok(stack)
    }

    pub fn start_taskmanager(&mut self) {
        let cfg = trove_taskmanager::config::TaskManagerConfig {
            store: self.store_config(),
            sweep_interval_ms: 200,
            outbox_grace_ms: 1000,
            host_heartbeat_expiry_secs: 30,
            preview_ttl_secs: self.preview_ttl_secs,
            secret_key_file: self.taskmanager_key_file(),
            database: self.db.clone(),
            amqp: self.amqp.clone(),
            retention: Default::default(),
        };
        self.spawn("taskmanager", |c| trove_taskmanager::run(cfg, c));
    }

    pub fn start_guest(&mut self) {
        let cfg = trove_guestagent::config::GuestConfig {
            host: self.host.clone(),
            address: "127.0.0.1".into(),
            data_root: self.root.join("instances"),
            store: self.store_config(),
            heartbeat_interval_ms: 300,
            secret_key_file: self.root.join("guest.key"),
            amqp: self.guest_amqp.clone(),
            ..Default::default()
        };
        self.spawn("guest", |c| trove_guestagent::run(cfg, c));
    }

    /// Registers a second guest host `host` (capacity 10, its own broker user) and starts its
    /// agent as daemon `guest-b`: its own data root `<root>/instances-b` and key; nothing is
    /// shared with the first host but the bus, the control plane and the object store. Returns
    /// once the host has sent its first heartbeat.
    pub async fn add_guest_host(&mut self, host: &str) -> Result<()> {
        let amqp = register_host(
            &self._sandbox,
            &self.root,
            host,
            &format!("guest-amqp-{host}.secret"),
        )
        .await?;
        let cfg = trove_guestagent::config::GuestConfig {
            host: host.to_owned(),
            address: "127.0.0.1".into(),
            // Short: a server's socket path must stay under 108 bytes.
            data_root: self.root.join("instances-b"),
            store: self.store_config(),
            heartbeat_interval_ms: 300,
            secret_key_file: self.root.join(format!("guest-{host}.key")),
            amqp,
            ..Default::default()
        };
        self.spawn("guest-b", |c| trove_guestagent::run(cfg, c));
        let pool = self.pool.clone();
        wait_until(
            "the second guest host's first heartbeat",
            Duration::from_secs(30),
            || async {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM guest_hosts WHERE id = $1 AND last_heartbeat IS NOT NULL",
                )
                .bind(host)
                .fetch_one(&pool)
                .await?;
                Ok((n == 1).then_some(()))
            },
        )
        .await
    }

    /// Sets a host's capacity as `trove-manage host-capacity` does.
    pub async fn set_host_capacity(&self, host: &str, capacity: i32) -> Result<()> {
        trove_taskmanager::manage::hosts::set_capacity(&self.pool, host, capacity).await
    }

    /// The guest host an instance is placed on.
    pub async fn host_of(&self, id: Uuid) -> Result<String> {
        sqlx::query_scalar("SELECT host FROM instances WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .context("reading the instance's host")
    }

    /// Runs one daemon in this process until `stop` or `shutdown` cancels it. Its error is only
    /// printed: a test notices a dead daemon by what stops happening.
    fn spawn<F, Fut>(&mut self, name: &'static str, run: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let daemon = run(cancel.clone());
        let handle = tokio::spawn(async move {
            if let Err(e) = daemon.await {
                eprintln!("trove-{name} stopped: {e:#}");
            }
        });
        self.daemons.insert(name, (cancel, handle));
    }

    /// Stops one daemon (`api`, `taskmanager` or `guest`) and waits until it is gone. Managed
    /// servers keep running, as they do when a guest agent process dies.
    pub async fn stop(&mut self, daemon: &str) -> Result<()> {
        if let Some((c, h)) = self.daemons.remove(daemon) {
            c.cancel();
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .with_context(|| format!("{daemon} did not stop within 30 s"))??;
        }
        Ok(())
    }

    /// The taskmanager's private key file (mode 0600), as `trove-manage keygen` writes one.
    pub fn taskmanager_key_file(&self) -> PathBuf {
        self.root.join(TASKMANAGER_KEY)
    }

    /// The object store every daemon of this stack uses (see `testkit::store_config`).
    pub fn store_config(&self) -> trove_common::store::StoreConfig {
        trove_common::testkit::store_config(&self.root, &self.id)
    }

    /// A taskmanager handle on this stack's database, broker and store, with the `retention`
    /// section given, for tests that run one of its passes in process (the API-only stack runs
    /// no taskmanager).
    pub async fn taskmanager_handle(
        &self,
        retention: trove_taskmanager::config::RetentionConfig,
    ) -> Result<trove_taskmanager::manager::TaskManager> {
        let config = trove_taskmanager::config::TaskManagerConfig {
            store: self.store_config(),
            secret_key_file: self.taskmanager_key_file(),
            database: self.db.clone(),
            amqp: self.amqp.clone(),
            retention,
            ..Default::default()
        };
        Ok(trove_taskmanager::manager::TaskManager {
            pool: self.pool.clone(),
            bus: trove_common::amqp::Bus::connect(&self.amqp).await?,
            secret_key: std::sync::Arc::new(SecretKey::load(&config.secret_key_file)?),
            store: trove_common::store::BlobStore::open(&config.store)?,
            config: std::sync::Arc::new(config),
        })
    }

    /// A handle on this stack's object store, to look at what the daemons wrote.
    pub fn store(&self) -> Result<trove_common::store::BlobStore> {
        trove_common::store::BlobStore::open(&self.store_config())
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.api_url));
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            if !ct.starts_with("application/json") {
                bail!("{path} answered {status} with content-type {ct}: {text}");
            }
            serde_json::from_str(&text).with_context(|| format!("{path} body: {text}"))?
        };
        Ok((status, value))
    }

    /// Sends raw bytes with a given content type (for malformed-input tests).
    pub async fn post_raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> Result<(StatusCode, Value)> {
        let resp = self
            .http
            .post(format!("{}{path}", self.api_url))
            .header("X-Auth-Token", token)
            .header("Content-Type", content_type)
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).with_context(|| format!("body: {text}"))?,
        ))
    }

    /// A request of tenant A, with its token, to `path` below the tenant's root.
    pub async fn call_a(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let path = format!("/v1.0/{TENANT_A}{path}");
        self.call(method, &path, Some(TOKEN_A), body).await
    }

    pub async fn get_a(&self, path: &str) -> Result<(StatusCode, Value)> {
        self.call_a(Method::GET, path, None).await
    }

    pub async fn post_a(&self, path: &str, body: Value) -> Result<(StatusCode, Value)> {
        self.call_a(Method::POST, path, Some(body)).await
    }

    /// Posts `{"recovery": recovery}` to tenant A's `instance`.
    pub async fn recover(&self, instance: Uuid, recovery: Value) -> Result<(StatusCode, Value)> {
        let path = format!("/instances/{instance}/recover");
        self.post_a(&path, json!({ "recovery": recovery })).await
    }

    /// As `recover`, asserting the 202; returns its body.
    pub async fn recover_accepted(&self, instance: Uuid, recovery: Value) -> Result<Value> {
        let (status, body) = self.recover(instance, recovery).await?;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        Ok(body)
    }

    /// Creates an instance for tenant A with database `appdb` and user `app`/`app-secret-1`.
    pub async fn create_instance(&self, name: &str, restore_from: Option<Uuid>) -> Result<Uuid> {
        let mut body = json!({"instance": {
            "name": name,
            "flavorRef": "1",
            "volume": {"size": 1},
            "datastore": {"type": "postgresql", "version": "15"},
        }});
        match restore_from {
            Some(b) => body["instance"]["restorePoint"] = json!({"backupRef": b}),
            None => {
                body["instance"]["databases"] = json!([{"name": "appdb"}]);
                body["instance"]["users"] = json!([{"name": "app", "password": "app-secret-1", "databases": [{"name": "appdb"}]}]);
            }
        }
        let (status, v) = self.post_a("/instances", body).await?;
        if status != StatusCode::OK {
            bail!("create answered {status}: {v}");
        }
        Ok(Uuid::parse_str(
            v["instance"]["id"].as_str().context("no id")?,
        )?)
    }

    pub async fn instance(&self, id: Uuid) -> Result<Value> {
        let (status, v) = self.get_a(&format!("/instances/{id}")).await?;
        if status != StatusCode::OK {
            bail!("show answered {status}: {v}");
        }
        Ok(v["instance"].clone())
    }

    /// Waits until the instance shows `status`/`operating_status`; fails early on ERROR.
    pub async fn wait_status(
        &self,
        id: Uuid,
        status: &str,
        operating: &str,
        timeout: Duration,
    ) -> Result<Value> {
        wait_until(
            &format!("instance {id} to be {status}/{operating}"),
            timeout,
            || async {
                let v = self.instance(id).await?;
                if v["status"] == status && v["operating_status"] == operating {
                    return Ok(Some(v));
                }
                if v["status"] == "ERROR" && status != "ERROR" {
                    bail!("instance went to ERROR: {v}");
                }
                Ok(None)
            },
        )
        .await
    }

    pub async fn wait_active(&self, id: Uuid) -> Result<Value> {
        self.wait_status(id, "ACTIVE", "HEALTHY", Duration::from_secs(90))
            .await
    }

    /// Creates an instance for tenant A (see `create_instance`) and waits until it is ACTIVE;
    /// returns its id and how it showed then.
    pub async fn active_instance(&self, name: &str) -> Result<(Uuid, Value)> {
        let id = self.create_instance(name, None).await?;
        Ok((id, self.wait_active(id).await?))
    }

    /// As `active_instance`, then runs `sql` in it as the tenant; also returns that connection.
    pub async fn seeded_instance(
        &self,
        name: &str,
        sql: &str,
    ) -> Result<(Uuid, Value, PgConnection)> {
        let (id, shown) = self.active_instance(name).await?;
        let mut conn = self.connect_instance(id).await?;
        sqlx::raw_sql(sql).execute(&mut conn).await?;
        Ok((id, shown, conn))
    }

    /// A seeded instance with a completed backup, after which `after` runs: what `after` writes
    /// is what the backup must not hold. Returns the instance's id and the backup.
    pub async fn backed_up_instance(
        &self,
        name: &str,
        before: &str,
        backup: &str,
        after: &str,
    ) -> Result<(Uuid, Value)> {
        let (id, _, mut conn) = self.seeded_instance(name, before).await?;
        let backup = self.backup(id, backup).await?;
        sqlx::raw_sql(after).execute(&mut conn).await?;
        Ok((id, backup))
    }

    pub async fn backup(&self, instance: Uuid, name: &str) -> Result<Value> {
        let (status, v) = self
            .post_a(
                "/backups",
                json!({"backup": {"name": name, "instance": instance, "incremental": 0}}),
            )
            .await?;
        if status != StatusCode::ACCEPTED {
            bail!("backup answered {status}: {v}");
        }
        let id = v["backup"]["id"]
            .as_str()
            .context("no backup id")?
            .to_string();
        wait_until(
            &format!("backup {id} to complete"),
            Duration::from_secs(90),
            || async {
                let (_, b) = self.get_a(&format!("/backups/{id}")).await?;
                match b["backup"]["status"].as_str() {
                    Some("COMPLETED") => Ok(Some(b["backup"].clone())),
                    Some("FAILED") => bail!("backup failed: {b}"),
                    _ => Ok(None),
                }
            },
        )
        .await
    }

    /// Connects to a managed instance over TCP, as a tenant would, using its `addresses`.
    pub async fn connect_instance(&self, id: Uuid) -> Result<PgConnection> {
        self.connect_instance_as(id, "app", "app-secret-1", "appdb")
            .await
    }

    /// As `connect_instance`, logging in as `user` with `password` to `database`.
    pub async fn connect_instance_as(
        &self,
        id: Uuid,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<PgConnection> {
        let v = self.instance(id).await?;
        let addr = &v["addresses"][0];
        let host = addr["address"].as_str().context("no address")?;
        let port = addr["port"].as_u64().context("no port")? as u16;
        let opts = PgConnectOptions::new()
            .host(host)
            .port(port)
            .username(user)
            .password(password)
            .database(database);
        Ok(PgConnection::connect_with(&opts).await?)
    }

    /// Whether `user` can log in to `database` over TCP and create a table there: what a grant
    /// of access must allow and a revoke take away.
    pub async fn can_use(&self, id: Uuid, user: &str, password: &str, database: &str) -> bool {
        match self.connect_instance_as(id, user, password, database).await {
            Ok(mut conn) => {
                let table = format!("t_{}", Uuid::new_v4().simple());
                sqlx::raw_sql(&format!("CREATE TABLE {table} (id int)"))
                    .execute(&mut conn)
                    .await
                    .is_ok()
            }
            Err(_) => false,
        }
    }

    /// A superuser connection to `database` of a managed instance over its unix socket, as the
    /// guest agent connects (the test runs as root, which may enter the socket directory).
    pub async fn connect_superuser(&self, id: Uuid, database: &str) -> Result<PgConnection> {
        let v = self.instance(id).await?;
        let port = v["addresses"][0]["port"].as_u64().context("no port")? as u16;
        let opts = PgConnectOptions::new()
            .socket(self.instance_dir(id).join("run"))
            .port(port)
            .username("postgres")
            .database(database);
        Ok(PgConnection::connect_with(&opts).await?)
    }

    /// Tenant A's `configuration attach`: `PUT /instances/{id}` with the group's id.
    pub async fn attach_configuration(&self, id: Uuid, group: &str) -> Result<(StatusCode, Value)> {
        self.call_a(
            Method::PUT,
            &format!("/instances/{id}"),
            Some(json!({"instance": {"configuration": group}})),
        )
        .await
    }

    /// `SHOW name` inside the managed server, over the agent's socket, on a fresh session (so a
    /// reload is seen).
    pub async fn setting(&self, id: Uuid, name: &str) -> Result<String> {
        let mut conn = self.connect_superuser(id, "postgres").await?;
        Ok(sqlx::query_scalar(&format!("SHOW {name}"))
            .fetch_one(&mut conn)
            .await?)
    }

    /// Waits (up to two minutes) until the server shows `want` for `name`.
    pub async fn wait_setting(&self, id: Uuid, name: &str, want: &str) -> Result<()> {
        wait_until(
            &format!("{name} = {want}"),
            Duration::from_secs(120),
            || async { Ok((self.setting(id, name).await? == want).then_some(())) },
        )
        .await
    }

    /// The instance's rows, as the control database holds them, for nothing-changed checks.
    pub async fn snapshot(&self, id: Uuid) -> Result<Value> {
        let row: (i32, String, chrono::DateTime<chrono::Utc>, i64, i64, i64) = sqlx::query_as(
            "SELECT i.task_id, i.name, i.updated, \
             (SELECT count(*) FROM recoveries r WHERE r.instance_id = i.id), \
             (SELECT count(*) FROM backups b WHERE b.instance_id = i.id), \
             (SELECT count(*) FROM outbox) FROM instances i WHERE i.id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(
            json!({"task": row.0, "name": row.1, "updated": row.2, "recoveries": row.3, "backups": row.4, "outbox": row.5}),
        )
    }

    /// `count(*)` of `from`: a table, optionally with a `WHERE` clause.
    pub async fn count(&self, from: &str) -> Result<i64> {
        let sql = format!("SELECT count(*) FROM {from}");
        Ok(sqlx::query_scalar(&sql).fetch_one(&self.pool).await?)
    }

    /// The state of a recovery as the control database holds it.
    pub async fn recovery_state(&self, recovery_id: &str) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT state FROM recoveries WHERE id = $1::uuid")
                .bind(recovery_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The end of a test that ran tasks: asserts nothing is left pending, then shuts down.
    pub async fn finish(self) -> Result<()> {
        self.assert_quiescent().await?;
        self.shutdown().await;
        Ok(())
    }

    /// At the end of a test: nothing is left pending in the control plane.
    pub async fn assert_quiescent(&self) -> Result<()> {
        wait_until(
            "the control plane to go quiet",
            Duration::from_secs(30),
            || async {
                let (outbox, recoveries, tasks): (i64, i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM outbox), \
                 (SELECT count(*) FROM recoveries WHERE state IN ('NEW', 'RUNNING')), \
                 (SELECT count(*) FROM instances WHERE NOT deleted AND task_id <> 1)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok((outbox == 0 && recoveries == 0 && tasks == 0).then_some(()))
            },
        )
        .await
    }

    /// What the daemons logged so far, for a stack started with
    /// [`Stack::start_capturing_logs`].
    pub fn daemon_log(&self) -> Result<String> {
        let path = self.root.join(DAEMON_LOG);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    pub fn instance_dir(&self, id: Uuid) -> PathBuf {
        self.root.join("instances").join(id.to_string())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub async fn shutdown(mut self) {
        for (_, (c, _)) in self.daemons.iter() {
            c.cancel();
        }
        for (_, (_, h)) in self.daemons.drain() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
        self.pool.close().await;
        let _ = &self.cleanup;
    }
}

/// Registers `host` with capacity 10 as `trove-manage host-add` does (its own broker user, with
/// its password written to the 0600 file `<root>/<secret>`); returns the guest's broker
/// connection settings.
async fn register_host(
    sandbox: &Sandbox,
    root: &Path,
    host: &str,
    secret: &str,
) -> Result<AmqpConfig> {
    use trove_taskmanager::manage::{broker_admin::BrokerAdmin, hosts};
    let broker = BrokerAdmin {
        rabbitmqctl: "rabbitmqctl".into(),
        vhost: sandbox.vhost().to_string(),
        exchange: sandbox.amqp.exchange.clone(),
    };
    let creds = hosts::add_host(&sandbox.pool, &broker, host, 10).await?;
    sandbox.delete_user_at_end(&creds.user);
    let password_file = root.join(secret);
    hosts::write_password_file(&password_file, &creds)?;
    sandbox.amqp.for_user(&creds.user, password_file)
}

/// Polls `probe` every 100 ms until it yields a value or `timeout` passes.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_err {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Ids from the `t` table, sorted.
pub async fn ids(conn: &mut PgConnection, table: &str) -> Result<Vec<i32>> {
    Ok(
        sqlx::query_scalar(&format!("SELECT id FROM {table} ORDER BY id"))
            .fetch_all(conn)
            .await?,
    )
}

/// One committed row: its id, the server's insert time, and when the commit returned.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    pub id: i32,
    pub ts: chrono::DateTime<chrono::Utc>,
    pub committed: chrono::DateTime<chrono::Utc>,
}

/// A tenant's steady writer: one timestamped row per tick into `ticks(id serial, ts timestamptz
/// default clock_timestamp())`, committed one by one, remembering what committed.
pub struct Writer {
    stop: CancellationToken,
    handle: JoinHandle<Result<Vec<Tick>>>,
}

impl Writer {
    pub async fn start(mut conn: PgConnection, every: Duration) -> Result<Writer> {
        sqlx::query("CREATE TABLE IF NOT EXISTS ticks (id serial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())")
            .execute(&mut conn)
            .await?;
        let stop = CancellationToken::new();
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let mut done = Vec::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = s.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let row: (i32, chrono::DateTime<chrono::Utc>) =
                    sqlx::query_as("INSERT INTO ticks DEFAULT VALUES RETURNING id, ts")
                        .fetch_one(&mut conn)
                        .await?;
                // Autocommit: the commit is durable when the statement returns.
                done.push(Tick {
                    id: row.0,
                    ts: row.1,
                    committed: chrono::Utc::now(),
                });
            }
            Ok(done)
        });
        Ok(Writer { stop, handle })
    }

    /// Stops writing; returns every committed row in commit order.
    pub async fn stop(self) -> Result<Vec<Tick>> {
        self.stop.cancel();
        self.handle.await?
    }
}

/// A target strictly between two consecutive commits, the first one after `after`: after row
/// k's commit returned, before row k+1 was inserted. Returns the target and k.
/// The ids of `rows` up to and including `last_kept`.
pub fn tick_ids_upto(rows: &[Tick], last_kept: i32) -> Vec<i32> {
    rows.iter()
        .map(|r| r.id)
        .filter(|id| *id <= last_kept)
        .collect()
}

pub fn target_between(
    rows: &[Tick],
    after: chrono::DateTime<chrono::Utc>,
) -> Option<(chrono::DateTime<chrono::Utc>, i32)> {
    rows.windows(2)
        .find(|w| w[0].ts > after && w[1].ts > w[0].committed)
        .map(|w| (w[0].committed + (w[1].ts - w[0].committed) / 2, w[0].id))
}

impl Stack {
    /// A `Writer` on a new tenant connection to `id`, one row every 50 ms.
    pub async fn start_writer(&self, id: Uuid) -> Result<Writer> {
        Writer::start(self.connect_instance(id).await?, Duration::from_millis(50)).await
    }

    /// Lets `writer` run until the store holds WAL from `lead` after now, then stops it. Returns
    /// that "now" and every committed row.
    pub async fn keep_writing(
        &self,
        id: Uuid,
        writer: Writer,
        lead: chrono::Duration,
    ) -> Result<(chrono::DateTime<chrono::Utc>, Vec<Tick>)> {
        let since = chrono::Utc::now();
        self.wait_window_past(id, since + lead).await?;
        Ok((since, writer.stop().await?))
    }

    /// Waits until the instance's recoverable window reaches past `t`.
    pub async fn wait_window_past(
        &self,
        id: Uuid,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Result<Value> {
        wait_until(
            &format!("the recoverable window of {id} to pass {t}"),
            Duration::from_secs(60),
            || async {
                let w = self.instance(id).await?["recovery_window"].clone();
                Ok(time_of(&w["latest"]).filter(|l| *l > t).map(|_| w))
            },
        )
        .await
    }
}

pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A JSON timestamp (RFC 3339) as a time; `None` when absent or not one.
pub fn time_of(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok()?;
    Some(t.with_timezone(&chrono::Utc))
}

/// The ids of `rows`, in commit order.
pub fn tick_ids(rows: &[Tick]) -> Vec<i32> {
    rows.iter().map(|r| r.id).collect()
}

/// A stack with an ACTIVE instance `name` that has a backup named `base` (returned, as the API
/// shows it) and a table `marks` with ids 1 to 10, committed after the backup.
pub async fn marked_after_a_backup(name: &str) -> Result<(Stack, Uuid, Value, PgConnection)> {
    let stack = Stack::start(ALL).await?;
    let (id, _) = stack.active_instance(name).await?;
    let backup = stack.backup(id, "base").await?;
    let mut conn = stack.connect_instance(id).await?;
    sqlx::raw_sql(
        "CREATE TABLE marks (id int PRIMARY KEY); INSERT INTO marks SELECT generate_series(1, 10)",
    )
    .execute(&mut conn)
    .await?;
    Ok((stack, id, backup, conn))
}

/// Commits row `mark` into `marks`, then waits until the store holds WAL past that commit, so a
/// target before it lies inside the recoverable window.
pub async fn commit_mark_and_wait_for_the_store(
    stack: &Stack,
    id: Uuid,
    conn: &mut PgConnection,
    mark: i32,
) -> Result<()> {
    let before: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO marks VALUES ($1)")
        .bind(mark)
        .execute(&mut *conn)
        .await?;
    stack.wait_window_past(id, before).await?;
    Ok(())
}
