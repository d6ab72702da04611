//! One managed PostgreSQL cluster: create, configure, start, stop, connect, and create databases and users.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::PgBinaries;
use super::config;
use super::os_user::ensure_dir;
use super::runner::{Runner, run_checked};
use super::scram;
use super::spec::ClusterSpec;
use super::sql::{quote_ident, quote_literal};

/// Seconds `pg_ctl` waits for start or stop. Start includes crash recovery after an unclean stop,
/// which can take a while on a busy instance.
const PG_CTL_TIMEOUT_SECS: &str = "120";
/// Bound on one health probe; a server that takes longer to answer `SELECT 1` is not healthy.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The superuser the agent administers the cluster as, over the trusted unix socket.
pub(super) const SUPERUSER: &str = "postgres";
/// Session settings before a statement that carries a password verifier: no statement text in
/// the server log, neither as a logged statement, nor beside an error, nor as a slow one.
pub(super) const KEEP_STATEMENTS_OUT_OF_THE_LOG: &str = "SET log_statement = 'none'; \
     SET log_min_error_statement = 'panic'; SET log_min_duration_statement = -1; \
     SET log_min_duration_sample = -1; SET log_transaction_sample_rate = 0";

/// A managed cluster: where it lives, which binaries run it, and as whom.
#[derive(Debug, Clone)]
pub struct Cluster {
    spec: ClusterSpec,
    bins: PgBinaries,
    runner: Runner,
}

