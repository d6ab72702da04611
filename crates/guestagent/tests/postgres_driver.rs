//! Integration tests of the PostgreSQL driver against real PostgreSQL 15 servers: init, users,
//! backup into the object store, restore from it to a new instance, and in-place recovery with its
//! rollback paths.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection as _, PgConnection};
use trove_common::{
    recovery::RecoveryProgress,
    rpc::conductor::GuestErrorCode,
    status::RecoveryPhase,
    store::{BlobStore, layout},
};
use trove_guestagent::postgres::{
    ArchiveSource, BackupDest, BackupManifest, Cluster, RecoveryRequest, Reporters,
    recover_in_place, restore_new, take_backup,
};
use trove_guestagent::testkit::{
    PhaseLog, TestRoot, assert_rolled_back_while_replaying, in_recovery, parse_lsn,
};

/// Quotes of both kinds prove that the password literal is escaped, not just passed through.
const APP_PASSWORD: &str = "s3cret 'with\" quotes";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The object `key`, which must be in the store.
async fn object(store: &BlobStore, key: &str) -> Result<Bytes> {
    store
        .get(key)
        .await?
        .with_context(|| format!("{key} is not in the store"))
}

async fn app_conn(cluster: &Cluster) -> Result<PgConnection> {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(cluster.spec().port)
        .username("app")
        .password(APP_PASSWORD)
        .database("appdb")
        .ssl_mode(PgSslMode::Disable);
    PgConnection::connect_with(&options)
        .await
        .context("connecting as app over TCP")
}

async fn ids(cluster: &Cluster) -> Result<Vec<i32>> {
    let mut conn = app_conn(cluster).await?;
    let ids = sqlx::query_scalar("SELECT id FROM t ORDER BY id")
        .fetch_all(&mut conn)
        .await?;
    conn.close().await?;
    Ok(ids)
}

async fn exec_as_app(cluster: &Cluster, sql: &str) -> Result<()> {
    let mut conn = app_conn(cluster).await?;
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .with_context(|| format!("running {sql}"))?;
    conn.close().await?;
    Ok(())
}

/// The timeline the server writes on, as recorded by a fresh checkpoint.
async fn current_timeline(cluster: &Cluster) -> Result<i32> {
    let mut admin = cluster.connect().await?;
    sqlx::raw_sql("CHECKPOINT").execute(&mut admin).await?;
    let timeline = sqlx::query_scalar("SELECT timeline_id FROM pg_control_checkpoint()")
        .fetch_one(&mut admin)
        .await?;
    admin.close().await?;
    Ok(timeline)
}

