//! Test scaffolding shared by the integration and end-to-end tests (cargo feature `testkit`): a
//! control database and a RabbitMQ vhost of their own per test, on the local services, removed
//! when the test ends, even by a panic.

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

use crate::config::{AmqpConfig, DatabaseConfig};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A migrated control database and an empty vhost, named `<prefix>_<id>` / `<prefix>-<id>`.
pub struct Sandbox {
    /// Short, unique: also used to name the test's other resources.
    pub id: String,
    pub database: DatabaseConfig,
    pub amqp: AmqpConfig,
    pub pool: PgPool,
    cleanup: Cleanup,
}

/// Synchronous teardown, so it also runs when a test panics.
struct Cleanup {
    db_name: String,
    vhost: String,
    /// Broker users a test created (users are global to the broker, not to the vhost).
    users: std::sync::Mutex<Vec<String>>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let users = match self.users.lock() {
            Ok(u) => u.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for user in users {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_user", &user])
                .output();
        }
        let _ = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.db_name
            ))
            .output();
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.vhost])
            .output();
    }
}

/// Runs a command, failing with its stderr.
pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Sandbox {
    /// Creates the database (with the schema applied) and the vhost (open to `guest`).
    pub async fn create(prefix: &str) -> Result<Sandbox> {
        let id = Uuid::new_v4().simple().to_string()[..12].to_string();
        let cleanup = Cleanup {
            db_name: format!("{prefix}_{id}"),
            vhost: format!("{}-{id}", prefix.replace('_', "-")),
            users: std::sync::Mutex::new(Vec::new()),
        };
        let mut admin = PgConnection::connect(ADMIN_URL).await?;
        sqlx::query(&format!("CREATE DATABASE \"{}\"", cleanup.db_name))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let database = DatabaseConfig {
            url: format!("postgres://postgres@127.0.0.1:5432/{}", cleanup.db_name),
            max_connections: 5,
            acquire_timeout_secs: 10,
        };
        let pool = crate::db::connect(&database).await?;
        crate::schema::sync(&pool).await?;

        run(Command::new("rabbitmqctl").args(["add_vhost", &cleanup.vhost]))?;
        run(Command::new("rabbitmqctl").args([
            "set_permissions",
            "-p",
            &cleanup.vhost,
            "guest",
            ".*",
            ".*",
            ".*",
        ]))?;
        let amqp = AmqpConfig {
            url: format!("amqp://guest:guest@127.0.0.1:5672/{}", cleanup.vhost),
            connect_timeout_secs: 10,
            ..AmqpConfig::default()
        };
        Ok(Sandbox {
            id,
            database,
            amqp,
            pool,
            cleanup,
        })
    }

    /// The vhost's name.
    pub fn vhost(&self) -> &str {
        &self.cleanup.vhost
    }

    /// Deletes the broker user `user` when the sandbox goes (a test that creates users names them
    /// after the sandbox id, so parallel tests never share one).
    pub fn delete_user_at_end(&self, user: &str) {
        match self.cleanup.users.lock() {
            Ok(mut u) => u.push(user.to_string()),
            Err(poisoned) => poisoned.into_inner().push(user.to_string()),
        }
    }
}

/// Inserts an instance as the API would have written it (database `db1` of `tenant-a`, flavor
/// `1`, timeline 1), placed on `host` when given, in `task`, with its service in `status`.
pub async fn insert_instance(
    pool: &PgPool,
    host: Option<&str>,
    task: crate::status::InstanceTask,
    status: crate::status::ServiceStatus,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO instances (id, name, tenant_id, flavor_id, datastore_version_id, \
         volume_size, task_id, task_description, task_start_time, host, timeline) \
         VALUES ($1, 'db1', 'tenant-a', '1', (SELECT id FROM datastore_versions LIMIT 1), \
         1, $2, $3, now(), $4, 1)",
    )
    .bind(id)
    .bind(task.code())
    .bind(task.description())
    .bind(host)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO service_statuses (id, instance_id, status_id, status_description) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(Uuid::new_v4())
    .bind(id)
    .bind(status.code())
    .bind(status.description())
    .execute(pool)
    .await?;
    Ok(id)
}

/// The object store a test uses: the S3 endpoint `scripts/test.sh` starts (OpenStack Swift with
/// `s3api` on loopback, named by `TROVE_TEST_S3_*`) under a prefix of its own, so tests share one
/// bucket without seeing each other; without that endpoint, a local directory under `dir`.
pub fn store_config(dir: &std::path::Path, id: &str) -> crate::store::StoreConfig {
    use crate::store::{StoreBackend, StoreConfig};
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match var("TROVE_TEST_S3_ENDPOINT") {
        Some(endpoint) => StoreConfig {
            backend: StoreBackend::S3,
            endpoint,
            bucket: var("TROVE_TEST_S3_BUCKET").unwrap_or_else(|| "trove-test".into()),
            region: var("TROVE_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            access_key_id: var("TROVE_TEST_S3_ACCESS_KEY_ID").unwrap_or_default(),
            secret_access_key_file: var("TROVE_TEST_S3_SECRET_ACCESS_KEY").map(|secret| {
                let file = dir.join("s3-secret");
                let _ = std::fs::create_dir_all(dir);
                // The store reads its secret from a file, as an operator's config would. Each
                // daemon of a stack asks for the config while others already read the file:
                // write it whole under another name and rename it into place, never truncate.
                let tmp = dir.join(format!("s3-secret.{}", Uuid::new_v4().simple()));
                let written =
                    std::fs::write(&tmp, &secret).and_then(|()| std::fs::rename(&tmp, &file));
                if let Err(e) = written {
                    eprintln!("cannot write {}: {e}", file.display());
                }
                file
            }),
            prefix: format!("t-{id}"),
            ..StoreConfig::default()
        },
        None => StoreConfig {
            path: dir.join("store"),
            ..StoreConfig::default()
        },
    }
}

/// Whether tests run against a real S3 endpoint (see [`store_config`]).
pub fn s3_endpoint_configured() -> bool {
    std::env::var("TROVE_TEST_S3_ENDPOINT").is_ok_and(|v| !v.is_empty())
}

/// Empties a test's store prefix (see [`store_config`]) from synchronous code such as a `Drop`,
/// on a runtime of its own, so an S3 bucket shared by many test runs does not grow forever.
/// Errors are printed, not raised: cleanup must not fail a test.
pub fn clear_store_blocking(config: crate::store::StoreConfig) {
    let cleared = std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            crate::store::BlobStore::open(&config)?.clear().await?;
            anyhow::Ok(())
        })
    })
    .join();
    match cleared {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("could not empty the test's store prefix: {e:#}"),
        Err(_) => eprintln!("emptying the test's store prefix panicked"),
    }
}
