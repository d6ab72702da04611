//! The unchanged `openstack` CLI (python-openstackclient with python-troveclient's `database`
//! commands, and this repository's plugin `clients/osc-plugin`, installed by
//! `scripts/install-test-tools.sh`) pointed at a test stack, as a tenant or an operator runs it:
//! `admin_token` auth against `/v1.0/{tenant}`.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Stack, TENANT_A, TOKEN_A, TOKEN_ADMIN};

/// How long one command may run: long enough for `instance recover --wait`.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(300);

/// The CLI, `TROVE_OPENSTACK` overriding where it is installed.
pub fn openstack() -> PathBuf {
    std::env::var_os("TROVE_OPENSTACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-test/bin/openstack")
        })
}

/// One caller's CLI: its endpoint (with the tenant) and token.
pub struct Cli {
    endpoint: String,
    token: String,
    home: PathBuf,
}

/// What one command printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Stack {
    /// Tenant A's CLI.
    pub fn cli_a(&self) -> Cli {
        self.cli(TENANT_A, TOKEN_A)
    }

    /// The operator's CLI (an admin token of project `admin`).
    pub fn cli_admin(&self) -> Cli {
        self.cli("admin", TOKEN_ADMIN)
    }

    pub fn cli(&self, tenant: &str, token: &str) -> Cli {
        Cli {
            endpoint: format!("{}/v1.0/{tenant}", self.api_url),
            token: token.to_string(),
            home: self.root().to_path_buf(),
        }
    }
}

impl Cli {
    /// Runs `openstack database <args>` and returns what it printed, whatever its exit code. A
    /// command still running after [`CLI_TIMEOUT`] (a `--wait` that never ends) is killed and
    /// fails the test.
    pub async fn run(&self, args: &[&str]) -> Result<Run> {
        let bin = openstack();
        anyhow::ensure!(
            bin.exists(),
            "{} is missing: run scripts/install-test-tools.sh (scripts/test.sh does), or point \
             TROVE_OPENSTACK at an openstack binary with python-troveclient",
            bin.display()
        );
        let command = tokio::process::Command::new(&bin)
            .arg("database")
            .args(args)
            // Nothing from the machine's own OpenStack settings: only this stack.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .env("OS_AUTH_TYPE", "admin_token")
            .env("OS_ENDPOINT", &self.endpoint)
            .env("OS_TOKEN", &self.token)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(CLI_TIMEOUT, command)
            .await
            .with_context(|| {
                format!(
                    "openstack database {} ran past {CLI_TIMEOUT:?}",
                    args.join(" ")
                )
            })?
            .with_context(|| format!("running {}", bin.display()))?;
        Ok(Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs a command that must succeed; returns its standard output.
    pub async fn ok(&self, args: &[&str]) -> Result<String> {
        let r = self.run(args).await?;
        if !r.ok {
            bail!(
                "openstack database {} failed:\n{}{}",
                args.join(" "),
                r.stdout,
                r.stderr
            );
        }
        Ok(r.stdout)
    }

    /// Runs a command that must succeed with `-f json`; returns what it printed, parsed.
    pub async fn json(&self, args: &[&str]) -> Result<Value> {
        let mut with_format = args.to_vec();
        with_format.extend(["-f", "json"]);
        let out = self.ok(&with_format).await?;
        serde_json::from_str(&out)
            .with_context(|| format!("openstack database {} printed {out}", args.join(" ")))
    }

    /// Runs a command that must fail; returns what it printed on standard error (the server's
    /// message, as the user sees it).
    pub async fn fails(&self, args: &[&str]) -> Result<String> {
        let r = self.run(args).await?;
        if r.ok {
            bail!(
                "openstack database {} succeeded but should have failed:\n{}",
                args.join(" "),
                r.stdout
            );
        }
        Ok(format!("{}{}", r.stdout, r.stderr))
    }
}

/// The `Name` column of a listing printed with `-f json`, sorted.
pub fn names(listing: &Value) -> Vec<String> {
    let mut out: Vec<String> = listing
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["Name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