/// A running instance with user `app`, database `appdb`, rows 1..3 in `t`, a table `other`, and a
/// backup of that state in the root's store (the manifest and the archive's key).
async fn seeded_instance_with_backup(root: &TestRoot) -> Result<(Cluster, BackupManifest, String)> {
    let started = Instant::now();
    let cluster = root.cluster("live")?;
    cluster.init().await?;
    cluster.start().await?;
    cluster.create_database("appdb").await?;
    cluster
        .create_user("app", APP_PASSWORD, &["appdb".to_owned()])
        .await?;
    exec_as_app(
        &cluster,
        "CREATE TABLE t(id int); INSERT INTO t VALUES (1), (2), (3); \
         CREATE TABLE other(x int); INSERT INTO other VALUES (42)",
    )
    .await?;
    eprintln!("init+start+seed: {:?}", started.elapsed());

    let started = Instant::now();
    let backup_id = uuid::Uuid::new_v4();
    let archive = layout::backup_archive(backup_id);
    let manifest = take_backup(
        &cluster,
        &backup_id.to_string(),
        BackupDest {
            store: root.store(),
            archive: &archive,
            manifest: &layout::backup_manifest(backup_id),
        },
    )
    .await?;
    eprintln!(
        "take_backup: {:?} ({} bytes)",
        started.elapsed(),
        manifest.size_bytes
    );
    Ok((cluster, manifest, archive))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_in_place_rewinds_a_running_instance_to_its_backup_and_refuses_a_corrupt_archive()
-> Result<()> {
    let root = TestRoot::new("trove-pgdriver")?;
    let store = root.store();
    let (cluster, manifest, archive) = seeded_instance_with_backup(&root).await?;

    // The manifest describes the archive next to it, and the two are all the backup left in the
    // store.
    ensure!(
        manifest.checksum.len() == 64 && manifest.checksum.chars().all(|c| c.is_ascii_hexdigit())
    );
    let archive_bytes = object(store, &archive).await?;
    assert_eq!(manifest.checksum, sha256_hex(&archive_bytes));
    assert_eq!(manifest.size_bytes, archive_bytes.len() as u64);
    assert_eq!(manifest.file, "base.tar.zst");
    assert_eq!(manifest.timeline, 1);
    assert!(parse_lsn(&manifest.stop_lsn)? >= parse_lsn(&manifest.start_lsn)?);
    assert!(manifest.stop_time >= manifest.start_time);
    assert!(
        manifest.pg_version.starts_with("15"),
        "pg_version {}",
        manifest.pg_version
    );
    let manifest_key = layout::manifest_beside(&archive);
    let stored: BackupManifest = serde_json::from_slice(&object(store, &manifest_key).await?)?;
    assert_eq!(stored, manifest);
    let backup_dir = archive
        .rsplit_once('/')
        .map(|(dir, _)| dir)
        .context("archive key without a directory")?;
    let mut keys: Vec<String> = store
        .list(backup_dir)
        .await?
        .into_iter()
        .map(|e| e.key)
        .collect();
    keys.sort();
    assert_eq!(keys, [archive.clone(), manifest_key]);

    // Changes after the backup, which the recovery must undo.
    exec_as_app(&cluster, "INSERT INTO t VALUES (4), (5); DROP TABLE other").await?;
    assert_eq!(ids(&cluster).await?, vec![1, 2, 3, 4, 5]);

    let phases = PhaseLog::default();
    let last_progress = Mutex::new((0u64, 0u64));
    let started = Instant::now();
    let record_bytes = |p: RecoveryProgress| {
        if let (Some(done), Some(total)) = (p.bytes_done, p.bytes_total) {
            *last_progress.lock().expect("progress lock") = (done, total);
        }
    };
    recover_in_place(
        &cluster,
        &to_backup_end(store, &archive, &manifest.checksum),
        Reporters {
            phase: &|p| phases.record(p),
            progress: &record_bytes,
        },
    )
    .await?;
    eprintln!("recover_in_place: {:?}", started.elapsed());

    assert_eq!(
        phases.names(),
        [
            "fetching",
            "verifying",
            "replaying",
            "cutting_over",
            "health_check"
        ]
    );
    assert_eq!(
        *last_progress.lock().expect("progress lock"),
        (manifest.size_bytes, manifest.size_bytes)
    );
    assert_eq!(ids(&cluster).await?, vec![1, 2, 3]);
    let mut app = app_conn(&cluster).await?;
    let other: i32 = sqlx::query_scalar("SELECT x FROM other")
        .fetch_one(&mut app)
        .await?;
    assert_eq!(other, 42, "the table dropped after the backup is back");
    app.close().await?;

    let timeline = current_timeline(&cluster).await?;
    assert!(
        timeline > 1,
        "recovered server should run on a new timeline, got {timeline}"
    );
    assert!(!in_recovery(&cluster).await?);
    let data_dir = &cluster.spec().data_dir;
    assert!(
        root.path().join("live/data.old/PG_VERSION").exists(),
        "pre-recovery data kept as data.old"
    );
    assert!(!root.path().join("live/data.staging").exists());
    assert!(!data_dir.join("trove-recovery.conf").exists());

    // An archive whose object was overwritten (same length, other bytes) is refused as it
    // streams in, and the live instance is not touched.
    exec_as_app(&cluster, "INSERT INTO t VALUES (10)").await?;
    let mut bytes = archive_bytes.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    store.put(&archive, Bytes::from(bytes)).await?;
    let phases = PhaseLog::default();
    let err = recover_in_place(
        &cluster,
        &to_backup_end(store, &archive, &manifest.checksum),
        Reporters {
            phase: &|p| phases.record(p),
            ..Reporters::SILENT
        },
    )
    .await
    .expect_err("a corrupt archive must be refused");
    let message = format!("{err:#}");
    assert!(message.contains("checksum mismatch"), "{message}");
    assert_eq!(
        (err.phase, err.code),
        (RecoveryPhase::Fetching, GuestErrorCode::ChecksumMismatch)
    );
    assert_eq!(phases.names(), ["fetching"]);
    assert_eq!(ids(&cluster).await?, vec![1, 2, 3, 10]);
    assert!(!root.path().join("live/data.staging").exists());
    store.put(&archive, archive_bytes).await?;

    // An archive that is not in the store is refused before anything is written.
    let missing = layout::backup_archive(uuid::Uuid::new_v4());
    let err = recover_in_place(
        &cluster,
        &to_backup_end(store, &missing, &manifest.checksum),
        Reporters::SILENT,
    )
    .await
    .expect_err("a missing archive must be refused");
    assert_eq!(
        (err.phase, err.code),
        (RecoveryPhase::Fetching, GuestErrorCode::BackupNotFound)
    );
    assert!(format!("{err:#}").contains(&missing), "{err:#}");
    assert_eq!(ids(&cluster).await?, vec![1, 2, 3, 10]);
    assert!(!root.path().join("live/data.staging").exists());

    // A second recovery from the same backup must not reuse the first recovery's timeline ID.
    recover_in_place(
        &cluster,
        &to_backup_end(store, &archive, &manifest.checksum),
        Reporters::SILENT,
    )
    .await?;
    assert_eq!(ids(&cluster).await?, vec![1, 2, 3]);
    assert!(current_timeline(&cluster).await? > timeline);

    cluster.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_new_brings_up_a_second_instance_with_the_backups_rows_and_logins() -> Result<()> {
    let root = TestRoot::new("trove-pgdriver")?;
    let (source, manifest, archive) = seeded_instance_with_backup(&root).await?;
    exec_as_app(&source, "INSERT INTO t VALUES (4)").await?;

    let copy = root.cluster("copy")?;
    assert_ne!(copy.spec().port, source.spec().port);
    let started = Instant::now();
    restore_new(
        &copy,
        &to_backup_end(root.store(), &archive, &manifest.checksum),
        Reporters::SILENT,
    )
    .await?;
    eprintln!("restore_new: {:?}", started.elapsed());

    assert_eq!(ids(&copy).await?, vec![1, 2, 3]);
    assert_eq!(
        ids(&source).await?,
        vec![1, 2, 3, 4],
        "the source is unaffected"
    );
    assert!(!copy.spec().data_dir.join("trove-recovery.conf").exists());

    // A restart must not re-enter recovery: the recovery settings are gone.
    copy.stop().await?;
    copy.start().await?;
    assert!(!in_recovery(&copy).await?);
    exec_as_app(&copy, "INSERT INTO t VALUES (7)").await?;
    assert_eq!(ids(&copy).await?, vec![1, 2, 3, 7]);

    copy.stop().await?;
    source.stop().await?;
    Ok(())
}

/// A recovery to the end of the backup whose archive is `key` in `store`.
fn to_backup_end<'a>(store: &'a BlobStore, key: &'a str, sha256: &'a str) -> RecoveryRequest<'a> {
    RecoveryRequest {
        archive: ArchiveSource { store, key, sha256 },
        replay: None,
    }
}

