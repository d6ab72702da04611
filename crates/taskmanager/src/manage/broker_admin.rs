//! The broker side of a guest host's identity, managed through `rabbitmqctl`: a user of its own
//! that may consume the host's own queues and publish reports to the conductor, and nothing else.

use std::{path::PathBuf, process::Stdio};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;
use trove_common::rpc::topics;

/// `rabbitmqctl` exits with this when the user does not exist (sysexits `EX_NOUSER`).
const EX_NOUSER: i32 = 67;

/// Where and how to manage broker users.
#[derive(Debug, Clone)]
pub struct BrokerAdmin {
    /// The `rabbitmqctl` to run. It must reach the broker node: run `trove-manage` on the broker
    /// host, or where the node's Erlang cookie is.
    pub rabbitmqctl: PathBuf,
    /// The vhost the daemons use (`/` is the default vhost).
    pub vhost: String,
    /// The RPC exchange (`amqp.exchange`).
    pub exchange: String,
}

/// The broker user issued to a host. The prefix keeps host users apart from any other user of the
/// broker: `host-add` may re-create a user of this name, never another one.
pub fn host_user(host: &str) -> String {
    format!("trove-host-{host}")
}

/// What a host's broker user may do in the vhost (anchored regexes, as RabbitMQ takes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPermissions {
    /// Declare or delete nothing: the control plane declares every queue and binding.
    pub configure: String,
    /// Publish to the RPC exchange only (not to the default exchange, which reaches any queue).
    pub write: String,
    /// Consume its own queues only; no exchange, so it cannot bind a queue either.
    pub read: String,
    /// Topic permission on the exchange: publish with routing key `trove-conductor` only.
    pub topic_write: String,
    pub topic_read: String,
}

pub fn host_permissions(host: &str, exchange: &str) -> HostPermissions {
    HostPermissions {
        configure: "^$".into(),
        write: format!("^{}$", topics::regex_escape(exchange)),
        read: topics::host_queue_pattern(host),
        topic_write: format!("^{}$", topics::regex_escape(topics::CONDUCTOR)),
        topic_read: "^$".into(),
    }
}

impl BrokerAdmin {
    /// Creates `user` for `host` with `password` and its permissions. An existing user of that
    /// name is deleted first, which also closes its connections: re-issuing revokes the old
    /// password.
    pub async fn issue_host_user(&self, host: &str, user: &str, password: &str) -> Result<()> {
        self.delete_user(user).await?;
        // The password goes through stdin, never the command line other users can read.
        self.ctl(&["add_user", user], Some(password))
            .await
            .with_context(|| format!("creating broker user {user}"))?;
        let p = host_permissions(host, &self.exchange);
        self.ctl(
            &[
                "set_permissions",
                "-p",
                &self.vhost,
                user,
                &p.configure,
                &p.write,
                &p.read,
            ],
            None,
        )
        .await
        .with_context(|| format!("setting the permissions of {user}"))?;
        self.ctl(
            &[
                "set_topic_permissions",
                "-p",
                &self.vhost,
                user,
                &self.exchange,
                &p.topic_write,
                &p.topic_read,
            ],
            None,
        )
        .await
        .with_context(|| format!("setting the topic permissions of {user}"))?;
        Ok(())
    }

    /// Deletes `user` (closing its connections); a user that does not exist is fine.
    pub async fn delete_user(&self, user: &str) -> Result<()> {
        match self.run(&["delete_user", user], None).await? {
            (0, _) | (EX_NOUSER, _) => Ok(()),
            (code, err) => bail!("rabbitmqctl delete_user {user} exited with {code}: {err}"),
        }
    }

    async fn ctl(&self, args: &[&str], stdin: Option<&str>) -> Result<()> {
        match self.run(args, stdin).await? {
            (0, _) => Ok(()),
            (code, err) => bail!("rabbitmqctl {} exited with {code}: {err}", args[0]),
        }
    }

    /// Runs `rabbitmqctl -q ARGS`, feeding `stdin`; returns its exit code and stderr.
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<(i32, String)> {
        let mut child = tokio::process::Command::new(&self.rabbitmqctl)
            .arg("-q")
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("running {}", self.rabbitmqctl.display()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(format!("{text}\n").as_bytes()).await?;
            drop(pipe);
        }
        let out = child.wait_with_output().await?;
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Ok((out.status.code().unwrap_or(-1), stderr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_may_publish_to_the_conductor_and_read_its_own_queues_only() {
        let p = host_permissions("db1.example", "trove");
        assert_eq!(p.configure, "^$");
        assert_eq!(p.write, "^trove$");
        assert_eq!(p.topic_write, "^trove-conductor$");
        assert_eq!(p.topic_read, "^$");
        assert!(p.read.starts_with("^guesthost\\.db1\\.example("));
        assert_eq!(host_user("db1"), "trove-host-db1");
    }
}
