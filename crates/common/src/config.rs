//! One typed configuration loader: built-in defaults, then a TOML file, then `PREFIX__KEY__SUB` env vars.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use lapin::uri::AMQPUri;
use serde::{Serialize, de::DeserializeOwned};

/// Connection to the control database. Every limit is explicit because a daemon that hangs on the
/// pool looks, to a user, like a dead API.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user@host:port/db`
    pub url: String,
    /// Upper bound of open connections held by this daemon.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/trove".into(),
            max_connections: 10,
            acquire_timeout_secs: 5,
        }
    }
}

/// Connection to RabbitMQ.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (the default vhost is `%2f`). The user is this daemon's
    /// broker identity: every message it publishes carries it as the broker-validated `user_id`.
    pub url: String,
    /// A file holding the broker password (one line). When set it replaces any password in
    /// `url`, so the URL can sit in a readable config while the secret stays in a 0600 file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Topic exchange all RPC goes through (oslo's `control_exchange`).
    pub exchange: String,
    /// Unacked deliveries per consumer; bounds the work a daemon holds at once.
    pub prefetch: u16,
    /// How long start-up keeps retrying an unreachable broker.
    pub connect_timeout_secs: u64,
    /// Deliveries a message gets whose handler keeps failing, before it is dead-lettered.
    pub max_attempts: u32,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            password_file: None,
            exchange: "trove".into(),
            prefetch: 8,
            connect_timeout_secs: 30,
            max_attempts: 5,
        }
    }
}

impl AmqpConfig {
    /// The broker URI to connect with: `url`, with the password from `password_file` when one is
    /// set (read at every connect, so a rotated secret is picked up on reconnect).
    pub fn uri(&self) -> Result<AMQPUri> {
        let mut uri: AMQPUri = self
            .url
            .parse()
            .map_err(|e| anyhow::anyhow!("amqp.url {}: {e}", crate::db::redact(&self.url)))?;
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading amqp.password_file {}", path.display()))?;
            let password = text.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("amqp.password_file {} is empty", path.display());
            }
            uri.authority.userinfo.password = password.to_string();
        }
        Ok(uri)
    }

    /// The same broker and vhost as this config, as `user`, with the password read from
    /// `password_file` (how a guest host's config is derived from the control plane's).
    pub fn for_user(&self, user: &str, password_file: PathBuf) -> Result<AmqpConfig> {
        let mut uri = self.uri()?;
        uri.authority.userinfo.username = user.to_string();
        uri.authority.userinfo.password = String::new();
        Ok(AmqpConfig {
            url: uri.to_string(),
            password_file: Some(password_file),
            ..self.clone()
        })
    }

    /// Refuses settings no daemon can work with, naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            bail!("amqp.max_attempts must be at least 1");
        }
        if self.exchange.is_empty() {
            bail!("amqp.exchange must not be empty");
        }
        let user = self.uri()?.authority.userinfo.username;
        // The user is stamped on every message as `user_id`, an AMQP short string.
        if user.is_empty() || user.len() > 255 {
            bail!("amqp.url must name a broker user of 1 to 255 bytes");
        }
        Ok(())
    }
}

/// Reads the daemons' one flag, `--config FILE`, from the command line; `--help` prints usage
/// and exits.
pub fn config_flag(program: &str, env_prefix: &str) -> Result<Option<std::path::PathBuf>> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => {
                path = Some(std::path::PathBuf::from(
                    args.next().context("--config needs a path")?,
                ))
            }
            "-h" | "--help" => {
                println!(
                    "usage: {program} [--config FILE]   (env overrides: {env_prefix}__SECTION__KEY)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; try --help"),
        }
    }
    Ok(path)
}

/// Loads `T`: defaults, overridden by `file` (when given), overridden by env vars
/// `{prefix}__SECTION__KEY=value` (values parse as TOML literals, else as strings).
pub fn load<T>(file: Option<&Path>, prefix: &str) -> Result<T>
where
    T: Default + Serialize + DeserializeOwned,
{
    let mut value = toml::Value::try_from(T::default()).context("serializing defaults")?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file_value: toml::Value = toml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        merge(&mut value, file_value);
    }
    let env_prefix = format!("{prefix}__");
    for (key, raw) in std::env::vars() {
        let Some(rest) = key.strip_prefix(&env_prefix) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        set_path(&mut value, &path, parse_literal(&raw))
            .with_context(|| format!("applying environment variable {key}"))?;
    }
    value
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid configuration: {e}"))
}

fn parse_literal(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn set_path(root: &mut toml::Value, path: &[String], v: toml::Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        bail!("empty key");
    };
    let mut cur = root;
    for p in parents {
        let table = cur
            .as_table_mut()
            .with_context(|| format!("{p} is not a section"))?;
        cur = table
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    let table = cur
        .as_table_mut()
        .with_context(|| format!("{last} is not inside a section"))?;
    // A string-typed default keeps a numeric-looking override as a string (e.g. a host name "123").
    let v = match (table.get(last), v) {
        (Some(toml::Value::String(_)), toml::Value::Integer(i)) => {
            toml::Value::String(i.to_string())
        }
        (_, v) => v,
    };
    table.insert(last.clone(), v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Serialize, serde::Deserialize, Debug)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        amqp: AmqpConfig,
        name: String,
    }

    #[test]
    fn file_then_env_override_defaults() {
        let dir = std::env::temp_dir().join(format!("trove-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "name = \"x\"\n[amqp]\nexchange = \"fromfile\"\nprefetch = 3\n",
        )
        .expect("write");
        // SAFETY of the test: the variable name is unique to this test.
        unsafe_env_set("TROVETESTCFG__AMQP__PREFETCH", "5");
        let s: Sample = load(Some(&file), "TROVETESTCFG").expect("load");
        assert_eq!(s.name, "x");
        assert_eq!(s.amqp.exchange, "fromfile");
        assert_eq!(s.amqp.prefetch, 5);
        assert_eq!(s.amqp.connect_timeout_secs, 30);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let dir = std::env::temp_dir().join(format!("trove-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, "[amqp]\nexchnage = \"typo\"\n").expect("write");
        let err = load::<Sample>(Some(&file), "TROVETESTCFG2").expect_err("must fail");
        assert!(format!("{err:#}").contains("exchnage"), "{err:#}");
    }

    fn unsafe_env_set(k: &str, v: &str) {
        // set_var is unsafe in edition 2024; the crate denies unsafe, so go through a child-free
        // path: tests read the variable only through `load`, which reads std::env::vars.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(k, v)
        };
    }
}
