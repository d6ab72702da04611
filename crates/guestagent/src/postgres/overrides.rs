//! The instance's memory settings (from its flavor) and configuration-group values: two files
//! beside the data directory that `trove.conf` includes, memory first so a group's value wins.
//! Group values are checked again here against the rule set before a line is written, and a
//! reload that PostgreSQL refuses puts the previous file back.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use sqlx::Connection as _;
use trove_common::overrides::{self, Overrides, memory};

use super::cluster::Cluster;
use super::hba::conf_load_time;
use super::os_user::write_owned;

/// The first line of the group file: which revision of the instance's configuration it holds.
const REVISION_MARK: &str = "# revision ";

impl Cluster {
    /// Writes the memory settings for a flavor with `ram_mb` of RAM, for the next start.
    pub async fn write_memory(&self, ram_mb: i64) -> Result<()> {
        write_owned(
            &self.spec().memory_file(),
            memory::render(ram_mb).as_bytes(),
            0o600,
            self.runner().owner(),
        )
        .await
    }

    /// Writes the group's values (none: an empty file) for the next start or reload, marked
    /// with the control plane's `revision` of them. Refuses the whole set if any value fails
    /// its rule: nothing unchecked reaches the file.
    pub async fn write_overrides(&self, values: &Overrides, revision: i64) -> Result<()> {
        let checked = overrides::postgresql()
            .check_all(values)
            .map_err(|e| anyhow!("{e}"))?;
        let text = format!("{REVISION_MARK}{revision}\n{}", overrides::render(&checked));
        write_owned(
            &self.spec().overrides_file(),
            text.as_bytes(),
            0o600,
            self.runner().owner(),
        )
        .await
    }

    /// After the server failed to start: moves a non-empty group file aside (to
    /// `overrides.conf.rejected`, for the operator) and leaves an empty one, so the server can
    /// start with its memory settings alone. Returns the revision the file held, or None when
    /// there was nothing to set aside (the group is not what keeps the server down).
    pub async fn set_aside_overrides(&self) -> Result<Option<i64>> {
        let path = self.spec().overrides_file();
        let Some(bytes) = read_if_exists(&path).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        if !text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            return Ok(None);
        }
        let revision = text
            .lines()
            .find_map(|l| l.strip_prefix(REVISION_MARK))
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or(0);
        let aside = super::sibling(&path, "rejected");
        tokio::fs::rename(&path, &aside)
            .await
            .with_context(|| format!("moving {} aside", path.display()))?;
        self.write_overrides(&Overrides::new(), revision).await?;
        Ok(Some(revision))
    }

    /// Makes `values` the running server's group values: write, reload, and return the settings
    /// that wait for a restart (PostgreSQL's own `pending_restart`). If the server refuses a
    /// value, the previous file is put back and reloaded, and the error names the parameter.
    pub async fn apply_overrides(&self, values: &Overrides, revision: i64) -> Result<Vec<String>> {
        let path = self.spec().overrides_file();
        let previous = read_if_exists(&path).await?;
        self.write_overrides(values, revision).await?;
        if !self.is_running().await {
            // The next start reads the file: nothing waits for a restart.
            return Ok(Vec::new());
        }
        match self.reload_and_check().await {
            Ok(pending) => Ok(pending),
            Err(e) => {
                let owner = self.runner().owner();
                write_owned(&path, previous.as_deref().unwrap_or_default(), 0o600, owner).await?;
                if let Err(again) = self.reload_and_check().await {
                    tracing::warn!(error = %format!("{again:#}"), "reload after putting the previous configuration back failed");
                }
                Err(e)
            }
        }
    }

    /// Reloads, waits until new sessions run with the result, and checks what PostgreSQL made
    /// of the files: a value it refused is an error; a changed value of a setting that needs a
    /// restart is returned as pending.
    async fn reload_and_check(&self) -> Result<Vec<String>> {
        let mut conn = self.connect().await?;
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
        let mut conn = self.connect().await?;
        let pending: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
                .fetch_all(&mut conn)
                .await
                .context("reading the settings that wait for a restart")?;
        // The view parses the files again. A setting that waits for a restart is listed with an
        // error too ("could not be applied"), so only the others count as refused.
        let refused: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT name, setting, error FROM pg_file_settings WHERE error IS NOT NULL \
             AND NOT (lower(name) = ANY ($1))",
        )
        .bind(pending.iter().map(|p| p.to_lowercase()).collect::<Vec<_>>())
        .fetch_all(&mut conn)
        .await
        .context("checking the configuration files")?;
        let _ = conn.close().await;
        if let Some((name, _, error)) = refused.first() {
            bail!(
                "the server refused the value of {}: {}",
                name.as_deref().unwrap_or("a setting"),
                error.as_deref().unwrap_or("unknown error")
            );
        }
        Ok(pending)
    }
}

async fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
