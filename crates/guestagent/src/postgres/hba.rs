//! Network access of a running server: rewrite its client authentication rules, reload them
//! without a restart, prove the postmaster uses them, and end sessions they no longer admit.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use trove_common::access::{self, Access, Cidr};

use super::cluster::Cluster;
use super::config::write_hba;

/// How long the postmaster may take to act on the reload signal.
const RELOAD_DEADLINE: Duration = Duration::from_secs(30);
const RELOAD_POLL: Duration = Duration::from_millis(20);

/// What an access change did on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessApplied {
    /// The networks admitted over TCP now.
    pub admitted: Vec<Cidr>,
    /// TCP sessions ended because their address is no longer admitted.
    pub sessions_ended: i64,
}

impl Cluster {
    /// Writes the rules for `access` (None: an instance created without `access`) into the
    /// instance's `hba_file`, for the next start.
    pub async fn write_access(&self, access: Option<&Access>) -> Result<Vec<Cidr>> {
        let admitted = access::admitted(access);
        write_hba(&self.spec().hba_file, &admitted, self.runner().owner()).await?;
        Ok(admitted)
    }

    /// Makes `access` the server's network access. The rules are written first; a running server
    /// reloads them (no restart: sessions and their transactions go on) and is waited for until
    /// its postmaster has read them, so a client connecting after this returns meets the new
    /// rules. Then TCP sessions from addresses no longer admitted are terminated: a revoked
    /// network keeps no open door.
    pub async fn apply_access(&self, access: Option<&Access>) -> Result<AccessApplied> {
        let admitted = self.write_access(access).await?;
        if !self.is_running().await {
            return Ok(AccessApplied {
                admitted,
                sessions_ended: 0,
            });
        }
        let mut conn = self.connect().await?;
        // A server started before the rules moved out of the data directory still reads its own
        // file; give it the same rules until its next start picks up `hba_file` from trove.conf.
        let in_use: String = sqlx::query_scalar("SELECT current_setting('hba_file')")
            .fetch_one(&mut conn)
            .await
            .context("reading hba_file")?;
        if std::path::Path::new(&in_use) != self.spec().hba_file {
            write_hba(
                std::path::Path::new(&in_use),
                &admitted,
                self.runner().owner(),
            )
            .await?;
        }
        // The view parses the file on disk as a reload would; a rule it cannot read would make
        // the postmaster keep the old rules, which must not pass for success.
        let broken: Vec<(Option<i32>, Option<String>)> = sqlx::query_as(
            "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL",
        )
        .fetch_all(&mut conn)
        .await
        .context("checking the new client authentication rules")?;
        if let Some((line, error)) = broken.first() {
            bail!(
                "the new client authentication rules do not parse (line {}: {})",
                line.unwrap_or_default(),
                error.as_deref().unwrap_or("unknown error")
            );
        }
        let before = conf_load_time(&mut conn).await?;
        let signalled: bool = sqlx::query_scalar("SELECT pg_reload_conf()")
            .fetch_one(&mut conn)
            .await
            .context("asking the server to reload its configuration")?;
        let _ = conn.close().await;
        if !signalled {
            bail!("the server refused to reload its configuration");
        }
        self.wait_reloaded(before).await?;
        let sessions_ended = self.end_sessions_outside(&admitted).await?;
        Ok(AccessApplied {
            admitted,
            sessions_ended,
        })
    }

    /// Waits until a new session sees a configuration load after `before`. A session is forked
    /// from the postmaster and inherits its last load time, and the postmaster reloads the
    /// authentication rules in the same signal handler as the rest of the configuration, so from
    /// then on every new connection is checked against the new rules.
    pub(super) async fn wait_reloaded(&self, before: DateTime<Utc>) -> Result<()> {
        let until = tokio::time::Instant::now() + RELOAD_DEADLINE;
        loop {
            let mut conn = self.connect().await?;
            let loaded = conf_load_time(&mut conn).await?;
            let _ = conn.close().await;
            if loaded > before {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                bail!("the server did not reload its configuration within {RELOAD_DEADLINE:?}");
            }
            tokio::time::sleep(RELOAD_POLL).await;
        }
    }

    /// Terminates client sessions over TCP whose address none of `admitted` contains.
    async fn end_sessions_outside(&self, admitted: &[Cidr]) -> Result<i64> {
        let nets: Vec<String> = admitted.iter().map(Cidr::to_string).collect();
        let mut conn = self.connect().await?;
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND client_addr IS NOT NULL \
             AND NOT (client_addr <<= ANY ($1::text[]::cidr[]))",
        )
        .bind(&nets)
        .fetch_one(&mut conn)
        .await
        .context("ending sessions from addresses no longer admitted")?;
        let _ = conn.close().await;
        Ok(ended)
    }
}

pub(super) async fn conf_load_time(conn: &mut sqlx::PgConnection) -> Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT pg_conf_load_time()")
        .fetch_one(conn)
        .await
        .context("reading the configuration load time")
}
