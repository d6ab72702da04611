//! Least exposure: what the guest writes on disk is its owner's alone, and passwords reach no
//! log, neither a daemon's nor the managed server's.

use std::{
    collections::BTreeSet,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    time::Duration,
};

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use trove_e2e::{ALL, Stack, TENANT_A, TOKEN_ADMIN, wait_until};
use uuid::Uuid;

/// What a walk of a tree found: every path whose mode lets group or others read, write or
/// enter it, and the names of everything it looked at.
#[derive(Default)]
struct Walk {
    exposed: Vec<String>,
    names: BTreeSet<String>,
    owners: Vec<(String, u32)>,
}

/// Walks `dir` and everything below it (symlinks are not followed and have no mode of their
/// own). Entries that vanish meanwhile (a scan's scratch directory) are skipped.
fn walk(dir: &Path) -> Result<Walk> {
    let mut found = Walk::default();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", path.display())),
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            found.exposed.push(format!("{mode:04o} {}", path.display()));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        found.owners.push((name.clone(), meta.uid()));
        found.names.insert(name);
        if meta.is_dir() {
            match std::fs::read_dir(&path) {
                Ok(entries) => todo.extend(entries.flatten().map(|e| e.path())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("listing {}", path.display())),
            }
        }
    }
    Ok(found)
}

fn postgres_uid() -> Result<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres")).then(|| f.get(2)?.parse().ok())?
        })
        .context("no postgres user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_wal_and_instance_files_are_readable_by_their_owner_only() -> Result<()> {
    let stack = Stack::start(ALL).await?;
    let (id, backup) = stack
        .backed_up_instance(
            "pg-private",
            "CREATE TABLE t (id int); INSERT INTO t VALUES (1);",
            "b",
            "INSERT INTO t VALUES (2)",
        )
        .await?;
    // The backup ends with a WAL switch, so a sealed segment reaches the store.
    let store = stack.store()?;
    let wal = format!("wal/{id}");
    wait_until(
        "a sealed WAL segment in the store",
        Duration::from_secs(60),
        || async {
            Ok(store
                .list(&wal)
                .await?
                .iter()
                .any(|e| e.key.contains("/sealed-"))
                .then_some(()))
        },
    )
    .await?;
    // A recovery leaves its remembered outcome, the previous data and a new timeline's WAL.
    stack
        .recover_accepted(id, json!({"backup": backup["id"]}))
        .await?;
    stack.wait_active(id).await?;
    let history = format!("{wal}/tl2/00000002.history");
    wait_until(
        "the new timeline's history in the store",
        Duration::from_secs(60),
        || async {
            Ok(store
                .list(&wal)
                .await?
                .iter()
                .any(|e| e.key == history)
                .then_some(()))
        },
    )
    .await?;
    // The store holds the backup and the WAL (its access is the store's: an S3 bucket's
    // credentials, or a local root only its owner may enter).
    let keys: Vec<String> = store
        .list("backups")
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    let backup_id = backup["id"].as_str().context("backup id")?;
    for name in ["base.tar.zst", "manifest.json"] {
        let key = format!("backups/{backup_id}/{name}");
        assert!(keys.contains(&key), "no {key} in {keys:?}");
    }
    let local_store = stack.store_config().path;
    if !trove_common::testkit::s3_endpoint_configured() {
        let mode = std::fs::metadata(&local_store)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", local_store.display());
    }

    let instances = walk(&stack.root().join("instances"))?;
    assert_eq!(instances.exposed, Vec::<String>::new(), "in the instances");
    // The walk saw the real thing: the instance's record, rules, data, log, WAL spool (with its
    // newest segment and the new timeline's history) and a remembered recovery.
    assert!(instances.names.contains("00000002.history"));
    assert!(instances.names.iter().any(|n| n.len() == 24));
    for name in [
        "instance.json",
        "pg_hba.conf",
        "PG_VERSION",
        "postgresql.log",
        "data.old",
        "recoveries",
    ] {
        assert!(instances.names.contains(name), "no {name} in the instances");
    }
    assert!(instances.names.iter().any(|n| n.starts_with(".s.PGSQL.")));
    // The daemons' private keys too.
    for key in [stack.root().join("guest.key"), stack.taskmanager_key_file()] {
        let keys = walk(&key)?;
        assert_eq!(keys.names.len(), 1, "no {}", key.display());
        assert_eq!(keys.exposed, Vec::<String>::new());
    }
    // Whose they are: the servers' OS user owns the trees it must reach (the WAL spool among
    // them); the agent's records are the agent's (root's) own.
    let pg = postgres_uid()?;
    let owner = |walk: &Walk, name: &str| walk.owners.iter().find(|(n, _)| n == name).map(|o| o.1);
    assert_eq!(owner(&instances, "wal"), Some(pg));
    assert_eq!(owner(&instances, "instances"), Some(pg));
    assert_eq!(owner(&instances, "instance.json"), Some(0));
    assert_eq!(owner(&instances, "PG_VERSION"), Some(pg));
    stack.finish().await
}

