//! The object store every backup, WAL segment, history file and manifest goes through
//! (docs/object-store.md). Nothing outside this module names a backend: callers use keys such as
//! `backups/<id>/base.tar.zst` relative to the configured prefix.

mod config;
pub mod layout;
pub mod wal_keys;

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _, stream::BoxStream};
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutPayload, aws::AmazonS3Builder, buffered::BufWriter,
    local::LocalFileSystem, path::Path,
};

pub use config::{StoreBackend, StoreConfig};

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Key relative to the store's prefix.
    pub key: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// What a set of objects takes in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    pub objects: u64,
    pub bytes: u64,
}

/// A handle on the configured store; cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    part_size: usize,
    concurrency: usize,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({}", self.inner)?;
        if let Some(prefix) = &self.prefix {
            write!(f, ", prefix {prefix}")?;
        }
        write!(f, ")")
    }
}

impl BlobStore {
    /// Opens the store `config` names. A local root is created (0700) when missing; an S3 bucket
    /// must exist already. Nothing is sent over the network here.
    pub fn open(config: &StoreConfig) -> Result<Self> {
        let inner: Arc<dyn ObjectStore> = match config.backend {
            StoreBackend::Local => {
                ensure_private_root(&config.path)?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(&config.path)
                        .with_context(|| format!("store.path {}", config.path.display()))?
                        // A deleted backup or WAL timeline leaves no empty directories behind.
                        .with_automatic_cleanup(true),
                )
            }
            StoreBackend::S3 => Arc::new(s3(config)?),
        };
        let prefix = if config.prefix.trim_matches('/').is_empty() {
            None
        } else {
            let prefix = config.prefix.trim_matches('/');
            check_key(prefix).context("store.prefix")?;
            Some(Path::from(prefix))
        };
        if config.part_size_mib < 5 {
            bail!(
                "store.part_size_mib must be at least 5 (S3's smallest part), not {}",
                config.part_size_mib
            );
        }
        Ok(Self {
            inner,
            prefix,
            part_size: usize::try_from(config.part_size_mib)
                .unwrap_or(usize::MAX / (1 << 20))
                .saturating_mul(1 << 20),
            concurrency: config.upload_concurrency.max(1),
        })
    }

    /// The store's location as an operator would name it, for logs and messages.
    pub fn describe(&self) -> String {
        format!("{self:?}")
    }

    fn path(&self, key: &str) -> Result<Path> {
        check_key(key)?;
        Ok(match &self.prefix {
            Some(prefix) => Path::from(format!("{prefix}/{key}")),
            None => Path::from(key),
        })
    }

    fn relative(&self, path: &Path) -> String {
        let full = path.as_ref();
        match &self.prefix {
            Some(prefix) => full
                .strip_prefix(prefix.as_ref())
                .map(|rest| rest.trim_start_matches('/'))
                .unwrap_or(full)
                .to_owned(),
            None => full.to_owned(),
        }
    }

    /// Writes `bytes` as `key` in one request (small objects: manifests, WAL chunks).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(key)?;
        self.inner
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .with_context(|| format!("writing {key} to the store"))?;
        Ok(())
    }

    /// The whole object, or None when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key)?;
        match self.inner.get(&path).await {
            Ok(got) => {
                Ok(Some(got.bytes().await.with_context(|| {
                    format!("reading {key} from the store")
                })?))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {key} from the store")),
        }
    }

    /// The object's size, or None when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match self.inner.head(&path).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err).with_context(|| format!("looking up {key} in the store")),
        }
    }

    /// The object as a stream of `part`-sized ranges fetched `parallel` at a time, in order,
    /// with its size; None when there is none. Several requests in flight beat one stream on
    /// stores whose single-connection throughput is the limit.
    pub async fn get_parallel(
        &self,
        key: &str,
        part: u64,
        parallel: usize,
    ) -> Result<Option<(u64, BoxStream<'static, Result<Bytes>>)>> {
        let Some(size) = self.size(key).await? else {
            return Ok(None);
        };
        let path = self.path(key)?;
        let part = part.max(1);
        let ranges: Vec<std::ops::Range<u64>> = (0..size.div_ceil(part))
            .map(|i| i * part..((i + 1) * part).min(size))
            .collect();
        let inner = self.inner.clone();
        let key = key.to_owned();
        let stream = futures_util::stream::iter(ranges)
            .map(move |range| {
                let (inner, path, key) = (inner.clone(), path.clone(), key.clone());
                async move {
                    inner
                        .get_range(&path, range)
                        .await
                        .with_context(|| format!("reading {key} from the store"))
                }
            })
            .buffered(parallel.max(1))
            .boxed();
        Ok(Some((size, stream)))
    }

    /// The object as a stream of chunks with its size, or None when there is none.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<Option<(u64, BoxStream<'static, Result<Bytes>>)>> {
        let path = self.path(key)?;
        match self.inner.get(&path).await {
            Ok(got) => {
                let size = got.meta.size;
                let key = key.to_owned();
                let stream = got
                    .into_stream()
                    .map(move |chunk| {
                        chunk.with_context(|| format!("reading {key} from the store"))
                    })
                    .boxed();
                Ok(Some((size, stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err).with_context(|| format!("reading {key} from the store")),
        }
    }

    /// A streaming writer for `key`: parts of `store.part_size_mib` are uploaded as they fill,
    /// `upload_concurrency` at a time, so a large object never sits whole in memory or on disk.
    /// Nothing is visible under `key` until `shutdown()` completes; `abort()` discards the upload.
    pub fn writer(&self, key: &str) -> Result<BufWriter> {
        let path = self.path(key)?;
        Ok(
            BufWriter::with_capacity(self.inner.clone(), path, self.part_size)
                .with_max_concurrency(self.concurrency),
        )
    }

    /// Every object whose key starts with the directory `prefix` (`a/b` lists `a/b/…`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        let path = self.path(prefix)?;
        self.list_path(&path)
            .await
            .with_context(|| format!("listing {prefix}/ in the store"))
    }

    async fn list_path(&self, path: &Path) -> Result<Vec<Entry>> {
        self.inner
            .list(Some(path))
            .map(|meta| {
                meta.map(|meta| Entry {
                    key: self.relative(&meta.location),
                    size: meta.size,
                    modified: meta.last_modified,
                })
            })
            .try_collect()
            .await
            .map_err(anyhow::Error::from)
    }

    /// Removes `key`; an absent object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err).with_context(|| format!("deleting {key} from the store")),
        }
    }

    /// Removes every key in `keys` (bulk deletes where the backend has them).
    pub async fn delete_many(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let paths = keys
            .iter()
            .map(|key| self.path(key))
            .collect::<Result<Vec<_>>>()?;
        let results: Vec<object_store::Result<Path>> = self
            .inner
            .delete_stream(futures_util::stream::iter(paths.into_iter().map(Ok)).boxed())
            .collect()
            .await;
        for result in results {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err).context("deleting from the store"),
            }
        }
        Ok(())
    }

    /// Removes every object under the directory `prefix`; returns what they took.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<Usage> {
        let entries = self.list(prefix).await?;
        let usage = usage_of(&entries);
        let keys: Vec<String> = entries.into_iter().map(|e| e.key).collect();
        self.delete_many(&keys).await?;
        Ok(usage)
    }

    /// Removes every object under this store's own `prefix` (a test's scratch prefix). Refused
    /// without a prefix: that would empty a whole bucket or directory.
    pub async fn clear(&self) -> Result<Usage> {
        let Some(prefix) = &self.prefix else {
            bail!("refusing to clear a store without a prefix");
        };
        let entries = self.list_path(prefix).await.context("listing the store")?;
        let usage = usage_of(&entries);
        let keys: Vec<String> = entries.into_iter().map(|e| e.key).collect();
        self.delete_many(&keys).await?;
        Ok(usage)
    }

    /// What the objects under the directory `prefix` take.
    pub async fn usage(&self, prefix: &str) -> Result<Usage> {
        Ok(usage_of(&self.list(prefix).await?))
    }
}

