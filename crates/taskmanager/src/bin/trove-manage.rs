//! trove-manage: `db-sync`, `bootstrap`, `datastore-version-add`, `flavor-add` and `keygen` for
//! operators.

use std::path::Path;

use anyhow::{Context, Result, bail};
use trove_common::{config::DatabaseConfig, db, schema, secrets::SecretKey};
use trove_taskmanager::manage;

const USAGE: &str = "usage: trove-manage [--database-url URL] COMMAND
commands:
  db-sync                                        apply pending schema migrations
  bootstrap                                      register PostgreSQL 15 and the default flavors
  datastore-version-add DATASTORE NAME VERSION   register a version (manager = DATASTORE)
  flavor-add ID NAME RAM_MB VCPUS DISK_GB        add or update a flavor
  keygen --out PATH                              new key pair: PATH (private, 0600) and PATH.pub;
                                                 prints the public key (no database needed)
The database URL defaults to $TROVE_DATABASE_URL, then postgres://postgres@127.0.0.1:5432/trove.";

#[tokio::main]
async fn main() -> Result<()> {
    trove_common::telemetry::init("warn");
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = DatabaseConfig::default();
    if let Ok(url) = std::env::var("TROVE_DATABASE_URL") {
        cfg.url = url;
    }
    if args.first().map(String::as_str) == Some("--database-url") {
        if args.len() < 2 {
            bail!("--database-url needs a value\n{USAGE}");
        }
        cfg.url = args[1].clone();
        args.drain(..2);
    }
    let Some(cmd) = args.first().cloned() else {
        bail!("{USAGE}");
    };
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
    match (cmd.as_str(), &args[1..]) {
        ("db-sync", []) => {
            schema::sync(&pool).await.context("applying migrations")?;
            println!("control database schema is current");
        }
        ("bootstrap", []) => {
            schema::ensure_current(&pool).await?;
            manage::bootstrap(&pool).await?;
            println!("registered datastore postgresql 15 and flavors 1-4");
        }
        ("datastore-version-add", [ds, name, version]) => {
            schema::ensure_current(&pool).await?;
            let id = manage::register_datastore_version(&pool, ds, name, version, ds).await?;
            println!("datastore version {id}");
        }
        ("flavor-add", [id, name, ram, vcpus, disk]) => {
            schema::ensure_current(&pool).await?;
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
        ("-h" | "--help" | "help", _) => println!("{USAGE}"),
        _ => bail!("unknown command or wrong arguments\n{USAGE}"),
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