/// A password made for this test, so finding it anywhere is no coincidence.
fn known_password(tag: &str) -> String {
    format!("pw-{tag}-{}", Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passwords_reach_no_daemon_log_and_no_server_log_even_when_their_statement_fails()
-> Result<()> {
    let stack = Stack::start_capturing_logs(ALL).await?;
    let created = known_password("created");
    let refused = known_password("refused");
    let body = |name: &str, user: &str, password: &str, restore: Option<&serde_json::Value>| {
        let mut b = json!({"instance": {
            "name": name, "flavorRef": "1", "volume": {"size": 1},
            "datastore": {"type": "postgresql", "version": "15"},
            "users": [{"name": user, "password": password}],
        }});
        match restore {
            Some(r) => b["instance"]["restorePoint"] = json!({"backupRef": r}),
            None => b["instance"]["databases"] = json!([{"name": "appdb"}]),
        }
        b["instance"]["users"][0]["databases"] = match restore {
            Some(_) => json!([]),
            None => json!([{"name": "appdb"}]),
        };
        b
    };

    // A user created with the instance: the password works, over TCP.
    let (status, v) = stack
        .post_a("/instances", body("pg-pw", "app", &created, None))
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = Uuid::parse_str(v["instance"]["id"].as_str().context("no id")?)?;
    let shown = stack.wait_active(id).await?;
    let port = shown["addresses"][0]["port"].as_u64().context("no port")? as u16;
    let opts = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("app")
        .password(&created)
        .database("appdb");
    PgConnection::connect_with(&opts).await?.close().await?;

    // A password statement that fails: a restore of a backup whose `postgres` database (the one
    // the agent administers from) only allows read-only transactions, so CREATE ROLE fails.
    let mut admin = stack.connect_superuser(id, "postgres").await?;
    sqlx::query("ALTER DATABASE postgres SET default_transaction_read_only = on")
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let backup = stack.backup(id, "read-only").await?;
    let mut admin = stack.connect_superuser(id, "appdb").await?;
    sqlx::query("ALTER DATABASE postgres RESET default_transaction_read_only")
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let (status, v) = stack
        .post_a(
            "/instances",
            body("pg-pw-fails", "late", &refused, Some(&backup["id"])),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{v}");
    let failed = Uuid::parse_str(v["instance"]["id"].as_str().context("no id")?)?;
    stack
        .wait_status(failed, "ERROR", "", Duration::from_secs(120))
        .await?;
    let path = format!("/v1.0/{TENANT_A}/instances/{failed}");
    let (_, as_admin) = stack
        .call(Method::GET, &path, Some(TOKEN_ADMIN), None)
        .await?;
    let details = as_admin["instance"]["fault"]["details"]
        .as_str()
        .unwrap_or_default();
    assert!(
        details.contains("read-only transaction"),
        "the role statement itself failed: {as_admin}"
    );

    let daemons = stack.daemon_log()?;
    // The capture is real: it holds the daemons' work, at the levels below INFO too.
    assert!(
        daemons.contains("instance prepared"),
        "no prepare in the capture"
    );
    assert!(
        daemons.contains("prepare failed"),
        "no failed prepare in the capture"
    );
    assert!(daemons.contains(" TRACE ") || daemons.contains(" DEBUG "));
    for password in [&created, &refused] {
        assert!(
            !daemons.contains(password.as_str()),
            "a daemon logged a password"
        );
    }
    let server_log =
        std::fs::read_to_string(stack.instance_dir(id).join("log").join("postgresql.log"))?;
    assert!(server_log.contains("database system is ready to accept connections"));
    assert!(
        !server_log.contains(created.as_str()),
        "the server logged a password"
    );
    assert!(
        !server_log.contains("PASSWORD"),
        "the server logged a role statement"
    );
    stack.shutdown().await;
    Ok(())
}