/// The sum of a listing.
pub fn usage_of(entries: &[Entry]) -> Usage {
    Usage {
        objects: entries.len() as u64,
        bytes: entries.iter().map(|e| e.size).sum(),
    }
}

/// Keys are ours, never a client's, but a message names them: only `[A-Za-z0-9._-]` segments
/// separated by single slashes, none of them `.` or `..`, so no key escapes the prefix.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 512 {
        bail!("bad store key {key:?}: empty or too long");
    }
    for part in key.split('/') {
        let ok = !part.is_empty()
            && part != "."
            && part != ".."
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            bail!("bad store key {key:?}");
        }
    }
    Ok(())
}

fn ensure_private_root(root: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("creating store.path {}", root.display()))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making store.path {} private", root.display()))
}

fn s3(config: &StoreConfig) -> Result<object_store::aws::AmazonS3> {
    // The environment (AWS_*) first, so that anything the config leaves empty comes from there.
    let mut builder = AmazonS3Builder::from_env();
    if !config.endpoint.is_empty() {
        builder = builder
            .with_endpoint(&config.endpoint)
            .with_allow_http(config.endpoint.starts_with("http://"))
            // Swift's s3api and most private stores serve path-style only.
            .with_virtual_hosted_style_request(false);
    }
    if !config.bucket.is_empty() {
        builder = builder.with_bucket_name(&config.bucket);
    }
    if !config.region.is_empty() {
        builder = builder.with_region(&config.region);
    }
    if !config.access_key_id.is_empty() {
        builder = builder.with_access_key_id(&config.access_key_id);
    }
    if let Some(file) = &config.secret_access_key_file {
        let secret = std::fs::read_to_string(file)
            .with_context(|| format!("reading store.secret_access_key_file {}", file.display()))?;
        let secret = secret.trim_end_matches(['\r', '\n']);
        if secret.is_empty() {
            bail!("store.secret_access_key_file {} is empty", file.display());
        }
        builder = builder.with_secret_access_key(secret);
    }
    builder.build().context("configuring the S3 store")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_climb_out_of_the_prefix() {
        assert!(check_key("backups/8a1/base.tar.zst").is_ok());
        assert!(check_key("wal/x/tl1/000000010000000000000003/00000000-00002000").is_ok());
        for bad in [
            "", "../x", "a/../b", "a//b", "/a", "a/", "a b", "a/./b", "ä",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_local_store_round_trips_lists_and_deletes() {
        let root = std::env::temp_dir().join(format!("trove-store-{}", uuid::Uuid::new_v4()));
        let store = BlobStore::open(&StoreConfig {
            path: root.clone(),
            prefix: "deploy".into(),
            ..StoreConfig::default()
        })
        .expect("opens");
        store
            .put("backups/b1/manifest.json", Bytes::from_static(b"{}"))
            .await
            .expect("put");
        store
            .put("backups/b1/base.tar.zst", Bytes::from_static(b"abc"))
            .await
            .expect("put");
        store
            .put("backups/b10/base.tar.zst", Bytes::from_static(b"x"))
            .await
            .expect("put");
        assert_eq!(
            store.get("backups/b1/manifest.json").await.expect("get"),
            Some(Bytes::from_static(b"{}"))
        );
        assert_eq!(store.get("backups/none").await.expect("get"), None);
        // A directory prefix never matches a longer name (`b1` is not `b10`).
        let usage = store.usage("backups/b1").await.expect("usage");
        assert_eq!(
            usage,
            Usage {
                objects: 2,
                bytes: 5
            }
        );
        assert_eq!(
            store.delete_prefix("backups/b1").await.expect("delete"),
            usage
        );
        assert!(store.list("backups/b1").await.expect("list").is_empty());
        assert_eq!(store.list("backups").await.expect("list").len(), 1);
        assert!(root.join("deploy/backups/b10/base.tar.zst").exists());
        let _ = std::fs::remove_dir_all(root);
    }
}
