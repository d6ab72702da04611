//! trove-manage: schema, catalogue, guest host registration and keys for operators.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use trove_common::{config::DatabaseConfig, db, schema, secrets::SecretKey};
use trove_taskmanager::{
    config::TaskManagerConfig,
    manage::{self, broker_admin::BrokerAdmin, hosts, store_usage},
};

const USAGE: &str = "usage: trove-manage [OPTIONS] COMMAND
commands:
  db-sync                                        apply pending schema migrations
  bootstrap                                      register PostgreSQL 15 and the default flavors
  datastore-version-add DATASTORE NAME VERSION   register a version (manager = DATASTORE)
  flavor-add ID NAME RAM_MB VCPUS DISK_GB        add or update a flavor
  host-add HOST --capacity N [--credentials-out FILE]
                                                 register a guest host and issue its broker user;
                                                 the password goes to FILE (mode 0600) or stdout
  host-capacity HOST N                           change how many instances HOST accepts (0 drains)
  host-remove HOST [--force]                     revoke HOST's broker user, place nothing there
  host-list                                      show registered hosts
  keygen --out PATH                              new key pair: PATH (private, 0600) and PATH.pub;
                                                 prints the public key (no database needed)
  store-usage [--instance ID]                    objects and bytes of each instance's backups and
                                                 WAL in the object store (`[store]` of --config)