impl Cluster {
    pub fn new(spec: ClusterSpec, bins: PgBinaries, runner: Runner) -> Cluster {
        Cluster { spec, bins, runner }
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    pub fn bins(&self) -> &PgBinaries {
        &self.bins
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The same binaries and runner for another spec (used for the staging copy of a recovery).
    pub fn with_spec(&self, spec: ClusterSpec) -> Cluster {
        Cluster {
            spec,
            bins: self.bins.clone(),
            runner: self.runner.clone(),
        }
    }

    /// Creates the socket directory and the log directory, owned by the cluster's OS user.
    /// The socket directory is 0700 because local connections are trusted: whoever reaches the
    /// socket is superuser.
    pub async fn prepare_aux_dirs(&self) -> Result<()> {
        let owner = self.runner.owner();
        ensure_dir(&self.spec.socket_dir, 0o700, owner).await?;
        if let Some(log_dir) = self.spec.log_file.parent() {
            ensure_dir(log_dir, 0o700, owner).await?;
        }
        Ok(())
    }

    /// Creates the directories and runs `initdb`, then writes the managed configuration.
    /// Idempotent: an existing cluster is only reconfigured, so a redelivered request is harmless.
    pub async fn init(&self) -> Result<()> {
        let data_dir = &self.spec.data_dir;
        self.prepare_aux_dirs().await?;
        ensure_dir(data_dir, 0o700, self.runner.owner()).await?;
        let initialized = tokio::fs::try_exists(data_dir.join("PG_VERSION"))
            .await
            .with_context(|| format!("checking {}", data_dir.display()))?;
        if !initialized {
            let mut cmd = self.runner.command(self.bins.path("initdb"));
            cmd.arg("-D")
                .arg(data_dir)
                .args([
                    "-U",
                    SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                ])
                // Pinned so the cluster does not depend on the agent's environment; C.UTF-8 sorts by
                // code point on every glibc and needs no locale package.
                .args(["--locale=C.UTF-8", "--no-instructions"]);
            run_checked(&mut cmd, "initdb").await?;
        }
        self.write_managed_config().await
    }

    /// (Re)writes `trove.conf` and `pg_hba.conf`; see [`config`].
    pub async fn write_managed_config(&self) -> Result<()> {
        config::write_managed_config(&self.spec, self.runner.owner())
            .await
            .with_context(|| {
                format!(
                    "writing managed configuration into {}",
                    self.spec.data_dir.display()
                )
            })
    }

    /// Starts the server with its configured port and addresses. Ok if it already runs.
    pub async fn start(&self) -> Result<()> {
        self.pg_ctl_start(None).await
    }

    /// Starts the server on `port` with TCP disabled (`listen_addresses=''`), so that only the agent
    /// can reach it through the unix socket: used for staged copies that tenants must not see yet.
    pub async fn start_private(&self, port: u16) -> Result<()> {
        self.pg_ctl_start(Some(port)).await
    }

    async fn pg_ctl_start(&self, private_port: Option<u16>) -> Result<()> {
        if self.is_running().await {
            return Ok(());
        }
        let mut cmd = self.runner.command(self.bins.path("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.spec.data_dir)
            .arg("-l")
            .arg(&self.spec.log_file)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
        if let Some(port) = private_port {
            // pg_ctl passes -o through /bin/sh, so the quotes yield an empty value; port is a number.
            cmd.arg("-o")
                .arg(format!("-p {port} -c listen_addresses=''"));
        }
        cmd.arg("start");
        if let Err(err) = run_checked(&mut cmd, "pg_ctl start").await {
            let tail = self.log_tail().await;
            return Err(err.context(format!(
                "starting postgresql in {} (server log tail: {tail})",
                self.spec.data_dir.display()
            )));
        }
        Ok(())
    }

    /// Fast shutdown (rolls back open transactions, then a shutdown checkpoint). Ok if not running.
    pub async fn stop(&self) -> Result<()> {
        self.pg_ctl_stop("fast").await
    }

    /// Stops the server without a shutdown checkpoint; the next start does crash recovery.
    pub async fn stop_immediate(&self) -> Result<()> {
        self.pg_ctl_stop("immediate").await
    }

    async fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        if !self.is_running().await {
            return Ok(());
        }
        let mut cmd = self.runner.command(self.bins.path("pg_ctl"));
        cmd.arg("-D").arg(&self.spec.data_dir).args([
            "-m",
            mode,
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
            "stop",
        ]);
        run_checked(&mut cmd, &format!("pg_ctl stop -m {mode}"))
            .await
            .with_context(|| format!("stopping postgresql in {}", self.spec.data_dir.display()))?;
        Ok(())
    }

    /// Whether a postmaster runs on this data directory (`pg_ctl status` exits 0).
    pub async fn is_running(&self) -> bool {
        let mut cmd = self.runner.command(self.bins.path("pg_ctl"));
        cmd.arg("-D").arg(&self.spec.data_dir).arg("status");
        match run_checked(&mut cmd, "pg_ctl status").await {
            Ok(_) => true,
            Err(err) => {
                tracing::trace!(error = %format!("{err:#}"), "pg_ctl status reports not running");
                false
            }
        }
    }

    /// A superuser connection to database `postgres` over the unix socket.
    pub async fn connect(&self) -> Result<PgConnection> {
        self.connect_to("postgres").await
    }

    /// A superuser connection to `database` over the unix socket.
    pub async fn connect_to(&self, database: &str) -> Result<PgConnection> {
        let options = PgConnectOptions::new()
            .socket(&self.spec.socket_dir)
            .port(self.spec.port)
            .username(SUPERUSER)
            .database(database)
            .application_name("trove-guestagent")
            .ssl_mode(PgSslMode::Disable)
            // Statements here can carry passwords (CREATE ROLE ... PASSWORD); never log them.
            .disable_statement_logging();
        PgConnection::connect_with(&options).await.with_context(|| {
            format!(
                "connecting to database {database:?} via {} port {}",
                self.spec.socket_dir.display(),
                self.spec.port
            )
        })
    }

    /// Connects and runs `SELECT 1`, bounded by a short timeout.
    pub async fn is_healthy(&self) -> bool {
        let probe = async {
            let mut conn = self.connect().await?;
            let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
            let _ = conn.close().await;
            anyhow::ensure!(one == 1, "SELECT 1 returned {one}");
            anyhow::Ok(())
        };
        matches!(
            tokio::time::timeout(HEALTH_PROBE_TIMEOUT, probe).await,
            Ok(Ok(()))
        )
    }

    /// Polls [`Self::is_healthy`] until it holds or `deadline` passes.
    pub async fn wait_healthy(&self, deadline: Duration) -> Result<()> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if self.is_healthy().await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                bail!(
                    "postgresql in {} not healthy within {deadline:?}",
                    self.spec.data_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates database `name` unless it exists, closed to `PUBLIC`: only users granted access
    /// (and the administrator) may connect, as with databases made later through the API.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        let quoted = quote_ident(name)?;
        let mut conn = self.connect().await?;
        if !catalog_has(&mut conn, "pg_database", "datname", name).await? {
            // Two statements: CREATE DATABASE cannot run in the implicit transaction of one.
            run_sql(&mut conn, &format!("CREATE DATABASE {quoted}"))
                .await
                .with_context(|| format!("creating database {name:?}"))?;
            run_sql(
                &mut conn,
                &format!("REVOKE CONNECT, TEMPORARY ON DATABASE {quoted} FROM PUBLIC"),
            )
            .await
            .with_context(|| format!("closing database {name:?} to PUBLIC"))?;
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// Creates login role `name` (or resets its password if it exists) and makes it owner of each of
    /// `databases`, which must exist. Ownership is what lets the user create tables: PostgreSQL 15
    /// no longer grants CREATE on schema `public` to everyone, but the owner of the database owns
    /// `public` through `pg_database_owner`. The explicit grants keep working if ownership changes.
    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
        databases: &[String],
    ) -> Result<()> {
        let user = quote_ident(name)?;
        // Only the verifier travels: the server never sees the password.
        let secret = quote_literal(&scram::verifier(password))?;
        let mut conn = self.connect().await?;
        // quote_literal relies on this; it is the default, but a tenant could change it with ALTER SYSTEM.
        run_sql(&mut conn, "SET standard_conforming_strings = on").await?;
        // trove.conf already keeps statement text out of the server log; this session does so
        // whatever the server's settings say, also when the statement below fails.
        run_sql(&mut conn, KEEP_STATEMENTS_OUT_OF_THE_LOG).await?;
        let exists = catalog_has(&mut conn, "pg_roles", "rolname", name).await?;
        let verb = if exists { "ALTER" } else { "CREATE" };
        run_sql(
            &mut conn,
            &format!("{verb} ROLE {user} WITH LOGIN PASSWORD {secret}"),
        )
        .await
        .with_context(|| format!("{} role {name:?}", verb.to_lowercase()))?;
        for database in databases {
            let db = quote_ident(database)?;
            run_sql(
                &mut conn,
                &format!(
                    "GRANT ALL ON DATABASE {db} TO {user}; ALTER DATABASE {db} OWNER TO {user}"
                ),
            )
            .await
            .with_context(|| format!("granting database {database:?} to {name:?}"))?;
            // Schema privileges live inside each database, so they need a connection to it.
            let mut db_conn = self.connect_to(database).await?;
            run_sql(
                &mut db_conn,
                &format!("GRANT ALL ON SCHEMA public TO {user}"),
            )
            .await
            .with_context(|| format!("granting schema public of {database:?} to {name:?}"))?;
            let _ = db_conn.close().await;
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// The last few KiB of the server log, for error messages. Best effort.
    pub async fn log_tail(&self) -> String {
        const TAIL_BYTES: u64 = 2048;
        let read = async {
            let mut file = tokio::fs::File::open(&self.spec.log_file).await?;
            let len = file.metadata().await?.len();
            file.seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
                .await?;
            let mut buf = Vec::new();
            file.read_to_end(&mut buf).await?;
            std::io::Result::Ok(String::from_utf8_lossy(&buf).trim().to_owned())
        };
        read.await
            .unwrap_or_else(|err| format!("<unreadable: {err}>"))
    }
}

/// Runs one or more statements with the simple query protocol. A plain function with concrete
/// lifetimes: sqlx's generic executor bounds otherwise make the callers' futures fail the
/// compiler's `Send` check.
/// Whether the catalog `table` has a row whose `column` is `name`.
pub(super) async fn catalog_has(
    conn: &mut PgConnection,
    table: &'static str,
    column: &'static str,
    name: &str,
) -> Result<bool> {
    sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE {column} = $1)"
    ))
    .bind(name)
    .fetch_one(conn)
    .await
    .with_context(|| format!("looking up {name:?} in {table}"))
}

pub(super) async fn run_sql(conn: &mut PgConnection, sql: &str) -> sqlx::Result<()> {
    use sqlx::Executor as _;
    let sql = sql.to_owned();
    conn.execute(sql.as_str()).await?;
    Ok(())
}
