//! Where each kind of object lives in the store, relative to its prefix (docs/object-store.md).

use uuid::Uuid;

/// File name of a backup's archive (`pg_basebackup` tar through zstd).
pub const ARCHIVE_FILE: &str = "base.tar.zst";
/// File name of a backup's manifest (JSON), written after the archive is complete.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Everything of one backup: `backups/<id>`.
pub fn backup_dir(backup_id: Uuid) -> String {
    format!("backups/{backup_id}")
}

/// `backups/<id>/base.tar.zst`: what `backups.location` records.
pub fn backup_archive(backup_id: Uuid) -> String {
    format!("{}/{ARCHIVE_FILE}", backup_dir(backup_id))
}

/// `backups/<id>/manifest.json`.
pub fn backup_manifest(backup_id: Uuid) -> String {
    format!("{}/{MANIFEST_FILE}", backup_dir(backup_id))
}

/// The manifest beside an archive key (`…/base.tar.zst` → `…/manifest.json`).
pub fn manifest_beside(archive_key: &str) -> String {
    match archive_key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{MANIFEST_FILE}"),
        None => MANIFEST_FILE.to_owned(),
    }
}

/// Every WAL object of one instance: `wal/<instance_id>` (the recovery target's `wal_location`).
pub fn wal_dir(instance_id: Uuid) -> String {
    crate::recovery::wal_location(instance_id)
}