/// An archive whose contents are not a usable data directory, put into `store` as `key`; returns
/// its (right) checksum.
async fn junk_archive(root: &Path, store: &BlobStore, key: &str) -> Result<String> {
    let dir = root.join("junk");
    std::fs::create_dir(&dir)?;
    // Enough to look like a data directory to our config writer, so the failure happens when the
    // staged server starts.
    std::fs::write(dir.join("PG_VERSION"), "15\n")?;
    std::fs::write(dir.join("postgresql.conf"), "")?;
    std::fs::write(dir.join("junk.bin"), b"not a database".repeat(100))?;
    let tar = root.join("junk.tar");
    let archive = root.join("junk.tar.zst");
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()?;
    ensure!(status.success(), "tar failed");
    let status = std::process::Command::new("zstd")
        .arg("-q")
        .arg(&tar)
        .arg("-o")
        .arg(&archive)
        .status()?;
    ensure!(status.success(), "zstd failed");
    let bytes = std::fs::read(&archive)?;
    let checksum = sha256_hex(&bytes);
    store.put(key, Bytes::from(bytes)).await?;
    Ok(checksum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_in_place_rolls_back_when_the_staged_copy_cannot_start() -> Result<()> {
    let root = TestRoot::new("trove-pgdriver")?;
    let (cluster, _manifest, _archive) = seeded_instance_with_backup(&root).await?;
    exec_as_app(&cluster, "INSERT INTO t VALUES (4)").await?;
    let junk = layout::backup_archive(uuid::Uuid::new_v4());
    let checksum = junk_archive(root.path(), root.store(), &junk).await?;

    let phases = PhaseLog::default();
    let started = Instant::now();
    let err = recover_in_place(
        &cluster,
        &to_backup_end(root.store(), &junk, &checksum),
        Reporters {
            phase: &|p| phases.record(p),
            ..Reporters::SILENT
        },
    )
    .await
    .expect_err("a junk data directory cannot be recovered");
    assert_eq!(err.code, GuestErrorCode::StartFailed);
    eprintln!(
        "failed recover_in_place with rollback: {:?}",
        started.elapsed()
    );

    eprintln!("rollback error: {err:#}");
    assert_rolled_back_while_replaying(&err, &phases, &cluster).await;
    assert_eq!(
        ids(&cluster).await?,
        vec![1, 2, 3, 4],
        "the live instance still serves its data"
    );
    assert!(!root.path().join("live/data.staging").exists());
    assert!(
        !root.path().join("live/data.old").exists(),
        "never cut over"
    );

    cluster.stop().await?;
    Ok(())
}
