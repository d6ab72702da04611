//! How the driver runs PostgreSQL commands: as itself, or as the `postgres` OS user through `runuser`.

use std::ffi::OsStr;
use std::process::{Output, Stdio};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command;
use tokio::task::JoinHandle;

use super::os_user::{OsUser, is_root};

/// Builds commands for PostgreSQL binaries. `initdb` and `postgres` refuse to run as root, so a root
/// agent switches to the cluster owner with `runuser`; an unprivileged agent already is the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    run_as: Option<OsUser>,
}

impl Runner {
    /// Runs through `runuser -u <os_user_name>` when we are root, directly otherwise.
    pub fn detect(os_user_name: &str) -> Result<Runner> {
        if is_root()? {
            Ok(Self::run_as(OsUser::lookup(os_user_name)?))
        } else {
            Ok(Self::direct())
        }
    }

    /// Runs commands as the current user, who must own the data directories.
    pub fn direct() -> Runner {
        Runner { run_as: None }
    }

    /// Runs commands as `user` through `runuser` (needs root).
    pub fn run_as(user: OsUser) -> Runner {
        Runner { run_as: Some(user) }
    }

    /// The user that files we create for PostgreSQL must be chowned to, if any.
    pub fn owner(&self) -> Option<&OsUser> {
        self.run_as.as_ref()
    }

    /// A command for `program`, with stdin closed and `/` as working directory: the `postgres` user
    /// cannot enter root's home, and `initdb` warns when it cannot `chdir` back.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.arg("-u").arg(&user.name).arg("--").arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.current_dir("/").stdin(Stdio::null());
        // Inherited libpq settings would silently redirect our tools to another server.
        for var in [
            "PGHOST",
            "PGPORT",
            "PGDATA",
            "PGUSER",
            "PGDATABASE",
            "PGSERVICE",
            "PGOPTIONS",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }
}

/// Runs `cmd` to completion; a non-zero exit becomes an error carrying its stderr (and stdout, which
/// some PostgreSQL tools use for their diagnostics).
pub async fn run_checked(cmd: &mut Command, what: &str) -> Result<Output> {
    let output = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .with_context(|| format!("spawning {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            diagnostics_suffix(&output.stdout)
        );
    }
    Ok(output)
}

fn diagnostics_suffix(stdout: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(" (stdout: {text})")
    }
}

/// Drains a child's stderr in the background so that a chatty process never blocks on a full pipe.
pub(crate) fn spawn_read_to_string<R>(pipe: Option<R>) -> JoinHandle<String>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes).await;
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

pub(crate) async fn join_stderr(handle: JoinHandle<String>) -> String {
    handle
        .await
        .unwrap_or_else(|err| format!("<stderr reader failed: {err}>"))
}
