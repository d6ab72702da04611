//! Where the object store is and how to reach it: the `[store]` section every daemon shares.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which backend holds the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// A directory on this host: the embedded default for the demo and a single host. Every
    /// daemon must see the same directory, so it does not span hosts.
    #[default]
    Local,
    /// An S3 endpoint: AWS S3, Ceph RGW, MinIO, or OpenStack Swift with `s3api`.
    S3,
}

/// The `[store]` section (docs/object-store.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// `local`: the root directory (made 0700 at start-up; it holds every tenant's data).
    pub path: PathBuf,
    /// `s3`: endpoint URL, e.g. `https://s3.example.com` or `http://127.0.0.1:8080`. Empty means
    /// AWS itself (or `AWS_ENDPOINT` from the environment).
    pub endpoint: String,
    /// `s3`: the bucket; it must exist. Empty means `AWS_BUCKET` from the environment.
    pub bucket: String,
    /// `s3`: the region the endpoint signs for (`us-east-1` for most non-AWS stores).
    pub region: String,
    /// Key prefix under which this deployment's objects live, e.g. `trove/prod`. Empty: none.
    pub prefix: String,
    /// `s3`: access key id. Empty means `AWS_ACCESS_KEY_ID` from the environment.
    pub access_key_id: String,
    /// `s3`: a file holding the secret access key alone (mode 0600). Unset means
    /// `AWS_SECRET_ACCESS_KEY` from the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
    /// Size of one multipart upload part in MiB (S3 needs at least 5).
    pub part_size_mib: u64,
    /// Parts of one upload in flight at once.
    pub upload_concurrency: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Local,
            path: PathBuf::from("/var/lib/trove/store"),
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            access_key_id: String::new(),
            secret_access_key_file: None,
            part_size_mib: 8,
            upload_concurrency: 4,
        }
    }
}
