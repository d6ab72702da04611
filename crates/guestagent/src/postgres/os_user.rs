//! The OS account that owns PostgreSQL files, and helpers that create files and directories owned by it.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, chown};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use tokio::io::AsyncWriteExt as _;

/// A local OS user, as listed in `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl OsUser {
    /// Looks `name` up in `/etc/passwd`. The guest image has no NSS modules beyond files, so reading
    /// the file is enough and avoids libc calls (which would need `unsafe`).
    pub fn lookup(name: &str) -> Result<OsUser> {
        let text = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
        parse_passwd(&text, name)?
            .with_context(|| format!("os user {name:?} does not exist in /etc/passwd"))
    }
}

/// Finds `name` in the text of a passwd file (`name:x:uid:gid:gecos:home:shell`).
pub(crate) fn parse_passwd(text: &str, name: &str) -> Result<Option<OsUser>> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&name) {
            continue;
        }
        if fields.len() < 4 {
            bail!("malformed passwd entry for {name:?}");
        }
        let uid = fields[2]
            .parse()
            .with_context(|| format!("bad uid in passwd entry for {name:?}"))?;
        let gid = fields[3]
            .parse()
            .with_context(|| format!("bad gid in passwd entry for {name:?}"))?;
        return Ok(Some(OsUser {
            name: name.to_owned(),
            uid,
            gid,
        }));
    }
    Ok(None)
}

/// Whether this process runs with effective uid 0. `/proc/self` is owned by the effective uid.
pub fn is_root() -> Result<bool> {
    let meta = std::fs::metadata("/proc/self").context("reading /proc/self")?;
    Ok(meta.uid() == 0)
}

/// Gives `path` to `owner`; a no-op when we do not run as root (then we own it already).
pub(crate) fn chown_to(path: &Path, owner: Option<&OsUser>) -> Result<()> {
    if let Some(owner) = owner {
        chown(path, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("chown {} to {}", path.display(), owner.name))?;
    }
    Ok(())
}

pub(crate) async fn set_mode(path: &Path, mode: u32) -> Result<()> {
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Creates `path` and any missing ancestors. Directories created here belong to `owner`: the leaf gets
/// `mode`, ancestors 0700 (owned by `owner`, PostgreSQL can still traverse them). Existing
/// directories are left alone.
pub async fn ensure_dir(path: &Path, mode: u32, owner: Option<&OsUser>) -> Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cursor = Some(path);
    while let Some(dir) = cursor {
        if tokio::fs::try_exists(dir)
            .await
            .with_context(|| format!("checking {}", dir.display()))?
        {
            break;
        }
        missing.push(dir.to_path_buf());
        cursor = dir.parent();
    }
    for dir in missing.iter().rev() {
        match tokio::fs::create_dir(dir).await {
            Ok(()) => {}
            // Another task may create the same ancestor concurrently; that is fine.
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err).with_context(|| format!("creating {}", dir.display())),
        }
        chown_to(dir, owner)?;
        set_mode(dir, if dir == path { mode } else { 0o700 }).await?;
    }
    Ok(())
}

/// A directory the agent keeps for itself and the servers' OS user: created if missing, and
/// otherwise taken over, so one made by an installer or by hand with a looser mode or another
/// owner ends up `owner`'s with mode 0700 (nothing for group or others).
pub async fn ensure_private_dir(path: &Path, owner: Option<&OsUser>) -> Result<()> {
    ensure_dir(path, 0o700, owner).await?;
    chown_to(path, owner)?;
    set_mode(path, 0o700).await
}

/// Creates `path` for writing with `mode` from the start, so the file is never readable by
/// others, whatever the process umask, not even for the moment before a chmod.
pub(crate) async fn create_private_file(path: &Path, mode: u32) -> Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .await
        .with_context(|| format!("creating {}", path.display()))
}

/// Atomically replaces `path` with `contents` (write `.tmp`, fsync, rename), owned by `owner`.
/// Atomic so that a crash never leaves PostgreSQL a half-written configuration file.
pub async fn write_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<&OsUser>,
) -> Result<()> {
    // A name of its own per write: two writers of the same file (the WAL streamer's and the
    // reporter's checksum passes) must not rename each other's temporary file away.
    let tmp = crate::postgres::sibling(path, &format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let write = async {
        let mut file = create_private_file(&tmp, mode).await?;
        file.write_all(contents)
            .await
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .await
            .with_context(|| format!("syncing {}", tmp.display()))?;
        drop(file);
        set_mode(&tmp, mode).await?;
        chown_to(&tmp, owner)?;
        tokio::fs::rename(&tmp, path)
            .await
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    };
    let result = write.await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Removes a file, treating "already gone" as success.
pub(crate) async fn remove_file_if_exists(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing {}", path.display())),
    }
}

/// Removes a directory tree, treating "already gone" as success.
pub(crate) async fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n# comment\n\npostgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";

    #[test]
    fn parse_passwd_finds_uid_and_gid() {
        let user = parse_passwd(PASSWD, "postgres")
            .expect("valid passwd")
            .expect("postgres listed");
        assert_eq!(
            user,
            OsUser {
                name: "postgres".into(),
                uid: 101,
                gid: 104
            }
        );
    }

    #[test]
    fn parse_passwd_does_not_match_prefixes() {
        assert_eq!(parse_passwd(PASSWD, "post").expect("valid passwd"), None);
    }

    #[test]
    fn parse_passwd_rejects_a_bad_uid() {
        assert!(parse_passwd("pg:x:abc:1::/:/bin/sh", "pg").is_err());
    }
}