options (before the command):
  --config FILE        trove-taskmanager.toml, for its [store] section (store-usage); the
                       variables TROVE_TASKMANAGER__STORE__* apply as for the daemon
  --database-url URL   default $TROVE_DATABASE_URL, then postgres://postgres@127.0.0.1:5432/trove
  --rabbitmqctl PATH   default $TROVE_RABBITMQCTL, then rabbitmqctl (must reach the broker node)
  --vhost VHOST        the daemons' vhost; default $TROVE_AMQP_VHOST, then /
  --exchange NAME      the daemons' amqp.exchange; default trove";

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("warn");
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = DatabaseConfig::default();
    if let Ok(url) = std::env::var("TROVE_DATABASE_URL") {
        cfg.url = url;
    }
    let mut broker = BrokerAdmin {
        rabbitmqctl: std::env::var_os("TROVE_RABBITMQCTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| "rabbitmqctl".into()),
        vhost: std::env::var("TROVE_AMQP_VHOST").unwrap_or_else(|_| "/".into()),
        exchange: "trove".into(),
    };
    let mut config_file: Option<PathBuf> = None;
    while let Some(flag) = args.first().filter(|a| a.starts_with("--")).cloned() {
        let Some(value) = args.get(1).cloned() else {
            bail!("{flag} needs a value\n{USAGE}");
        };
        match flag.as_str() {
            "--database-url" => cfg.url = value,
            "--rabbitmqctl" => broker.rabbitmqctl = value.into(),
            "--vhost" => broker.vhost = value,
            "--exchange" => broker.exchange = value,
            "--config" => config_file = Some(value.into()),
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
        args.drain(..2);
    }
    let Some(cmd) = args.first().cloned() else {
        bail!("{USAGE}");
    };
    if matches!(cmd.as_str(), "-h" | "--help" | "help") {
        println!("{USAGE}");
        return Ok(());
    }
    if cmd == "keygen" {
        let [_, flag, out] = args.as_slice() else {
            bail!("keygen needs --out PATH\n{USAGE}");
        };
        if flag != "--out" {
            bail!("keygen needs --out PATH\n{USAGE}");
        }
        println!("{}", keygen(Path::new(out))?);
        return Ok(());
    }
    let pool = db::connect(&cfg).await?;
    if cmd != "db-sync" {
        schema::ensure_current(&pool).await?;
    }
    match (cmd.as_str(), &args[1..]) {
        ("db-sync", []) => {
            schema::sync(&pool).await.context("applying migrations")?;
            println!("control database schema is current");
        }
        ("bootstrap", []) => {
            manage::bootstrap(&pool).await?;
            println!("registered datastore postgresql 15 and flavors 1-4");
        }
        ("datastore-version-add", [ds, name, version]) => {
            let id = manage::register_datastore_version(&pool, ds, name, version, ds).await?;
            println!("datastore version {id}");
        }
        ("flavor-add", [id, name, ram, vcpus, disk]) => {
            manage::add_flavor(
                &pool,
                id,
                name,
                ram.parse().context("RAM_MB must be an integer")?,
                vcpus.parse().context("VCPUS must be an integer")?,
                disk.parse().context("DISK_GB must be an integer")?,
            )
            .await?;
            println!("flavor {id} saved");
        }
        ("host-add", [host, rest @ ..]) => host_add(&pool, &broker, host, rest).await?,
        ("host-capacity", [host, capacity]) => {
            let capacity = capacity.parse().context("N must be an integer")?;
            hosts::set_capacity(&pool, host, capacity).await?;
            println!("host {host} accepts {capacity} instances");
        }
        ("host-remove", [host, rest @ ..]) => {
            let force = match rest {
                [] => false,
                [f] if f == "--force" => true,
                _ => bail!("host-remove takes HOST and optionally --force\n{USAGE}"),
            };
            hosts::remove_host(&pool, &broker, host, force).await?;
            println!(
                "host {host} removed: its broker user is deleted and nothing more is placed there"
            );
        }
        ("host-list", []) => {
            println!(
                "{:<32} {:>8} {:>5} {:<8} {:<40} last heartbeat",
                "host", "capacity", "used", "enabled", "broker user"
            );
            for h in hosts::list_hosts(&pool).await? {
                println!(
                    "{:<32} {:>8} {:>5} {:<8} {:<40} {}",
                    h.id,
                    h.capacity,
                    h.used,
                    h.enabled,
                    h.broker_user.as_deref().unwrap_or("-"),
                    h.last_heartbeat
                        .map_or("never".to_string(), |t| t.to_rfc3339()),
                );
            }
        }
        ("store-usage", rest) => {
            let only = match rest {
                [] => None,
                [flag, id] if flag == "--instance" => {
                    Some(uuid::Uuid::parse_str(id).context("--instance needs an instance id")?)
                }
                _ => bail!("store-usage takes optionally --instance ID\n{USAGE}"),
            };
            let config: TaskManagerConfig =
                trove_common::config::load(config_file.as_deref(), "TROVE_TASKMANAGER")?;
            let store = trove_common::store::BlobStore::open(&config.store)
                .context("opening the object store ([store] of --config)")?;
            print_store_usage(&store_usage::store_usage(&pool, &store, only).await?);
        }
        _ => bail!("unknown command or wrong arguments\n{USAGE}"),
    }
    Ok(())
}

fn print_store_usage(usage: &store_usage::StoreUsage) {
    println!(
        "{:<36} {:<20} {:<7} {:>14} {:>16} {:>11} {:>16}",
        "instance", "tenant", "state", "backup objects", "backup bytes", "wal objects", "wal bytes"
    );
    for i in &usage.instances {
        println!(
            "{:<36} {:<20} {:<7} {:>14} {:>16} {:>11} {:>16}",
            i.instance_id,
            i.tenant_id,
            i.state,
            i.backups.objects,
            i.backups.bytes,
            i.wal.objects,
            i.wal.bytes
        );
    }
    if usage.unowned.objects > 0 {
        println!(
            "objects no instance or backup row names: {} ({} bytes)",
            usage.unowned.objects, usage.unowned.bytes
        );
    }
}

/// `host-add HOST --capacity N [--credentials-out FILE]`.
async fn host_add(
    pool: &sqlx::PgPool,
    broker: &BrokerAdmin,
    host: &str,
    rest: &[String],
) -> Result<()> {
    let (mut capacity, mut out) = (None, None);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--capacity" => {
                capacity = Some(value.parse().context("--capacity must be an integer")?)
            }
            "--credentials-out" => out = Some(PathBuf::from(value)),
            _ => bail!("unknown option {flag} for host-add\n{USAGE}"),
        }
    }
    let capacity = capacity.context("host-add needs --capacity N")?;
    if let Some(path) = &out
        && path.exists()
    {
        bail!("{} exists already; choose a new file", path.display());
    }
    let creds = hosts::add_host(pool, broker, host, capacity).await?;
    println!("host {host} registered with capacity {capacity}");
    println!("broker user: {}", creds.user);
    match out {
        Some(path) => {
            hosts::write_password_file(&path, &creds)?;
            println!(
                "broker password written to {} (mode 0600); point the guest's amqp.password_file at it",
                path.display()
            );
        }
        None => println!(
            "broker password: {}\n(shown once: put it in a file readable only by the guest agent and set amqp.password_file)",
            creds.password
        ),
    }
    Ok(())
}

/// Writes a new key pair: the private key to `out` (created 0600, never overwritten) and the
/// public key to `out.pub`. Returns the public key's text.
fn keygen(out: &Path) -> Result<String> {
    let key = SecretKey::generate();
    key.write_new(out)?;
    let public = key.public_key().to_base64();
    let mut pub_path = out.as_os_str().to_owned();
    pub_path.push(".pub");
    std::fs::write(&pub_path, format!("{public}\n"))
        .with_context(|| format!("writing {}", Path::new(&pub_path).display()))?;
    Ok(public)
}
